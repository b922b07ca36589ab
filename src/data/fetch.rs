//! `gcl-repro data fetch cifar10|cifar100`: download the official archive, verify its MD5 and
//! unpack it atomically under the data root.
//!
//! Everything happens in a temporary directory inside the data root (same file system), and
//! only a verified, complete dataset directory is renamed into place: an interrupted or failed
//! fetch leaves nothing behind.
use super::cifar::Cifar;
use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Download and unpack `kind` into `<data_root>/<kind.dir_name()>`. `url` overrides the
/// official one (a mirror); `md5` overrides the official archive MD5 (for a custom archive).
/// Returns the dataset directory.
pub fn fetch(kind: Cifar, data_root: &Path, url: Option<&str>, md5: Option<&str>) -> Result<PathBuf> {
    let (official_url, official_md5) = kind.archive();
    let url = url.unwrap_or(official_url);
    let want_md5 = md5.unwrap_or(official_md5).to_ascii_lowercase();
    let target = kind.dir(data_root);
    if target.exists() {
        bail!("{} already exists; delete it first to download {} again", target.display(), kind.name());
    }
    std::fs::create_dir_all(data_root)
        .with_context(|| format!("cannot create the data root {}", data_root.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".gcl-fetch-")
        .tempdir_in(data_root)
        .with_context(|| format!("cannot create a temporary directory in {} (is it writable?)", data_root.display()))?;
    let archive = tmp.path().join("archive.tar.gz");
    let got_md5 = download(url, &archive)?;
    if got_md5 != want_md5 {
        bail!("the archive downloaded from {url} has MD5 {got_md5}, expected {want_md5}; nothing was installed (retry, or check --url/--md5)");
    }
    let unpacked = tmp.path().join("unpacked");
    let file = std::fs::File::open(&archive)?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&unpacked)
        .with_context(|| format!("cannot unpack the archive from {url}"))?;
    let dir = unpacked.join(kind.dir_name());
    let missing: Vec<&str> = kind.files().iter().map(|f| f.name).filter(|n| !dir.join(n).is_file()).collect();
    if !missing.is_empty() {
        bail!("the archive from {url} has no {}/{}; nothing was installed", kind.dir_name(), missing.join(", "));
    }
    std::fs::rename(&dir, &target)
        .with_context(|| format!("cannot move the unpacked files to {}", target.display()))?;
    Ok(target)
}

/// Stream `url` into `dest` with a progress bar; returns the MD5 (hex) of the bytes.
fn download(url: &str, dest: &Path) -> Result<String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build();
    let resp = agent.get(url).call().with_context(|| format!("cannot download {url}"))?;
    let len = resp.header("Content-Length").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let bar = super::byte_bar(len, "download");
    let mut reader = resp.into_reader();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest)?);
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("download of {url} was interrupted"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        bar.inc(n as u64);
    }
    out.flush()?;
    bar.finish_and_clear();
    Ok(hex::encode(h.finalize()))
}

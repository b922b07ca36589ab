//! File integrity: size and MD5 checks of dataset files, remembered so later runs skip re-hashing.
//!
//! The memo lives in the user's cache (the dataset directory may be read-only):
//! `$XDG_CACHE_HOME/gcl-repro`, else `~/.cache/gcl-repro`, file
//! `verified-md5.json`, keyed by canonical path + size + modification time. Any change to a file
//! (rewrite, truncation, a flipped byte written back) changes its size or mtime, so it is hashed
//! again. A memo that cannot be read or written only costs a re-hash, never an error.
use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The directory for small per-user state (the verification memo). Not `$GCL_CACHE_DIR`: that
/// is the run cache (`--cache-dir`), which a cluster may share between users.
pub fn user_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("gcl-repro");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("gcl-repro")
}

/// What a file must be.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    pub size: u64,
    /// The trusted MD5, when one is known; otherwise only the size is checked and the computed
    /// MD5 is returned for the record.
    pub md5: Option<&'a str>,
    /// How to fix a bad file, e.g. "re-download it with `gcl-repro data fetch cifar10`".
    pub fix: &'a str,
}

/// Checks `path` against `expected` and returns its MD5 (hex). Hashes only when the memo in
/// `memo_dir` has no entry for this exact file state.
pub fn check_file(path: &Path, expected: &Expected, memo_dir: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}: {}", path.display(), expected.fix))?;
    if meta.len() != expected.size {
        let what = if meta.len() < expected.size { "truncated" } else { "too long" };
        bail!("{} is {what}: {} bytes, expected {}; {}", path.display(), meta.len(), expected.size, expected.fix);
    }
    let key = memo_key(path, &meta);
    let mut memo = read_memo(memo_dir);
    let md5 = match memo.get(&key) {
        Some(m) => m.clone(),
        None => {
            let m = md5_file(path)?;
            memo.insert(key, m.clone());
            write_memo(memo_dir, &memo);
            m
        }
    };
    if let Some(want) = expected.md5 {
        if !md5.eq_ignore_ascii_case(want) {
            bail!("{} is corrupt: its MD5 is {md5}, the official one is {want}; {}", path.display(), expected.fix);
        }
    }
    Ok(md5)
}

/// MD5 of a file, streamed (with a progress bar for large files).
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if len > 16 << 20 {
        crate::data::byte_bar(len, &format!("md5 {}", file_name(path)))
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hex::encode(h.finalize()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn memo_key(path: &Path, meta: &std::fs::Metadata) -> String {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}|{}|{}", canon.display(), meta.len(), mtime)
}

const MEMO_FILE: &str = "verified-md5.json";

fn read_memo(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read(dir.join(MEMO_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn write_memo(dir: &Path, memo: &BTreeMap<String, String>) {
    // Write-then-rename so concurrent runs never see half a file.
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &serde_json::to_vec_pretty(memo).unwrap_or_default())?;
        tmp.persist(dir.join(MEMO_FILE)).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::debug!("could not record verified MD5s under {}: {e}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_skips_rehash_and_changes_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let memo = dir.path().join("memo");
        let f = dir.path().join("a.bin");
        std::fs::write(&f, b"hello").unwrap();
        let exp = Expected { size: 5, md5: Some("5d41402abc4b2a76b9719d911017c592"), fix: "fix it" };
        assert_eq!(check_file(&f, &exp, &memo).unwrap(), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(read_memo(&memo).len(), 1);
        // Same size, different content and mtime: hashed again and refused.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, b"hellp").unwrap();
        let err = format!("{:#}", check_file(&f, &exp, &memo).unwrap_err());
        assert!(err.contains("a.bin is corrupt") && err.contains("fix it"), "{err}");
        std::fs::write(&f, b"hell").unwrap();
        let err = format!("{:#}", check_file(&f, &exp, &memo).unwrap_err());
        assert!(err.contains("a.bin is truncated: 4 bytes, expected 5"), "{err}");
    }
}

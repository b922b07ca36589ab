//! The prepared form: one compressed file holding a long-tailed train split and its test set,
//! small enough to travel to a GPU host with the binary (`gcl-repro data prepare`).
//!
//! Layout: the magic `GCLPREP1`, a little-endian u32 header length, a JSON [`Header`], then one
//! deflate (zlib) stream: train labels (u16 LE), train pixels, test labels, test pixels.
//! Pixels are stored as residuals of the MED predictor of lossless JPEG-LS (per colour plane:
//! predict from the left, upper and upper-left neighbours, store `x - prediction` mod 256),
//! which deflate compresses to about 70% of the raw bytes where raw pixels stay near 92%.
//! The header carries a SHA-256 of the uncompressed payload, checked on read.
use super::{cifar::PIXELS, ImageSet, LtData};
use crate::data::spec::DatasetSpec;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"GCLPREP1";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u32,
    pub spec: DatasetSpec,
    pub identity: String,
    pub num_classes: usize,
    pub class_counts: Vec<usize>,
    pub mean: [f64; 3],
    pub std: [f64; 3],
    pub train_len: usize,
    pub test_len: usize,
    /// The kept indices into the full train set (CIFAR), for provenance and `data info`.
    pub train_indices: Option<Vec<usize>>,
    pub predictor: String,
    pub payload_sha256: String,
}

/// Load the spec's split from its sources and write the prepared file to `out` (atomically).
/// Returns the file size in bytes.
pub fn prepare(spec: &DatasetSpec, data_root: &Path, out: &Path) -> Result<u64> {
    let data = match spec.name {
        crate::data::spec::DatasetName::Cifar10 => super::load_cifar(super::cifar::Cifar::C10, spec, data_root)?,
        crate::data::spec::DatasetName::Cifar100 => super::load_cifar(super::cifar::Cifar::C100, spec, data_root)?,
        // Generated on the fly by `load`; a prepared copy serves inspection from other tools.
        crate::data::spec::DatasetName::Synthetic => super::synthetic::generate(spec)?,
        other => bail!("{other:?} is a list-file dataset, streamed from its images; it has no prepared form"),
    };
    let indices = super::split_info(spec, data_root)?.indices;
    write(&data, spec, indices, out)
}

/// Write `data` in the prepared form.
pub fn write(data: &LtData, spec: &DatasetSpec, train_indices: Option<Vec<usize>>, out: &Path) -> Result<u64> {
    let mut payload = Vec::new();
    for set in [&data.train, &data.test] {
        for &l in &set.labels {
            payload.extend_from_slice(&(l as u16).to_le_bytes());
        }
        payload.extend(encode_images(&set.pixels()));
    }
    let header = Header {
        format_version: FORMAT_VERSION,
        spec: spec.clone(),
        identity: data.identity.clone(),
        num_classes: data.num_classes,
        class_counts: data.class_counts.clone(),
        mean: data.mean,
        std: data.std,
        train_len: data.train.len(),
        test_len: data.test.len(),
        train_indices,
        predictor: "med".into(),
        payload_sha256: hex::encode(Sha256::digest(&payload)),
    };
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    let head = serde_json::to_vec(&header)?;
    tmp.write_all(MAGIC)?;
    tmp.write_all(&(head.len() as u32).to_le_bytes())?;
    tmp.write_all(&head)?;
    let mut z = flate2::write::ZlibEncoder::new(&mut tmp, flate2::Compression::default());
    let bar = super::byte_bar(payload.len() as u64, "compressing");
    for chunk in payload.chunks(1 << 20) {
        z.write_all(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    z.finish()?;
    bar.finish_and_clear();
    tmp.as_file().sync_all()?;
    tmp.persist(out).map_err(|e| anyhow::anyhow!("cannot write {}: {}", out.display(), e.error))?;
    // The temporary file was private (0600); a prepared file is ordinary shared data.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(std::fs::metadata(out)?.len())
}

fn open_header(path: &Path) -> Result<(Header, std::io::BufReader<std::fs::File>)> {
    let bad = || {
        format!(
            "{} is not a readable gcl-repro prepared file; re-create it with `gcl-repro data prepare`",
            path.display()
        )
    };
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = std::io::BufReader::new(f);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).with_context(bad)?;
    if &magic != MAGIC {
        bail!("{}", bad());
    }
    let mut len = [0u8; 4];
    r.read_exact(&mut len).with_context(bad)?;
    let mut head = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut head).with_context(bad)?;
    let header: Header = serde_json::from_slice(&head).with_context(bad)?;
    if header.format_version != FORMAT_VERSION {
        bail!(
            "{} has format version {}, this build reads {FORMAT_VERSION}; re-create it with `gcl-repro data prepare`",
            path.display(),
            header.format_version
        );
    }
    Ok((header, r))
}

/// The header alone (cheap: no image data is read).
pub fn read_header(path: &Path) -> Result<Header> {
    Ok(open_header(path)?.0)
}

/// Settings that select the data (the synthetic-only ones do not apply to CIFAR).
fn same_split(a: &DatasetSpec, b: &DatasetSpec) -> bool {
    let synthetic_same = a.name != crate::data::spec::DatasetName::Synthetic
        || (a.classes == b.classes && a.max_per_class == b.max_per_class && a.test_per_class == b.test_per_class);
    a.name == b.name
        && a.profile == b.profile
        && a.imbalance == b.imbalance
        && a.subset_seed == b.subset_seed
        && synthetic_same
}

/// Read a prepared file, checking that it holds the split `spec` asks for and is intact.
pub fn read(path: &Path, spec: &DatasetSpec) -> Result<LtData> {
    let (h, r) = open_header(path)?;
    if !same_split(&h.spec, spec) {
        bail!(
            "{} holds {:?} imbalance {} ({:?}, subset_seed {}), not the requested {:?} imbalance {} ({:?}, subset_seed {}); re-create it with `gcl-repro data prepare`",
            path.display(), h.spec.name, h.spec.imbalance, h.spec.profile, h.spec.subset_seed,
            spec.name, spec.imbalance, spec.profile, spec.subset_seed
        );
    }
    let corrupt = || {
        format!("{} is damaged (payload does not decompress to the recorded size and checksum); re-create it with `gcl-repro data prepare`", path.display())
    };
    let want = (h.train_len + h.test_len) * (2 + PIXELS);
    let mut payload = Vec::with_capacity(want);
    flate2::read::ZlibDecoder::new(r).take(want as u64 + 1).read_to_end(&mut payload).with_context(corrupt)?;
    if payload.len() != want || hex::encode(Sha256::digest(&payload)) != h.payload_sha256 {
        bail!("{}", corrupt());
    }
    let (train, rest) = decode_set(&payload, h.train_len);
    let (test, _) = decode_set(rest, h.test_len);
    Ok(LtData {
        train,
        test,
        num_classes: h.num_classes,
        class_counts: h.class_counts,
        mean: h.mean,
        std: h.std,
        identity: h.identity,
    })
}

fn decode_set(bytes: &[u8], n: usize) -> (ImageSet, &[u8]) {
    let (lab, rest) = bytes.split_at(2 * n);
    let labels = lab.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as i64).collect();
    let (px, rest) = rest.split_at(n * PIXELS);
    (ImageSet::from_pixels(&decode_images(px), labels), rest)
}

/// MED (median edge detector) prediction from left `a`, up `b`, up-left `c`.
fn med(a: u8, b: u8, c: u8) -> u8 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if c >= hi {
        lo
    } else if c <= lo {
        hi
    } else {
        (a as i16 + b as i16 - c as i16) as u8
    }
}

fn neighbours(plane: &[u8], y: usize, x: usize) -> (u8, u8, u8) {
    let at = |yy: usize, xx: usize| plane[yy * 32 + xx];
    let a = if x > 0 { at(y, x - 1) } else { 0 };
    let b = if y > 0 { at(y - 1, x) } else { 0 };
    let c = if x > 0 && y > 0 { at(y - 1, x - 1) } else { 0 };
    (a, b, c)
}

/// CHW images to prediction residuals (same length).
pub fn encode_images(pixels: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; pixels.len()];
    out.par_chunks_mut(1024).zip(pixels.par_chunks(1024)).for_each(|(o, plane)| {
        for y in 0..32 {
            for x in 0..32 {
                let (a, b, c) = neighbours(plane, y, x);
                o[y * 32 + x] = plane[y * 32 + x].wrapping_sub(med(a, b, c));
            }
        }
    });
    out
}

/// Inverse of [`encode_images`].
pub fn decode_images(residuals: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; residuals.len()];
    out.par_chunks_mut(1024).zip(residuals.par_chunks(1024)).for_each(|(plane, res)| {
        for y in 0..32 {
            for x in 0..32 {
                let (a, b, c) = neighbours(plane, y, x);
                plane[y * 32 + x] = res[y * 32 + x].wrapping_add(med(a, b, c));
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn med_residuals_round_trip() {
        let pixels: Vec<u8> = (0..3 * PIXELS).map(|i| ((i * 7919) % 256) as u8 ^ (i / 97) as u8).collect();
        let res = encode_images(&pixels);
        assert_ne!(res, pixels);
        assert_eq!(decode_images(&res), pixels);
        assert_eq!(med(10, 20, 25), 10);
        assert_eq!(med(10, 20, 5), 20);
        assert_eq!(med(10, 20, 15), 15);
    }
}

//! CIFAR-10 and CIFAR-100 from their official binary files (gcl-notes.md §4).
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): records of 1 label byte + 3072 pixel bytes (1024 R,
//! 1024 G, 1024 B, row-major 32x32): exactly the CHW layout of a `[3, 32, 32]` tensor.
//! CIFAR-100 (`cifar-100-binary/`): 1 coarse-label byte, 1 fine-label byte, 3072 pixel bytes;
//! the fine label (100 classes) is the one used.
use super::verify::{self, Expected};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

pub const PIXELS: usize = 3 * 32 * 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    C10,
    C100,
}

pub use super::catalog::OfficialFile;
use super::catalog::{self, CIFAR100_FILES, CIFAR10_FILES};
use crate::data::spec::DatasetName;

impl Cifar {
    pub fn name(self) -> &'static str {
        match self {
            Cifar::C10 => "cifar10",
            Cifar::C100 => "cifar100",
        }
    }
    fn facts(self) -> &'static catalog::Facts {
        let name = match self {
            Cifar::C10 => DatasetName::Cifar10,
            Cifar::C100 => DatasetName::Cifar100,
        };
        catalog::facts(name).expect("the catalogue lists both CIFARs")
    }
    /// Directory under the data root, as unpacked from the official archive.
    pub fn dir_name(self) -> &'static str {
        self.facts().dir
    }
    pub fn num_classes(self) -> usize {
        self.facts().classes
    }
    /// The official archive URL and its MD5.
    pub fn archive(self) -> (&'static str, &'static str) {
        self.facts().archive.expect("the catalogue gives both CIFAR archives")
    }
    /// Bytes per record: label byte(s) + pixels.
    pub fn record_len(self) -> usize {
        match self {
            Cifar::C10 => 1 + PIXELS,
            Cifar::C100 => 2 + PIXELS,
        }
    }
    pub fn files(self) -> &'static [OfficialFile] {
        match self {
            Cifar::C10 => CIFAR10_FILES,
            Cifar::C100 => CIFAR100_FILES,
        }
    }
    pub fn dir(self, data_root: &Path) -> PathBuf {
        data_root.join(self.dir_name())
    }
    fn fix_hint(self) -> String {
        format!("re-download it with `gcl-repro data fetch {}`", self.name())
    }
}

/// Verifies every file of the dataset (size always; MD5 against the official one where known,
/// remembered in the user cache) and returns `(file name, md5)` in official order.
pub fn verify_files(kind: Cifar, data_root: &Path) -> Result<Vec<(&'static str, String)>> {
    let dir = kind.dir(data_root);
    if !dir.is_dir() {
        bail!(
            "{} not found (expected the official {} binaries there); get them with `gcl-repro data fetch {}`",
            dir.display(),
            kind.name(),
            kind.name()
        );
    }
    let memo = verify::user_cache_dir();
    let fix = kind.fix_hint();
    kind.files()
        .iter()
        .map(|f| {
            let exp = Expected { size: (f.records * kind.record_len()) as u64, md5: f.md5, fix: &fix };
            Ok((f.name, verify::check_file(&dir.join(f.name), &exp, &memo)?))
        })
        .collect()
}

/// Split records into pixels (CHW uint8, concatenated) and labels.
pub fn parse_records(kind: Cifar, bytes: &[u8], what: &Path) -> Result<(Vec<u8>, Vec<i64>)> {
    let rec = kind.record_len();
    if !bytes.len().is_multiple_of(rec) {
        bail!("{} is not a whole number of {}-byte records; {}", what.display(), rec, kind.fix_hint());
    }
    let n = bytes.len() / rec;
    let label_at = rec - PIXELS - 1; // CIFAR-100: the fine label is the second byte
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[label_at] as usize;
        if label >= kind.num_classes() {
            bail!(
                "{}: record {i} has label {label}, outside 0..{}; {}",
                what.display(),
                kind.num_classes(),
                kind.fix_hint()
            );
        }
        labels.push(label as i64);
        pixels.extend_from_slice(&r[rec - PIXELS..]);
    }
    Ok((pixels, labels))
}

/// The train or test split, read from verified files: `(pixels, labels)` in file order
/// (train: data_batch_1..5 concatenated for CIFAR-10).
pub fn read_split(kind: Cifar, data_root: &Path, train: bool) -> Result<(Vec<u8>, Vec<i64>)> {
    verify_files(kind, data_root)?;
    let dir = kind.dir(data_root);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in kind.files().iter().filter(|f| f.train == train) {
        let path = dir.join(f.name);
        let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let (p, l) = parse_records(kind, &bytes, &path)?;
        pixels.extend(p);
        labels.extend(l);
    }
    Ok((pixels, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar100_records_use_the_fine_label() {
        let mut bytes = Vec::new();
        for (coarse, fine) in [(3u8, 97u8), (0, 5)] {
            bytes.push(coarse);
            bytes.push(fine);
            bytes.extend((0..PIXELS).map(|i| (i % 251) as u8 ^ fine));
        }
        let (pixels, labels) = parse_records(Cifar::C100, &bytes, Path::new("train.bin")).unwrap();
        assert_eq!(labels, vec![97, 5]);
        assert_eq!(pixels.len(), 2 * PIXELS);
        assert_eq!(pixels[PIXELS + 1], 1u8 ^ 5);
        let err = parse_records(Cifar::C100, &bytes[..100], Path::new("train.bin")).unwrap_err().to_string();
        assert!(err.contains("train.bin is not a whole number of 3074-byte records"), "{err}");
        let err = parse_records(Cifar::C10, &[10u8; 3073], Path::new("x.bin")).unwrap_err().to_string();
        assert!(err.contains("label 10, outside 0..10"), "{err}");
    }
}

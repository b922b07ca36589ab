//! What datasets a data root holds, by their well-known file layouts (used by `doctor`).
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub name: &'static str,
    pub path: String,
    pub detail: String,
}

/// Each known dataset and the files that identify it under a data root.
const KNOWN: &[(&str, &str, &[&str])] = &[
    (
        "cifar10",
        "cifar-10-batches-bin",
        &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"],
    ),
    ("cifar100", "cifar-100-binary", &["train.bin", "test.bin"]),
    ("imagenet_lt", "splits", &["ImageNet_LT_test.txt"]),
    ("places_lt", "splits", &["Places_LT_train.txt", "Places_LT_test.txt"]),
    ("inat2018", "splits", &["iNaturalist18_train.txt", "iNaturalist18_val.txt"]),
];

/// The known datasets found under `root` (complete file sets only; partial ones are reported
/// with what is missing so the user knows what to fix).
pub fn scan_root(root: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    for (name, dir, files) in KNOWN {
        let base = root.join(dir);
        let present: Vec<&&str> = files.iter().filter(|f| base.join(f).is_file()).collect();
        if present.is_empty() {
            continue;
        }
        let detail = if present.len() == files.len() {
            format!("{} file(s) complete", files.len())
        } else {
            let missing: Vec<&str> = files.iter().filter(|f| !base.join(f).is_file()).copied().collect();
            format!("incomplete: missing {}", missing.join(", "))
        };
        out.push(Found { name, path: base.display().to_string(), detail });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_complete_and_partial_sets() {
        let dir = tempfile::tempdir().unwrap();
        let c10 = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir_all(&c10).unwrap();
        std::fs::write(c10.join("test_batch.bin"), b"x").unwrap();
        let found = scan_root(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "cifar10");
        assert!(found[0].detail.contains("missing data_batch_1.bin"), "{}", found[0].detail);
        assert!(scan_root(&dir.path().join("nope")).is_empty());
    }
}

//! The one catalogue of dataset facts: where each dataset's files live under a data root and
//! which files they are (with the official MD5s where they exist), the official download, the
//! number of classes and images, and the class names. `cifar`, `fetch`, `doctor`, `plan` and
//! the figures read them here.
use crate::data::spec::{DatasetName, DatasetSpec, Profile};
use std::path::Path;

/// One official CIFAR file: name, record count, and the trusted MD5 when one is known.
pub struct OfficialFile {
    pub name: &'static str,
    pub records: usize,
    pub md5: Option<&'static str>,
    pub train: bool,
}

pub const CIFAR10_FILES: &[OfficialFile] = &[
    OfficialFile {
        name: "data_batch_1.bin",
        records: 10_000,
        md5: Some("5dd7e06a14cb22eb9f671a540d1b7c25"),
        train: true,
    },
    OfficialFile {
        name: "data_batch_2.bin",
        records: 10_000,
        md5: Some("5ea93a67294ea407fff1d09f752e9692"),
        train: true,
    },
    OfficialFile {
        name: "data_batch_3.bin",
        records: 10_000,
        md5: Some("942cd6a4bcdd0dd3c604fbe906cb4421"),
        train: true,
    },
    OfficialFile {
        name: "data_batch_4.bin",
        records: 10_000,
        md5: Some("ae636b3ba5c66a11e91e8cb52e771fcb"),
        train: true,
    },
    OfficialFile {
        name: "data_batch_5.bin",
        records: 10_000,
        md5: Some("53f37980c15c3d472c316c40844f3f0d"),
        train: true,
    },
    OfficialFile {
        name: "test_batch.bin",
        records: 10_000,
        md5: Some("803d5f7f4d78ea53de84dbe85f74fb6d"),
        train: false,
    },
];

// We hold no trusted per-file MD5 for CIFAR-100's train.bin/test.bin (only the archive's,
// 03b5dce01913d631647c71ecec9e9cb8, checked by `data fetch`). Their sizes are checked against
// the record layout and their computed MD5s go into the data identity, so results obtained
// from different file contents never share a cache key.
pub const CIFAR100_FILES: &[OfficialFile] = &[
    OfficialFile { name: "train.bin", records: 50_000, md5: None, train: true },
    OfficialFile { name: "test.bin", records: 10_000, md5: None, train: false },
];

pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// How the size of a dataset's training split is known.
pub enum TrainSize {
    /// The long-tailed CIFAR profile (Cao et al. 2019) from `n_max` images per class, computed.
    LongTailed { n_max: usize },
    /// The published size of the standard list.
    Published(usize),
}

/// The facts of one dataset with files (the synthetic set has none; its facts are its spec).
pub struct Facts {
    pub dataset: DatasetName,
    /// The manifest's name for it (`dataset.name`).
    pub name: &'static str,
    /// Where its files live under the data root.
    pub dir: &'static str,
    /// The files that identify it there.
    pub files: &'static [&'static str],
    pub classes: usize,
    pub train: TrainSize,
    /// The official archive: URL and MD5.
    pub archive: Option<(&'static str, &'static str)>,
    pub class_names: Option<&'static [&'static str]>,
}

const CATALOGUE: &[Facts] = &[
    Facts {
        dataset: DatasetName::Cifar10,
        name: "cifar10",
        dir: "cifar-10-batches-bin",
        files: &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ],
        classes: 10,
        train: TrainSize::LongTailed { n_max: 5000 },
        archive: Some(("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")),
        class_names: Some(&CIFAR10_CLASSES),
    },
    Facts {
        dataset: DatasetName::Cifar100,
        name: "cifar100",
        dir: "cifar-100-binary",
        files: &["train.bin", "test.bin"],
        classes: 100,
        train: TrainSize::LongTailed { n_max: 500 },
        archive: Some(("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8")),
        class_names: None,
    },
    Facts {
        dataset: DatasetName::ImagenetLt,
        name: "imagenet_lt",
        dir: "splits",
        files: &["ImageNet_LT_test.txt"],
        classes: 1000,
        train: TrainSize::Published(115_846),
        archive: None,
        class_names: None,
    },
    Facts {
        dataset: DatasetName::PlacesLt,
        name: "places_lt",
        dir: "splits",
        files: &["Places_LT_train.txt", "Places_LT_test.txt"],
        classes: 365,
        train: TrainSize::Published(62_500),
        archive: None,
        class_names: None,
    },
    Facts {
        dataset: DatasetName::Inat2018,
        name: "inat2018",
        dir: "splits",
        files: &["iNaturalist18_train.txt", "iNaturalist18_val.txt"],
        classes: 8142,
        train: TrainSize::Published(437_513),
        archive: None,
        class_names: None,
    },
];

/// The facts of a dataset with files (`None` for the synthetic set).
pub fn facts(dataset: DatasetName) -> Option<&'static Facts> {
    CATALOGUE.iter().find(|f| f.dataset == dataset)
}

/// Train-split size of a dataset: the long-tailed CIFAR profile computed exactly (the synthetic
/// set's from its spec), the list-file datasets' published sizes.
pub fn train_images(d: &DatasetSpec) -> Option<usize> {
    let (classes, n_max) = match facts(d.name).map(|f| (&f.train, f.classes)) {
        None => (d.classes, d.max_per_class),
        Some((TrainSize::Published(n), _)) => return Some(*n),
        Some((TrainSize::LongTailed { n_max }, classes)) => (classes, *n_max),
    };
    if classes == 0 {
        return None;
    }
    let gamma = d.imbalance.max(1.0);
    let sizes = (0..classes).map(|i| match d.profile {
        Profile::Exp if classes > 1 => (n_max as f64 * (1.0 / gamma).powf(i as f64 / (classes - 1) as f64)) as usize,
        Profile::Exp => n_max,
        Profile::Step if i < classes / 2 => n_max,
        Profile::Step => (n_max as f64 / gamma) as usize,
    });
    Some(sizes.sum())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub name: &'static str,
    pub path: String,
    pub detail: String,
}

/// The known datasets found under `root` (complete file sets only; partial ones are reported
/// with what is missing so the user knows what to fix).
pub fn scan_root(root: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    for Facts { name, dir, files, .. } in CATALOGUE {
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

    #[test]
    fn facts_agree_with_the_cifar_file_records() {
        let names = |files: &[OfficialFile]| files.iter().map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(facts(DatasetName::Cifar10).unwrap().files, names(CIFAR10_FILES).as_slice());
        assert_eq!(facts(DatasetName::Cifar100).unwrap().files, names(CIFAR100_FILES).as_slice());
        assert!(facts(DatasetName::Synthetic).is_none());
    }

    #[test]
    fn long_tailed_cifar_sizes_match_the_published_counts() {
        // CIFAR-10-LT gamma 100: 12,406 images; CIFAR-100-LT gamma 100: 10,847 (Cao et al. 2019).
        let c10 = DatasetSpec { imbalance: 100.0, ..DatasetSpec::default() };
        assert_eq!(train_images(&c10), Some(12_406));
        let c100 = DatasetSpec { name: DatasetName::Cifar100, imbalance: 100.0, ..DatasetSpec::default() };
        assert_eq!(train_images(&c100), Some(10_847));
        let balanced = DatasetSpec { imbalance: 1.0, ..DatasetSpec::default() };
        assert_eq!(train_images(&balanced), Some(50_000));
        assert_eq!(train_images(&DatasetSpec { name: DatasetName::PlacesLt, ..DatasetSpec::default() }), Some(62_500));
    }
}

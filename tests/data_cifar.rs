//! Real CIFAR-10: the long-tailed split, file verification (flipped byte, truncation), the
//! prepared form, and `gcl-repro data info`.
//!
//! The tests that read the real files are named `needs_cifar10_*` and are `#[ignore]`d, so a plain
//! `cargo test` reports them as ignored; `make test` runs them (`cargo test -- --ignored
//! needs_cifar10`) when `cifar-10-batches-bin/` is under `$GCL_TEST_DATA`, else under
//! `../shared/datasets`. Run explicitly without the files, they fail, naming where they looked.
use gcl_repro::data::spec::{DatasetName, DatasetSpec};
use gcl_repro::data::{self, cifar};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The data root holding the real CIFAR-10; panics, naming where it looked, when it is absent.
fn data_root() -> PathBuf {
    let root = std::env::var_os("GCL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets")));
    assert!(
        root.join("cifar-10-batches-bin").is_dir(),
        "needs the real CIFAR-10, but {} is not a directory: set GCL_TEST_DATA to a data root that holds \
         cifar-10-batches-bin/ (`gcl-repro --data-root DIR data fetch cifar10` makes one)",
        root.join("cifar-10-batches-bin").display()
    );
    root
}

/// Keep the verification memo of these tests out of the user's cache.
fn private_memo() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = std::env::temp_dir().join(format!("gcl-test-memo-{}", std::process::id()));
        std::env::set_var("XDG_CACHE_HOME", dir);
    });
}

/// A writable copy of the CIFAR-10 files in a temporary data root.
fn copy_root(root: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dst).unwrap();
    for f in cifar::Cifar::C10.files() {
        std::fs::copy(root.join("cifar-10-batches-bin").join(f.name), dst.join(f.name)).unwrap();
    }
    tmp
}

#[test]
#[ignore = "needs real CIFAR-10: cifar-10-batches-bin/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root made by `gcl-repro data fetch cifar10`)"]
fn needs_cifar10_every_file_with_a_flipped_byte_is_refused_by_name() {
    private_memo();
    let root = data_root();
    let tmp = copy_root(&root);
    let dir = tmp.path().join("cifar-10-batches-bin");
    cifar::verify_files(cifar::Cifar::C10, tmp.path()).unwrap();
    for f in cifar::Cifar::C10.files() {
        let path = dir.join(f.name);
        let original = std::fs::read(&path).unwrap();
        let mut bad = original.clone();
        bad[12_345] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let err = format!("{:#}", data::load(&DatasetSpec::default(), tmp.path()).unwrap_err());
        assert!(err.contains(&format!("{} is corrupt", path.display())), "{err}");
        assert!(err.contains("gcl-repro data fetch cifar10"), "{err}");
        std::fs::write(&path, &original).unwrap();
    }
    // Truncation: named too, found without hashing.
    let path = dir.join("data_batch_3.bin");
    let original = std::fs::read(&path).unwrap();
    std::fs::write(&path, &original[..original.len() - 1000]).unwrap();
    let err = format!("{:#}", data::load(&DatasetSpec::default(), tmp.path()).unwrap_err());
    assert!(err.contains(&format!("{} is truncated: 30729000 bytes, expected 30730000", path.display())), "{err}");
}

#[test]
#[ignore = "needs real CIFAR-10: cifar-10-batches-bin/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root made by `gcl-repro data fetch cifar10`)"]
fn needs_cifar10_long_tailed_split_and_prepared_round_trip() {
    private_memo();
    let root = data_root();
    let spec = DatasetSpec::default();
    let d = data::load(&spec, &root).unwrap();
    assert_eq!(d.class_counts, vec![5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]);
    assert_eq!(d.train.images.size(), vec![12406, 3, 32, 32]);
    assert_eq!(d.test.images.size(), vec![10000, 3, 32, 32]);
    assert_eq!(data::counts_of(&d.test.labels, 10), vec![1000; 10]);
    assert_eq!(d.identity, data::identity(&spec, &root).unwrap());

    // The first kept image is train index 4030 (fixture): record 4030 of data_batch_1.
    let raw = std::fs::read(root.join("cifar-10-batches-bin/data_batch_1.bin")).unwrap();
    let rec = &raw[4030 * 3073..4031 * 3073];
    assert_eq!(d.train.labels[0], rec[0] as i64);
    assert_eq!(&d.train.pixels()[..3072], &rec[1..]);

    // Prepared form under a data root that has no binaries: same tensors, same identity.
    let tmp = tempfile::tempdir().unwrap();
    let out = data::prepared_path(&spec, tmp.path()).unwrap();
    let size = data::prepare::prepare(&spec, &root, &out).unwrap();
    assert!(size < 50 << 20, "prepared file is {size} bytes");
    assert_eq!(data::identity(&spec, tmp.path()).unwrap(), d.identity);
    let p = data::load(&spec, tmp.path()).unwrap();
    assert_eq!(p.identity, d.identity);
    assert_eq!(p.class_counts, d.class_counts);
    assert_eq!((p.train.labels.clone(), p.test.labels.clone()), (d.train.labels.clone(), d.test.labels.clone()));
    assert!(p.train.images.equal(&d.train.images) && p.test.images.equal(&d.test.images));

    // Another split is refused, naming the file.
    std::fs::copy(&out, tmp.path().join("prepared/cifar10-exp-50-seed0.gcl")).unwrap();
    let err = format!("{:#}", data::load(&DatasetSpec { imbalance: 50.0, ..spec.clone() }, tmp.path()).unwrap_err());
    assert!(err.contains("cifar10-exp-50-seed0.gcl holds Cifar10 imbalance 100"), "{err}");
    // A damaged file is refused.
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 5000] ^= 0xff;
    std::fs::write(&out, &bytes).unwrap();
    let err = format!("{:#}", data::load(&spec, tmp.path()).unwrap_err());
    assert!(err.contains("is damaged") || err.contains("not a readable"), "{err}");
}

#[test]
#[ignore = "needs real CIFAR-10: cifar-10-batches-bin/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root made by `gcl-repro data fetch cifar10`)"]
fn needs_cifar10_cli_info_writes_the_numpy_indices() {
    private_memo();
    let root = data_root();
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx.txt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
        .args([
            "--data-root",
            root.to_str().unwrap(),
            "data",
            "info",
            "--dataset",
            "cifar10",
            "--imbalance",
            "100",
            "--indices-out",
            idx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let counts: Vec<&str> = stdout.lines().skip(2).take(10).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(counts, ["5000", "2997", "1796", "1077", "645", "387", "232", "139", "83", "50"]);
    assert!(stdout.contains("total  12406") && stdout.contains("imbalance ratio  100"), "{stdout}");
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/longtail_numpy.json")).unwrap();
    let case = fixture["cases"].as_array().unwrap().iter().find(|c| c["name"] == "cifar10_g100").unwrap();
    let text = std::fs::read(&idx).unwrap();
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&text)), case["sha256"].as_str().unwrap());
}

#[test]
fn cifar100_wrong_size_is_refused_by_name() {
    private_memo();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train.bin"), vec![0u8; 3074 * 10]).unwrap();
    let spec = DatasetSpec { name: DatasetName::Cifar100, ..DatasetSpec::default() };
    let err = format!("{:#}", data::load(&spec, tmp.path()).unwrap_err());
    assert!(
        err.contains("train.bin is truncated: 30740 bytes, expected 153700000") && err.contains("data fetch cifar100"),
        "{err}"
    );
}

//! The long-tailed CIFAR protocol must select exactly the images numpy selects
//! (fixture made by tests/fixtures/make_longtail_fixture.py with numpy's legacy RandomState).
//!
//! The test on the real CIFAR-10 labels is named `needs_cifar10_*` and is `#[ignore]`d; `make test`
//! runs it when `cifar-10-batches-bin/` is under `$GCL_TEST_DATA`, else under `../shared/datasets`.
//! Run explicitly without the files, it fails, naming where it looked.
use gcl_repro::data::spec::Profile;
use gcl_repro::data::{cifar, longtail};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn fixture() -> serde_json::Value {
    let text = include_str!("fixtures/longtail_numpy.json");
    serde_json::from_str(text).unwrap()
}

fn data_root() -> PathBuf {
    std::env::var_os("GCL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets")))
}

/// The same label vector the fixture script builds: (i * 37) % C.
fn synthetic_labels(classes: usize, per_class: usize) -> Vec<i64> {
    (0..classes * per_class).map(|i| ((i * 37) % classes) as i64).collect()
}

fn check_case(case: &serde_json::Value, labels: &[i64]) {
    let name = case["name"].as_str().unwrap();
    let classes = case["num_classes"].as_u64().unwrap() as usize;
    let profile = if case["profile"] == "exp" { Profile::Exp } else { Profile::Step };
    let gamma = case["gamma"].as_f64().unwrap();
    let counts = longtail::class_counts(profile, labels.len() / classes, classes, gamma).unwrap();
    let want_counts: Vec<usize> = serde_json::from_value(case["counts"].clone()).unwrap();
    assert_eq!(counts, want_counts, "{name}: counts");
    let kept = longtail::select_indices(labels, &counts, case["seed"].as_u64().unwrap()).unwrap();
    let text: String = kept.iter().map(|i| format!("{i}\n")).collect();
    assert_eq!(
        hex::encode(Sha256::digest(text.as_bytes())),
        case["sha256"].as_str().unwrap(),
        "{name}: sha256 of the kept indices"
    );
    let first5: Vec<Vec<usize>> = serde_json::from_value(case["first5"].clone()).unwrap();
    let mut start = 0;
    for (c, &n) in counts.iter().enumerate() {
        assert_eq!(&kept[start..start + n.min(5)], &first5[c][..], "{name}: class {c} first indices");
        start += n;
    }
}

#[test]
fn synthetic_labels_match_numpy() {
    let fx = fixture();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if let Some(rest) = name.strip_prefix("synthetic") {
            let classes: usize = rest.split('_').next().unwrap().parse().unwrap();
            let per_class = if classes == 10 { 5000 } else { 500 };
            check_case(case, &synthetic_labels(classes, per_class));
            checked += 1;
        }
    }
    assert_eq!(checked, 5);
}

#[test]
#[ignore = "needs real CIFAR-10: cifar-10-batches-bin/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root made by `gcl-repro data fetch cifar10`)"]
fn needs_cifar10_real_labels_match_numpy() {
    let root = data_root();
    assert!(
        root.join("cifar-10-batches-bin").is_dir(),
        "needs the real CIFAR-10, but {} is not a directory: set GCL_TEST_DATA to a data root that holds \
         cifar-10-batches-bin/ (`gcl-repro --data-root DIR data fetch cifar10` makes one)",
        root.join("cifar-10-batches-bin").display()
    );
    let (_, labels) = cifar::read_split(cifar::Cifar::C10, &root, true).unwrap();
    let fx = fixture();
    let cases: Vec<&serde_json::Value> = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("cifar10_"))
        .collect();
    assert_eq!(cases.len(), 3, "fixture was made without the real CIFAR-10 labels");
    for case in cases {
        check_case(case, &labels);
    }
}

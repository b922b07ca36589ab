//! List files: the real ImageNet-LT / Places-LT split lists, path remaps, error lines, and the
//! iNaturalist 2018 JSON conversion.
//!
//! The tests that read the real lists are named `needs_split_lists_*` and are `#[ignore]`d, so a
//! plain `cargo test` reports them as ignored; `make test` runs them (`cargo test -- --ignored
//! needs_split_lists`) when `splits/` under `$GCL_TEST_DATA`, else under `../shared/datasets`,
//! holds the lists they read. Run explicitly without them, they fail, naming what is missing.
use gcl_repro::data::listfile::{convert_inat_json, ListDataset, PathRemap, PLACES_DECOUPLING, PLACES_MISLAS};
use std::path::{Path, PathBuf};

/// The lists the `needs_split_lists_*` tests read.
const LISTS: [&str; 3] = ["Places_LT_train.txt", "Places_LT_test.txt", "ImageNet_LT_test.txt"];

/// The directory holding the real split lists; panics, naming what is missing, when it lacks one.
fn splits_dir() -> PathBuf {
    let base = std::env::var_os("GCL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets")));
    let dir = base.join("splits");
    let missing: Vec<&str> = LISTS.into_iter().filter(|f| !dir.join(f).is_file()).collect();
    assert!(
        missing.is_empty(),
        "needs the real split lists, but {} lacks {}: set GCL_TEST_DATA to a data root whose splits/ holds {}",
        dir.display(),
        missing.join(", "),
        LISTS.join(", ")
    );
    dir
}

#[test]
#[ignore = "needs split lists: Places_LT_{train,test}.txt, ImageNet_LT_test.txt in splits/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root holding them)"]
fn needs_split_lists_places_lt_train_is_long_tailed_365_classes() {
    let dir = splits_dir();
    let ds = ListDataset::from_file(&dir.join("Places_LT_train.txt"), None).unwrap();
    assert_eq!(ds.len(), 62_500);
    assert_eq!(ds.num_classes, 365);
    assert_eq!(ds.class_counts.iter().sum::<usize>(), 62_500);
    assert_eq!(*ds.class_counts.iter().max().unwrap(), 4980);
    assert_eq!(*ds.class_counts.iter().min().unwrap(), 5);
    assert!(ds.entries[0].0.starts_with("data_256"));
    assert_eq!(ds.line_numbers[17 - 1], 17);
}

#[test]
#[ignore = "needs split lists: Places_LT_{train,test}.txt, ImageNet_LT_test.txt in splits/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root holding them)"]
fn needs_split_lists_balanced_test_lists() {
    let dir = splits_dir();
    let places = ListDataset::from_file(&dir.join("Places_LT_test.txt"), None).unwrap();
    assert_eq!((places.len(), places.num_classes), (36_500, 365));
    assert!(places.class_counts.iter().all(|&c| c == 100));
    let imagenet = ListDataset::from_file(&dir.join("ImageNet_LT_test.txt"), None).unwrap();
    assert_eq!((imagenet.len(), imagenet.num_classes), (50_000, 1000));
    assert!(imagenet.class_counts.iter().all(|&c| c == 50));
}

#[test]
#[ignore = "needs split lists: Places_LT_{train,test}.txt, ImageNet_LT_test.txt in splits/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root holding them)"]
fn needs_split_lists_places_remaps_between_conventions_and_back() {
    let dir = splits_dir();
    let list = dir.join("Places_LT_train.txt");
    let original = ListDataset::from_file(&list, None).unwrap();
    let to_dec = PathRemap::from_spec(PLACES_MISLAS, PLACES_DECOUPLING);
    let dec = ListDataset::from_file(&list, Some(&to_dec)).unwrap();
    assert!(dec.entries.iter().all(|(p, _)| p.starts_with("train") && p.components().count() == 3));
    // Labels and counts do not change; mapping back restores every path.
    assert_eq!(dec.class_counts, original.class_counts);
    let back = PathRemap::from_spec(PLACES_DECOUPLING, PLACES_MISLAS);
    for ((p, l), (q, m)) in dec.entries.iter().zip(&original.entries) {
        assert_eq!(back.apply(p.to_str().unwrap()).unwrap(), q.to_str().unwrap());
        assert_eq!(l, m);
    }
    let test = ListDataset::from_file(&dir.join("Places_LT_test.txt"), Some(&PathRemap::from_spec("val_256/", "val/")))
        .unwrap();
    assert!(test.entries.iter().all(|(p, _)| p.starts_with("val") && !p.starts_with("val_256")));
}

#[test]
#[ignore = "needs split lists: Places_LT_{train,test}.txt, ImageNet_LT_test.txt in splits/ under $GCL_TEST_DATA, else ../shared/datasets (set GCL_TEST_DATA to a data root holding them)"]
fn needs_split_lists_bad_line_error_names_file_and_line() {
    let dir = splits_dir();
    let text = std::fs::read_to_string(dir.join("Places_LT_train.txt")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[16] = "data_256/a/airfield/00000001.jpg zero";
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("Places_LT_train.txt");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let msg = format!("{:#}", ListDataset::from_file(&path, None).unwrap_err());
    assert!(
        msg.starts_with("Places_LT_train.txt:17: expected `path label`, got `data_256/a/airfield/00000001.jpg zero`"),
        "{msg}"
    );
    assert!(msg.contains("not an integer"), "{msg}");
}

#[test]
fn remap_that_does_not_fit_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("list.txt");
    std::fs::write(&path, "data_256/a/airfield/1.jpg 0\n\nelsewhere/2.jpg 1\n").unwrap();
    let remap = PathRemap::from_spec(PLACES_MISLAS, PLACES_DECOUPLING);
    let msg = format!("{:#}", ListDataset::from_file(&path, Some(&remap)).unwrap_err());
    assert!(msg.starts_with("list.txt:3: path `elsewhere/2.jpg`"), "{msg}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn inat_json_converts_to_list() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("train2018.json");
    write(
        &json,
        r#"{"info": {"year": 2018}, "categories": [{"id": 0}, {"id": 8141}],
            "images": [{"id": 10, "file_name": "train_val2018/Plantae/7477/a.jpg", "width": 800},
                       {"id": 11, "file_name": "train_val2018/Aves/1/b.jpg"}],
            "annotations": [{"id": 1, "image_id": 11, "category_id": 0},
                            {"id": 2, "image_id": 10, "category_id": 8141}]}"#,
    );
    let out = tmp.path().join("iNaturalist18_train.txt");
    assert_eq!(convert_inat_json(&json, &out).unwrap(), 2);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "train_val2018/Plantae/7477/a.jpg 8141\ntrain_val2018/Aves/1/b.jpg 0\n"
    );
    let ds = ListDataset::from_file(&out, None).unwrap();
    assert_eq!((ds.num_classes, ds.class_counts[0], ds.class_counts[8141]), (8142, 1, 1));

    // An image without annotation is named in the error.
    write(&json, r#"{"images": [{"id": 10, "file_name": "x/a.jpg"}], "annotations": []}"#);
    let msg = format!("{:#}", convert_inat_json(&json, &out).unwrap_err());
    assert!(msg.contains("image id 10 (`x/a.jpg`) has no annotation"), "{msg}");
    write(&json, r#"{"images": []}"#);
    let msg = format!("{:#}", convert_inat_json(&json, &out).unwrap_err());
    assert!(msg.contains("is not iNaturalist JSON"), "{msg}");
}

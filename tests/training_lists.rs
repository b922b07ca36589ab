//! The training engine on a list-file dataset (the Table 2 path): JPEG files named by
//! `path label` lists under an image root, decoded and augmented batch by batch.
use gcl_repro::data::spec::{DatasetName, DatasetSpec};
use gcl_repro::losses::Gcl;
use gcl_repro::losses::LossSpec;
use gcl_repro::models::spec::{Arch, Head};
use gcl_repro::training::spec::{OptimSpec, RunSpec, Stage2Spec};
use gcl_repro::training::{self, RunEnv, Silent};
use std::sync::atomic::AtomicBool;
use tch::{Device, Tensor};

#[test]
fn stage1_and_stage2_train_on_jpeg_lists() {
    let root = tempfile::tempdir().unwrap();
    let images = root.path().join("places");
    let list = gcl_repro::bench::images::generate_images(&images, 30, 3).unwrap();
    // The generated list has labels i % 10; keep 3 classes with a long tail: 10 / 6 / 3 images.
    let text = std::fs::read_to_string(&list).unwrap();
    let mut train = String::new();
    let mut test = String::new();
    let mut kept = [0usize; 3];
    for (i, line) in text.lines().enumerate() {
        let (path, _) = line.split_once(' ').unwrap();
        let class = i % 3;
        let want = [10, 6, 3][class];
        if kept[class] < want {
            kept[class] += 1;
            train.push_str(&format!("{path} {class}\n"));
        } else {
            test.push_str(&format!("{path} {class}\n"));
        }
    }
    std::fs::create_dir_all(root.path().join("splits")).unwrap();
    std::fs::write(root.path().join("splits/train.txt"), train).unwrap();
    std::fs::write(root.path().join("splits/test.txt"), test).unwrap();

    let mut spec = RunSpec {
        dataset: DatasetSpec {
            name: DatasetName::PlacesLt,
            train_list: Some("splits/train.txt".into()),
            test_list: Some("splits/test.txt".into()),
            image_root: Some("places".into()),
            ..DatasetSpec::default()
        },
        ..RunSpec::default()
    };
    spec.model.arch = Arch::ResnetSmall;
    spec.model.head = Head::Normed;
    spec.stage1.loss = LossSpec::Gcl(Gcl::default());
    spec.stage1.optim.epochs = 1;
    spec.stage1.optim.batch_size = 8;
    spec.stage1.optim.warmup_epochs = 0;
    let data = gcl_repro::data::load_any(&spec.dataset, root.path()).unwrap();
    assert_eq!(data.class_counts(), &[10, 6, 3]);
    let stop = AtomicBool::new(false);
    let d1 = tempfile::tempdir().unwrap();
    let ctx =
        |dir: &std::path::Path| RunEnv { device: Device::Cpu, dir: dir.to_path_buf(), stop: &stop, observer: &Silent };
    let r1 = training::run_stage1(&spec, &data, "s1", &ctx(d1.path())).unwrap();
    assert_eq!(r1.epochs.len(), 1);
    assert!(r1.epochs[0].train_loss.is_finite());
    assert_eq!(r1.final_eval.per_class.len(), 3);
    let emb = Tensor::read_safetensors(d1.path().join(training::EMBEDDINGS)).unwrap();
    let f = &emb.iter().find(|(n, _)| n == "train_features").unwrap().1;
    assert_eq!(f.size()[0], 19);

    spec.stage2 = Some(Stage2Spec {
        optim: OptimSpec { epochs: 1, batch_size: 8, ..Stage2Spec::default().optim },
        ..Stage2Spec::default()
    });
    let d2 = tempfile::tempdir().unwrap();
    let r2 = training::run_stage2(&spec, &data, "s2", "s1", d1.path(), &ctx(d2.path())).unwrap();
    assert_eq!(r2.stage, 2);
    assert!(r2.epochs[0].train_loss.is_finite());
}

#[test]
fn a_missing_image_names_the_list_line() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("train.txt"), "a.jpg 0\nb.jpg 1\n").unwrap();
    std::fs::write(root.path().join("test.txt"), "a.jpg 0\n").unwrap();
    let mut spec = RunSpec {
        dataset: DatasetSpec {
            name: DatasetName::ImagenetLt,
            train_list: Some("train.txt".into()),
            test_list: Some("test.txt".into()),
            ..DatasetSpec::default()
        },
        ..RunSpec::default()
    };
    spec.model.arch = Arch::ResnetSmall;
    spec.stage1.optim.epochs = 1;
    let data = gcl_repro::data::load_any(&spec.dataset, root.path()).unwrap();
    let stop = AtomicBool::new(false);
    let d = tempfile::tempdir().unwrap();
    let ctx = RunEnv { device: Device::Cpu, dir: d.path().to_path_buf(), stop: &stop, observer: &Silent };
    let err = format!("{:#}", training::run_stage1(&spec, &data, "k", &ctx).unwrap_err());
    assert!(err.contains("train.txt:") && err.contains(".jpg"), "{err}");
}

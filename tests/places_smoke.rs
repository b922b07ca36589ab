//! The Places-LT recipe's model surgery, end to end on generated JPEGs: a torchvision-layout
//! backbone loaded from a torchvision state_dict, its last block dropped, the rest frozen (no
//! gradient, BatchNorm in eval mode), an added trainable bottleneck (`layer5`) and a cosine
//! classifier (GCLLoss `Places-LT/models/resnet_places.py` and `pla_train_backbone.py`), with
//! the tiny arch of the same layout so it runs in seconds.
mod common;

use gcl_repro::data::spec::{DatasetName, DatasetSpec};
use gcl_repro::losses::Gcl;
use gcl_repro::losses::LossSpec;
use gcl_repro::models::spec::{Arch, Head, ModelSpec};
use gcl_repro::models::Network;
use gcl_repro::training::spec::RunSpec;
use gcl_repro::training::{self, RunEnv, Silent};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use tch::{Device, Tensor};

const FROZEN: [&str; 6] = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"];

/// A data root with Places-LT-named lists over generated JPEGs (3 classes: 10 / 6 / 3 train
/// images) and torchvision-layout "pretrained" weights of the tiny arch.
fn places_root(root: &Path) {
    let list = gcl_repro::bench::images::generate_images(&root.join("places365"), 30, 7).unwrap();
    let (mut train, mut test, mut kept) = (String::new(), String::new(), [0usize; 3]);
    for (i, line) in std::fs::read_to_string(list).unwrap().lines().enumerate() {
        let (path, _) = line.split_once(' ').unwrap();
        let class = i % 3;
        let out = if kept[class] < [10, 6, 3][class] { &mut train } else { &mut test };
        kept[class] += 1;
        out.push_str(&format!("{path} {class}\n"));
    }
    std::fs::create_dir_all(root.join("splits")).unwrap();
    std::fs::write(root.join("splits/Places_LT_train.txt"), train).unwrap();
    std::fs::write(root.join("splits/Places_LT_test.txt"), test).unwrap();
    // A full tiny net (layer4 with both its blocks): the run drops `layer4.1`, as the released
    // script deletes `layer4.2` from torchvision's ResNet-152 file.
    tch::manual_seed(99);
    let net = Network::new(
        &ModelSpec { arch: Arch::ResnetTiny, head: Head::Linear, ..ModelSpec::default() },
        1000,
        Device::Cpu,
    );
    // Running statistics that differ from a fresh net's, so a reset or an update would show.
    let named: Vec<(String, Tensor)> = net
        .backbone_vars
        .variables()
        .into_iter()
        .map(|(n, t)| {
            let t = if n.ends_with("running_var") { t.detach() * 2.0 + 0.5 } else { t.detach() };
            (n, t.contiguous())
        })
        .collect();
    std::fs::create_dir_all(root.join("pretrained")).unwrap();
    Tensor::write_safetensors(&named, root.join("pretrained/resnet_tiny.safetensors")).unwrap();
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

#[test]
fn frozen_parts_and_their_batchnorm_statistics_do_not_change_while_the_added_block_trains() {
    let root = tempfile::tempdir().unwrap();
    places_root(root.path());
    let mut spec = RunSpec {
        dataset: DatasetSpec {
            name: DatasetName::PlacesLt,
            train_list: Some("splits/Places_LT_train.txt".into()),
            test_list: Some("splits/Places_LT_test.txt".into()),
            image_root: Some("places365".into()),
            ..DatasetSpec::default()
        },
        ..RunSpec::default()
    };
    let pretrained = root.path().join("pretrained/resnet_tiny.safetensors");
    spec.model = ModelSpec {
        arch: Arch::ResnetTiny,
        head: Head::Normed,
        pretrained: Some(pretrained.to_string_lossy().into_owned()),
        freeze: FROZEN.iter().map(|s| s.to_string()).collect(),
        drop_blocks: 1,
        added_block: true,
        ..ModelSpec::default()
    };
    gcl_repro::models::parts::check(&spec.model).unwrap();
    spec.stage1.loss = LossSpec::Gcl(Gcl { scale: 30.0, noise_mul: 1.0, ..Gcl::default() });
    spec.stage1.mixup.on = true;
    spec.stage1.mixup.alpha = 0.2;
    spec.stage1.optim.epochs = 2;
    spec.stage1.optim.batch_size = 8;
    spec.stage1.optim.lr = 0.2;
    spec.stage1.optim.warmup_epochs = 0;
    let data = gcl_repro::data::load_any(&spec.dataset, root.path()).unwrap();
    let stop = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let env = RunEnv { device: Device::Cpu, dir: dir.path().to_path_buf(), stop: &stop, observer: &Silent };
    let r = training::run_stage1(&spec, &data, "places-freeze", &env).unwrap();
    assert_eq!(r.epochs.len(), 2);
    assert!(r.epochs.iter().all(|e| e.train_loss.is_finite()));

    let start = read(&pretrained);
    let end = read(&dir.path().join(training::FINAL_MODEL));
    let (mut frozen, mut stats) = (0, 0);
    for (name, after) in &end {
        let Some(var) = name.strip_prefix("backbone.") else { continue };
        if var.starts_with("layer5.") {
            continue;
        }
        assert!(!var.starts_with("layer4.1."), "the dropped block is gone: {var}");
        let before = start.get(var).unwrap_or_else(|| panic!("{var} is not in the pretrained file"));
        assert!(after.equal(before), "frozen `{var}` changed over 2 epochs");
        frozen += 1;
        stats += var.contains("running_") as usize;
    }
    assert!(frozen > 40 && stats >= 20, "{frozen} frozen tensors, {stats} BatchNorm statistics");
    // The added block trained: its weights moved from their init and its BatchNorm (train
    // mode) updated its running statistics away from 0 / 1.
    let mean = &end["backbone.layer5.bn3.running_mean"];
    assert!(mean.abs().max().double_value(&[]) > 1e-4, "layer5's BatchNorm never ran in train mode");
    let var = &end["backbone.layer5.bn1.running_var"];
    assert!((var - 1.0).abs().max().double_value(&[]) > 1e-4);
}

#[test]
fn a_places_style_cell_runs_from_its_recipe_and_explain_names_its_deviations() {
    let root = tempfile::tempdir().unwrap();
    places_root(root.path());
    let manifest = root.path().join("places.toml");
    std::fs::write(
        &manifest,
        r#"
[manifest]
title = "Places-style smoke"
seeds = [123]

[recipes.gcl_places]
source = "GCLLoss Places-LT/pla_train_backbone.py (the shape of it, at smoke size)"
model = { arch = "resnet_tiny", head = "normed", pretrained = "pretrained/resnet_tiny.safetensors", freeze = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"], drop_blocks = 1, added_block = true }
stage1 = { epochs = 1, batch_size = 8, lr = 0.2, weight_decay = 5e-4, warmup_epochs = 0, milestones = [], loss = { kind = "gcl", scale = 30, noise_mul = 1.0 }, mixup = true, mixup_alpha = 0.2 }
stage2 = { epochs = 1, batch_size = 8 }

[columns.places_lt]
dataset = { name = "places_lt", train_list = "splits/Places_LT_train.txt", test_list = "splits/Places_LT_test.txt", image_root = "places365" }

[rows.gcl]
label = "GCL (batch 4: differs from the recipe's 8)"
recipe = "gcl_places"
stage1 = { batch_size = 4 }
"#,
    )
    .unwrap();
    let cache = root.path().join("cache");
    let gcl = || {
        let mut c = common::gcl(&cache);
        c.env("GCL_DATA_ROOT", root.path());
        c
    };
    let explained = common::ok(gcl().arg("explain").arg(&manifest).arg("gcl.places_lt").output().unwrap());
    assert!(explained.contains("released recipe `gcl_places`: GCLLoss Places-LT/pla_train_backbone.py"), "{explained}");
    assert!(explained.contains("* stage1.batch_size = 4   released: 8"), "{explained}");
    assert!(
        explained.contains("  model.drop_blocks = 1") && explained.contains("  model.added_block = true"),
        "{explained}"
    );
    assert!(!explained.contains("* model."), "the model follows the recipe: {explained}");
    common::ok(gcl().arg("run").arg(&manifest).output().unwrap());
    let report = root.path().join("report");
    common::ok(gcl().arg("report").arg(&manifest).arg("--out").arg(&report).output().unwrap());
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(md.contains("GCL (batch 4"), "{md}");
}

//! `model.precision = "bf16"` (bf16 autocast, `models::precision`) on CPU: a run trains, its
//! weights, BatchNorm statistics and momentum stay fp32, it starts from the fp32 run's weights,
//! its key differs from fp32's, and an fp32 run's key is what it was before the setting existed.
mod common;
use gcl_repro::cache::key::{run_keys, stage1_material};
use gcl_repro::models::{Network, Precision};
use gcl_repro::training::spec::{RunSpec, Scale, Stage2Spec};
use gcl_repro::training::{self, RunEnv, Silent};
use std::sync::atomic::AtomicBool;
use tch::{Device, Kind, Tensor};

fn spec(precision: Precision) -> RunSpec {
    let mut s = common::synthetic_run(96, 8.0, 8);
    s.model.precision = precision;
    s.stage1.optim.epochs = 4;
    s.stage1.optim.batch_size = 8;
    s.stage1.optim.warmup_epochs = 1;
    s.stage1.optim.milestones = vec![3];
    s.seed = 5;
    s
}

/// libtorch's generator is process-wide: tests that seed it and draw take turns.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The final checkpoint's tensors by name and the per-epoch training losses.
fn train(spec: &RunSpec) -> (Vec<(String, Tensor)>, Vec<f64>) {
    let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let data: gcl_repro::data::Data =
        gcl_repro::data::load(&spec.dataset, std::path::Path::new("/nonexistent")).unwrap().into();
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let env = RunEnv { device: Device::Cpu, dir: dir.path().to_path_buf(), stop: &stop, observer: &Silent };
    let result = training::run_stage1(spec, &data, "k", &env).unwrap();
    let mut tensors = Tensor::read_safetensors(dir.path().join(training::CHECKPOINT)).unwrap();
    tensors.retain(|(n, _)| n != "__state_json__");
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    (tensors, result.epochs.iter().map(|r| r.train_loss).collect())
}

#[test]
fn bf16_trains_with_fp32_state_and_ends_near_but_not_at_fp32() {
    let (bf16, losses) = train(&spec(Precision::Bf16));
    assert!(losses.iter().all(|l| l.is_finite()), "bf16 losses {losses:?}");
    assert!(losses[3] < losses[0], "bf16 training lowers the loss: {losses:?}");
    assert!(bf16.iter().any(|(n, _)| n.contains("running_mean")), "the checkpoint holds BatchNorm statistics");
    assert!(bf16.iter().any(|(n, _)| n.starts_with("momentum.")), "the checkpoint holds momentum buffers");
    for (name, t) in &bf16 {
        if t.is_floating_point() {
            assert_eq!(t.kind(), Kind::Float, "{name} is kept in fp32");
        }
    }
    let (fp32, _) = train(&spec(Precision::Fp32));
    let names = |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&bf16), names(&fp32));
    let weight = |v: &[(String, Tensor)]| v.iter().find(|(n, _)| n == "head.linear.weight").unwrap().1.shallow_clone();
    let (w_bf16, w_fp32) = (weight(&bf16), weight(&fp32));
    let gap = (&w_bf16 - &w_fp32).abs().max().double_value(&[]);
    let size = w_fp32.abs().max().double_value(&[]);
    // Different numbers (bf16 keeps 8 bits of mantissa) but the same training: four epochs from
    // the same weights on the same stream end close.
    assert!(gap > 0.0, "bf16 changed nothing");
    assert!(gap < 0.5 * size, "bf16 weights {gap} away from fp32's (largest {size})");
}

#[test]
fn both_precisions_start_from_the_same_weights() {
    let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let weights = |precision| {
        tch::manual_seed(9);
        let s = spec(precision);
        Network::new(&s.model, 4, Device::Cpu).named_variables()
    };
    for ((name, a), (_, b)) in weights(Precision::Fp32).iter().zip(&weights(Precision::Bf16)) {
        assert!(a.equal(b), "{name} starts elsewhere under bf16");
    }
}

#[test]
fn bf16_has_its_own_keys_and_fp32_keeps_its_keys() {
    let fp32 = spec(Precision::Fp32);
    let written: RunSpec =
        toml::from_str(&format!("{}\n[model]\narch = \"resnet_small\"\nprecision = \"fp32\"\n", dataset_etc(&fp32)))
            .unwrap();
    assert_eq!(run_keys(&written, "d"), run_keys(&fp32, "d"), "writing fp32 out keeps the key");
    let material = gcl_repro::cache::key::canonical(&stage1_material(&fp32, "d"));
    assert!(!material.contains("precision"), "an fp32 key's material does not name precision: {material}");
    let mut with2 = fp32.clone();
    with2.stage2 = Some(Stage2Spec::default());
    let mut bf16 = with2.clone();
    bf16.model.precision = Precision::Bf16;
    let (a1, a2) = run_keys(&with2, "d");
    let (b1, b2) = run_keys(&bf16, "d");
    assert_ne!(a1, b1);
    assert_ne!(a2, b2);
    assert!(gcl_repro::cache::key::canonical(&stage1_material(&bf16, "d")).contains(r#""precision":"bf16""#));
}

/// `spec`'s settings other than `model` as TOML (the test writes its own `[model]`).
fn dataset_etc(spec: &RunSpec) -> String {
    let mut s = spec.clone();
    s.model = Default::default();
    let mut v = toml::Value::try_from(&s).unwrap();
    v.as_table_mut().unwrap().remove("model");
    toml::to_string(&v).unwrap()
}

#[test]
fn a_manifest_sets_precision_and_names_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let write = |value: &str| {
        let path = dir.path().join("m.toml");
        let row = format!("[rows.a]\nlabel = \"a\"\nmodel.precision = \"{value}\"\n");
        std::fs::write(&path, common::synthetic_manifest(1, 40, "", &row)).unwrap();
        gcl_repro::manifest::load(&path)
    };
    let m = write("bf16").unwrap();
    let cells = gcl_repro::manifest::expand(&m, Scale::Full, std::path::Path::new("/nonexistent")).unwrap();
    assert_eq!(cells[0].runs[0].spec.model.precision, Precision::Bf16);
    let err = format!("{:#}", write("fp16").unwrap_err());
    assert!(err.contains("`precision`") && err.contains("fp32, bf16"), "{err}");
}

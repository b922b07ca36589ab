//! `gcl-repro bench train`: the training loop `run` executes (data source, augmentation,
//! mixup, GCL loss, backward, SGD, schedule, one evaluation of the test split, the epoch's
//! checkpoint), timed for a number of steps of the released stage-1 recipe on CIFAR-10-LT,
//! beside two PyTorch eager references measured in the same call, in alternating rounds
//! (`scripts/bench_train_torch.py`):
//! - `released`: the released scripts' pipeline (torchvision `DataLoader`, PIL transforms);
//! - `tensor`: the fastest eager PyTorch loop we could write for the recipe (augmentation on
//!   tensors, channels-last; its docstring says what was tried).
//!
//! Each side times the same thing: `steps` training steps after `warmup` untimed ones, then one
//! evaluation of the 10,000 test images. images/s = steps x batch / (train + evaluation time).
//! Data reading and process start-up are outside the clocks, and so is, on our side, the
//! capture of the CUDA graph (done once per stage in `run`, during the warm-up here).
//!
//! `bench parity` (below) trains the same steps with the eager and the static/graph step from
//! the same weights and reports how far the weights end apart.
use super::step::sync;
use crate::data::spec::{DatasetName, DatasetSpec};
use crate::data::Data;
use crate::losses::LossSpec;
use crate::losses::{Ce, Criterion};
use crate::models::{trainable, Network, Precision};
use crate::training::batches::{self, BatchSource, Batches};
use crate::training::epoch;
use crate::training::sgd::Sgd;
use crate::training::spec::RunSpec;
use crate::training::stage::Split;
use crate::training::standard::Standard;
use crate::training::static_step::StepMode;
use crate::training::{self, RunEnv, Silent};
use anyhow::{bail, Context as _, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use tch::Device;

/// What `bench train` runs.
pub struct TrainBench {
    pub device: Device,
    pub mode: StepMode,
    pub steps: usize,
    pub warmup: usize,
    pub rounds: usize,
    pub data_root: PathBuf,
    pub python: PathBuf,
    pub script: PathBuf,
    /// Skip the PyTorch references (ours only).
    pub no_torch: bool,
    /// Also write `bench-train.json` and `bench-train.md` here.
    pub out: Option<PathBuf>,
    /// `bf16`: our loop is also timed with `model.precision = "bf16"`, beside fp32 in each round.
    pub precision: Precision,
}

/// One side of a round: our loop at a precision, or a PyTorch pipeline.
#[derive(Clone, Copy)]
enum Side {
    Ours(Precision),
    Torch(&'static str),
}

impl Side {
    fn label(self) -> String {
        match self {
            Side::Ours(Precision::Fp32) => "gcl-repro".into(),
            Side::Ours(p) => format!("gcl-repro {}", p.name()),
            Side::Torch(pipeline) => format!("PyTorch {pipeline} pipeline"),
        }
    }
}

/// One side's timing of one round.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timing {
    pub images_per_sec: f64,
    pub train_images_per_sec: f64,
    pub eval_seconds: f64,
    /// Peak resident memory of the process (CPU) in MiB, where known.
    pub peak_rss_mib: Option<f64>,
    pub test_top1: f64,
}

/// Where the benchmark's images come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Images {
    /// The official CIFAR-10 binaries under the data root: both sides read them.
    Raw,
    /// Only our prepared file (`data prepare`, as carried to a GPU host): the PyTorch side,
    /// which cannot read it, times random images of the same sizes.
    Prepared,
    /// Neither: both sides time random images with CIFAR-10-LT's sizes.
    Synthetic,
}

/// The released stage-1 recipe on CIFAR-10-LT γ = 100 and where its images come from.
pub fn recipe(data_root: &Path) -> (RunSpec, Images) {
    let mut spec = RunSpec::released_gcl().stage1_only();
    spec.stage1.optim.epochs = 1;
    let images = if data_root.join("cifar-10-batches-bin").is_dir() {
        Images::Raw
    } else if crate::data::prepared_path(&spec.dataset, data_root).is_ok_and(|p| p.is_file()) {
        Images::Prepared
    } else {
        Images::Synthetic
    };
    if images == Images::Synthetic {
        // 10 classes, 5,000 images in the largest, γ = 100: the sizes of CIFAR-10-LT.
        spec.dataset = DatasetSpec {
            name: DatasetName::Synthetic,
            classes: 10,
            max_per_class: 5000,
            imbalance: 100.0,
            test_per_class: 1000,
            ..DatasetSpec::default()
        };
    }
    (spec, images)
}

/// `spec` with its forward passes at `precision`.
fn at_precision(spec: &RunSpec, precision: Precision) -> RunSpec {
    let mut spec = spec.clone();
    spec.model.precision = precision;
    spec
}

fn test_len(data: &Data) -> usize {
    match data {
        Data::Memory(d) => d.test.len(),
        Data::Lists(d) => d.test.len(),
    }
}

/// A source that yields exactly `batches` full batches, cycling through the order.
struct Limited<'a> {
    inner: &'a dyn BatchSource,
    batches: usize,
}

impl BatchSource for Limited<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn batches(&self, order: Vec<usize>, batch_size: usize, augment: bool, seed: u64) -> Batches<'_> {
        let order: Vec<usize> = order.iter().copied().cycle().take(self.batches * batch_size).collect();
        self.inner.batches(order, batch_size, augment, seed)
    }
}

/// What one timed epoch trains: `steps` steps from the epoch seed `seed`, then an evaluation of
/// the whole test split (`full_evaluation`) or of its first batch only.
struct Steps {
    steps: usize,
    seed: u64,
    full_evaluation: bool,
}

/// Train one epoch of stage 1 (`run`'s loop, evaluation and checkpoint included) on `net` from
/// its current weights, in a fresh directory; returns the epoch's record.
fn train_steps(
    spec: &RunSpec,
    net: &Network,
    opt: &mut Sgd,
    data: &Data,
    device: Device,
    Steps { steps, seed, full_evaluation }: Steps,
    observer: &dyn crate::training::Observer,
) -> Result<crate::metrics::EpochRecord> {
    let dir = tempfile::tempdir()?;
    let stop = AtomicBool::new(false);
    let env = RunEnv { device, dir: dir.path().to_path_buf(), stop: &stop, observer };
    let (train, test) = batches::sources(data, device, spec.dataset.color_jitter);
    let limited = Limited { inner: train.as_ref(), batches: steps };
    let one_batch = Limited { inner: test.as_ref(), batches: 1 };
    let test: &dyn BatchSource = if full_evaluation { test.as_ref() } else { &one_batch };
    let labels = data.train_labels();
    let split = Split { labels: &labels, counts: data.class_counts(), train: &limited, test };
    let criterion = Criterion::new(&spec.stage1.loss, data.class_counts(), spec.model.head, device)?;
    let mut stage = Standard { spec: &spec.stage1, net, criterion, drw: None };
    let state = epoch::train(&env, &mut stage, opt, &split, seed)?;
    state.records.into_iter().next().context("the timed epoch left no record")
}

/// A network and its optimiser as `run_stage1` builds them, from seed 0.
fn build(spec: &RunSpec, data: &Data, device: Device) -> (Network, Sgd) {
    tch::manual_seed(0);
    let net = Network::new(&spec.model, data.num_classes() as i64, device);
    let mut params = trainable(&net.backbone_vars);
    params.extend(trainable(&net.head_vars));
    let opt = Sgd::new(params, spec.stage1.optim.momentum, spec.stage1.optim.weight_decay);
    (net, opt)
}

/// Clocks read by the training loop itself (an [`Observer`](crate::training::Observer)): when
/// the warm-up steps are done, when the last step is done, when the evaluation is done. So the
/// warm-up, and on CUDA the graph capture, happen in the same loop as the timed steps (the
/// static step lives for a stage, as in `run`) but outside the clock.
struct Clocks {
    device: Device,
    warmup: usize,
    last_step: usize,
    marks: std::cell::RefCell<Vec<Instant>>,
}

impl crate::training::Observer for Clocks {
    fn step_done(&self, step: usize, _mean_loss: f64, _accuracy: f64) {
        if step + 1 == self.warmup || step == self.last_step {
            sync(self.device);
            self.marks.borrow_mut().push(Instant::now());
        }
    }

    fn epoch_finished(&self, _record: &crate::metrics::EpochRecord) {
        self.marks.borrow_mut().push(Instant::now());
    }
}

/// Our side of one round: `warmup + steps` steps of one epoch of `run`'s loop, the clock
/// running from the end of the warm-up to the end of the evaluation.
pub fn time_ours(spec: &RunSpec, data: &Data, device: Device, steps: usize, warmup: usize) -> Result<Timing> {
    let (net, mut opt) = build(spec, data, device);
    let warmup = warmup.max(1);
    let clocks = Clocks { device, warmup, last_step: warmup + steps - 1, marks: Default::default() };
    let record = train_steps(
        spec,
        &net,
        &mut opt,
        data,
        device,
        Steps { steps: warmup + steps, seed: 2, full_evaluation: true },
        &clocks,
    )?;
    let marks = clocks.marks.into_inner();
    let [start, trained, evaluated] = marks[..] else {
        bail!("the training loop reported {} of its 3 clock marks", marks.len())
    };
    let train_seconds = (trained - start).as_secs_f64();
    let images = (steps * spec.stage1.optim.batch_size) as f64;
    Ok(Timing {
        images_per_sec: images / (evaluated - start).as_secs_f64(),
        train_images_per_sec: images / train_seconds,
        eval_seconds: (evaluated - trained).as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
        test_top1: record.test_top1,
    })
}

/// This process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The PyTorch side of one round: `pipeline` is `released` or `tensor`.
pub fn time_torch(b: &TrainBench, pipeline: &str, images: Images) -> Result<Timing> {
    let mut cmd = std::process::Command::new(&b.python);
    cmd.arg(&b.script)
        .args([
            "--pipeline",
            pipeline,
            "--steps",
            &b.steps.to_string(),
            "--warmup",
            &b.warmup.to_string(),
            "--batch",
            "64",
        ])
        .args(["--threads", &tch::get_num_threads().to_string(), "--device", &crate::device::device_label(b.device)]);
    if images == Images::Raw {
        cmd.arg("--data-root").arg(&b.data_root);
    } else {
        cmd.arg("--synthetic");
    }
    let v = super::step::reference_json(&mut cmd)?;
    let num = |k: &str| v[k].as_f64().with_context(|| format!("`{k}` missing from the PyTorch reference's output"));
    Ok(Timing {
        images_per_sec: num("images_per_sec")?,
        train_images_per_sec: num("train_images_per_sec")?,
        eval_seconds: num("eval_seconds")?,
        peak_rss_mib: v["peak_rss_mib"].as_f64(),
        test_top1: num("test_top1")?,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The report's opening: the recipe, the sides and the machine.
fn header(b: &TrainBench, images: Images, test_images: usize) -> Result<String> {
    let machine = crate::device::device_name(b.device);
    let mut md = String::new();
    writeln!(
        md,
        "# bench train\n\nGCL stage 1 as released (ResNet-32, cosine head, GCL s = 30, c = 0.5, log cloud, mixup α = 1, SGD lr 0.1 \
         momentum 0.9 wd 2e-4, batch 64) on {}: {} timed steps after {} warm-up ones, then one evaluation of the {} test images; \
         {} alternating round(s).\n\nmachine: {} ({machine}), {} threads, {} kernels, libtorch {}; our step: {}\n",
        match images {
            Images::Raw => "CIFAR-10-LT γ = 100 (real CIFAR-10, both sides)",
            Images::Prepared => "CIFAR-10-LT γ = 100 (our prepared file; the PyTorch side times random images of the same sizes)",
            Images::Synthetic => "random images with CIFAR-10-LT's sizes (no CIFAR-10 under the data root)",
        },
        b.steps,
        b.warmup,
        test_images,
        b.rounds,
        crate::device::device_label(b.device),
        tch::get_num_threads(),
        crate::numerics::effective_capability(),
        crate::device::libtorch_version(),
        match (b.mode, b.device.is_cuda()) {
            (StepMode::Eager, _) => "eager",
            (StepMode::Graph, true) => "static, replayed as a CUDA graph",
            (StepMode::Graph, false) => "static (no capture on CPU; same bits as eager)",
        },
    )?;
    Ok(md)
}

/// Our median fp32 rate over each PyTorch side's, and our other precision's over our fp32's,
/// as lines of `md` and as JSON.
fn ratios(
    md: &mut String,
    ours: Option<f64>,
    sides: &[Side],
    rates: &[Vec<f64>],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut ratios = serde_json::Map::new();
    for (side, rates) in sides.iter().zip(rates).skip(1) {
        let (line, name) = match side {
            Side::Ours(p) => (format!("ratio ours {}/ours fp32", p.name()), p.name().to_string()),
            Side::Torch(pipeline) => {
                (format!("ratio ours/PyTorch ({pipeline} pipeline)"), format!("{pipeline} pipeline"))
            }
        };
        match (ours, rates.is_empty()) {
            (Some(o), false) => {
                let m = median(rates.clone());
                let r = match side {
                    Side::Ours(_) => m / o,
                    Side::Torch(_) => o / m,
                };
                writeln!(md, "{line} {r:.2}")?;
                ratios.insert(name, r.into());
            }
            _ => writeln!(md, "{line} n/a")?,
        }
    }
    if let Some(o) = ours {
        writeln!(md, "median images/s: gcl-repro {o:.0}")?;
    }
    Ok(ratios)
}

/// Run the benchmark; returns its Markdown report (also written under `out`).
pub fn run(b: &TrainBench) -> Result<String> {
    training::set_step_mode(b.mode);
    let (spec, images) = recipe(&b.data_root);
    let data: Data = crate::data::load(&spec.dataset, &b.data_root)?.into();
    let machine = crate::device::device_name(b.device);
    let mut md = header(b, images, test_len(&data))?;
    md.push_str("| round | side | images/s | training images/s | evaluation s | peak RSS MiB | top-1 after |\n|---|---|---|---|---|---|---|\n");
    let mut sides = vec![Side::Ours(Precision::Fp32)];
    if !b.precision.is_fp32() {
        sides.push(Side::Ours(b.precision));
    }
    if !b.no_torch {
        sides.extend([Side::Torch("released"), Side::Torch("tensor")]);
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    let mut failures: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for round in 1..=b.rounds.max(1) {
        for (i, side) in sides.iter().enumerate() {
            let timing = match *side {
                Side::Ours(precision) => time_ours(&at_precision(&spec, precision), &data, b.device, b.steps, b.warmup),
                Side::Torch(pipeline) => time_torch(b, pipeline, images),
            };
            let side = side.label();
            match timing {
                Ok(t) => {
                    writeln!(
                        md,
                        "| {round} | {side} | {:.0} | {:.0} | {:.1} | {} | {:.2} |",
                        t.images_per_sec,
                        t.train_images_per_sec,
                        t.eval_seconds,
                        t.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
                        t.test_top1
                    )?;
                    rates[i].push(t.images_per_sec);
                    rows.push(serde_json::json!({"round": round, "side": side, "timing": t}));
                }
                Err(e) => {
                    writeln!(md, "| {round} | {side} | failed | | | | |")?;
                    failures.push(format!("{side}, round {round}: {e:#}"));
                }
            }
        }
    }
    md.push('\n');
    let ours = (!rates[0].is_empty()).then(|| median(rates[0].clone()));
    let ratios = ratios(&mut md, ours, &sides, &rates)?;
    for f in &failures {
        writeln!(md, "\nfailed: {f}")?;
    }
    if let Some(dir) = &b.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("bench-train.md"), &md)?;
        let json = serde_json::json!({
            "device": crate::device::device_label(b.device), "machine": machine, "mode": b.mode, "precision": b.precision, "steps": b.steps,
            "warmup": b.warmup, "rounds": b.rounds, "images": format!("{images:?}"), "rows": rows, "ratios": ratios, "failures": failures,
        });
        std::fs::write(dir.join("bench-train.json"), serde_json::to_string_pretty(&json)?)?;
    }
    if ours.is_none() {
        bail!("our side failed: {}\n{md}", failures.join("; "));
    }
    Ok(md)
}

/// `bench parity`: the same `steps` steps from the same weights with the eager and the static
/// step (a CUDA graph on CUDA). The recipe is ResNet-32 + mixup with cross-entropy, so that no
/// random draw happens inside the step and any difference is floating-point: zero on CPU (the
/// paths are bit-identical there), and on CUDA within `tolerance` of the weights' largest
/// magnitude. Returns the report and whether it passed.
pub fn parity(device: Device, steps: usize, tolerance: f64) -> Result<(String, bool)> {
    let mut spec = RunSpec::released_gcl().stage1_only();
    spec.stage1.loss = LossSpec::Ce(Ce::default());
    spec.stage1.optim.epochs = 1;
    spec.dataset = DatasetSpec {
        name: DatasetName::Synthetic,
        classes: 10,
        max_per_class: 200,
        imbalance: 10.0,
        test_per_class: 20,
        ..DatasetSpec::default()
    };
    let data: Data = crate::data::load(&spec.dataset, Path::new("/nonexistent"))?.into();
    let mut finals = Vec::new();
    for mode in [StepMode::Eager, StepMode::Graph] {
        training::set_step_mode(mode);
        let (net, mut opt) = build(&spec, &data, device);
        train_steps(&spec, &net, &mut opt, &data, device, Steps { steps, seed: 3, full_evaluation: false }, &Silent)?;
        finals.push(net.named_variables());
    }
    let (mut worst, mut worst_name, mut scale) = (0.0f64, String::new(), 0.0f64);
    for ((name, a), (_, b)) in finals[0].iter().zip(&finals[1]) {
        let d = (a - b).abs().max().double_value(&[]);
        scale = scale.max(a.abs().max().double_value(&[]));
        if d > worst || worst_name.is_empty() {
            (worst, worst_name) = (d, name.clone());
        }
    }
    let limit = if device == Device::Cpu { 0.0 } else { tolerance * scale };
    let captured = crate::training::static_step::GRAPHS_CAPTURED.load(std::sync::atomic::Ordering::Relaxed);
    // On CUDA the graph path must have been a graph (a failed capture falls back to uncaptured steps).
    let pass = worst <= limit && (device == Device::Cpu || captured > 0);
    let report = format!(
        "parity of the eager and the {} step on {} ({}): ResNet-32, CE + mixup, batch 64, {steps} steps from the same weights\n\
         largest |difference| of any weight or BatchNorm statistic: {worst:.3e} (at {worst_name}); largest |weight| {scale:.3e}\n\
         CUDA graphs captured: {captured}\n\
         tolerance: {} -> {}\n",
        if device.is_cuda() { "CUDA-graph" } else { "static" },
        crate::device::device_label(device),
        crate::device::device_name(device),
        if device == Device::Cpu { "0 (bit-identical on CPU)".to_string() } else { format!("{tolerance:e} x largest |weight| = {limit:.3e}") },
        if pass { "PASS" } else { "FAIL" },
    );
    Ok((report, pass))
}

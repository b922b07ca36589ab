//! Float32 lockstep with PyTorch at full scale: the released GCL stage 1 (ResNet-32, cosine
//! head, GCL s = 30, c = 0.5, mixup, SGD 0.9 / wd 2e-4 on every parameter, batch 128) on the real
//! CIFAR-10-LT (gamma 100, 12,406 images, 97 steps an epoch), in float32 as released, over whole
//! epochs of the released schedule.
//!
//! tests/lockstep_torch.rs shows that our step is PyTorch's to 1e-9 in float64 on a small network.
//! This test asks what that one cannot: whether, in float32, at full depth and on real images,
//! our trajectory stays as close to PyTorch's as PyTorch's own rounding lets two PyTorch runs
//! stay, or drifts away in some direction (an earlier fidelity run found our stem convolution
//! 8-25 % larger after 3 epochs, in 3 of 3 seeds). In float32 two runs of one recipe part by
//! rounding alone, so the measure is PyTorch against itself: scripts/lockstep_cifar.py draws one
//! random stream (orders, crops, flips, mixup, GCL noise) and trains three PyTorch trajectories
//! on it from the same initial weights (`ref`; `ulp`, from weights one ulp up; `nhwc`, the
//! network in channels-last memory order as ours runs on CPU, so other convolution and BatchNorm
//! kernels round differently at every step). Our
//! engine replays the same stream from the same weights (tests/lockstep/replay.rs, the pieces
//! tests/lockstep_torch.rs uses). At every checkpoint, our distance from `ref` (all parameters,
//! relative L2) must stay within [`SPREAD_FACTOR`] times the larger of PyTorch's two distances
//! from itself, and so must our stem convolution's norm and the stem BatchNorm's running
//! variance.
//!
//! About 3 minutes of training on 2 cores per epoch (four trajectories) and it needs a torch
//! Python and the real CIFAR-10, so `make test` leaves it out; `scripts/lockstep_cifar.sh`
//! runs it and writes its report (results/lockstep_cifar/). Settings from the environment:
//! GCL_LOCKSTEP_EPOCHS (1), GCL_LOCKSTEP_WARMUP (5, the released warm-up: epoch 1 at lr 0.02;
//! 0 is the 3-epoch compression of `bench fidelity`, lr 0.1 from the first step),
//! GCL_LOCKSTEP_SEED (123), GCL_LOCKSTEP_OUT (where the report goes), GCL_LOCKSTEP_NPZ (a
//! recorded stream to replay instead of running the script).
mod common;
#[path = "lockstep/replay.rs"]
mod replay;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use gcl_repro::losses::LossSpec;
use gcl_repro::losses::{Criterion, Gcl};
use gcl_repro::models::spec::{Arch, Head, ModelSpec};
use gcl_repro::models::{trainable, Network};
use gcl_repro::training::lr_schedule::lr_at;
use gcl_repro::training::sgd::Sgd;
use gcl_repro::training::spec::{Mixup, OptimSpec, Stage1Spec};
use replay::{epoch_batches, replayed_mixup_loss, Reference};
use tch::{Device, Kind, Tensor};

/// How much farther from PyTorch's `ref` our run may be than PyTorch is from itself (the larger
/// of `ulp` and `nhwc`) at a checkpoint. Float32 rounding differences grow at a rate set by
/// the trajectory, not by the engine, so an engine that rounds differently but computes the same
/// step lands at about PyTorch's own spread (factor near 1); one that computes another step
/// (weight decay, BatchNorm momentum, a loss term off) parts at once, by orders of magnitude
/// more, as tests/lockstep_torch.rs's broken references did.
const SPREAD_FACTOR: f64 = 4.0;

/// The PyTorch trajectories that measure its own spread (scripts/lockstep_cifar.py).
const SPREADS: [&str; 2] = ["ulp", "nhwc"];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
        .unwrap_or(default)
}

/// One trajectory: the loss of every step, every tensor's norm after every step, and every
/// tensor at the checkpoints.
struct Trajectory {
    loss: Vec<f64>,
    norms: HashMap<String, Vec<f64>>,
    at: HashMap<usize, HashMap<String, Tensor>>,
}

impl Trajectory {
    /// A PyTorch trajectory as recorded.
    fn recorded(r: &Reference, name: &str, checkpoints: &[usize]) -> Trajectory {
        let norms = r
            .under(&format!("{name}/norm/"))
            .keys()
            .map(|k| (k.clone(), r.f64s(&format!("{name}/norm/{k}"))))
            .collect();
        let at = checkpoints.iter().map(|&k| (k, r.under(&format!("{name}/at{k}/")))).collect();
        Trajectory { loss: r.f64s(&format!("{name}/loss")), norms, at }
    }
}

/// Our engine on the recorded stream: per epoch the rate `lr_at(epoch)`, per batch our
/// `mixup_step` with the recorded draws, `Sgd::zero_grad`, `backward`, `Sgd::step`.
fn ours(r: &Reference, spec: &Stage1Spec, checkpoints: &[usize], double: bool) -> Trajectory {
    let model = ModelSpec { arch: Arch::Resnet32, head: Head::Normed, ..ModelSpec::default() };
    let mut net = Network::new(&model, 10, Device::Cpu);
    if double {
        net.backbone_vars.double();
        net.head_vars.double();
    }
    let init: Vec<(String, Tensor)> = r.under("init/").into_iter().collect();
    net.load_named(&init).unwrap();
    let counts: Vec<usize> = r.i64s("data/counts").iter().map(|&n| n as usize).collect();
    let criterion = Criterion::new(&spec.loss, &counts, Head::Normed, Device::Cpu).unwrap();
    let mut params = trainable(&net.backbone_vars);
    params.extend(trainable(&net.head_vars));
    let mut opt = Sgd::new(params, spec.optim.momentum, spec.optim.weight_decay).nesterov(spec.optim.nesterov);
    let forward = |x: &Tensor| net.logits(&net.features(x, true));
    let mut t = Trajectory { loss: Vec::new(), norms: HashMap::new(), at: HashMap::new() };
    let started = std::time::Instant::now();
    for epoch in 1..=spec.optim.epochs {
        let lr = lr_at(&spec.optim, epoch);
        for (x, y) in epoch_batches(r, &format!("e{epoch}"), spec.optim.batch_size) {
            let step = t.loss.len();
            let x = if double { x.to_kind(Kind::Double) } else { x };
            let l = replayed_mixup_loss(r, &format!("s{step}"), &criterion, &forward, &x, &y);
            opt.zero_grad();
            l.backward();
            opt.step(lr);
            t.loss.push(l.double_value(&[]));
            for (name, v) in net.named_variables() {
                t.norms.entry(name).or_default().push(v.to_kind(Kind::Double).norm().double_value(&[]));
            }
            if checkpoints.contains(&(step + 1)) {
                t.at.insert(step + 1, net.named_variables().into_iter().map(|(n, v)| (n, v.detach().copy())).collect());
            }
        }
    }
    eprintln!("lockstep_cifar: ours: {} steps in {:.0} s", t.loss.len(), started.elapsed().as_secs_f64());
    t
}

/// Relative L2 distance of `a` from `b` over the tensors whose name `pick` keeps.
fn distance(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, pick: &dyn Fn(&str) -> bool) -> f64 {
    let (mut diff, mut size) = (0.0, 0.0);
    for (name, want) in b.iter().filter(|(n, _)| pick(n)) {
        let got = a.get(name).unwrap_or_else(|| panic!("ours has no `{name}`"));
        let want = want.to_kind(Kind::Double);
        diff += (got.to_kind(Kind::Double) - &want).square().sum(Kind::Double).double_value(&[]);
        size += want.square().sum(Kind::Double).double_value(&[]);
    }
    (diff / size).sqrt()
}

/// What is compared at each checkpoint: a name and the tensors it covers.
type Pick = fn(&str) -> bool;

const GROUPS: [(&str, Pick); 4] = [
    ("all parameters", |n| !n.contains("running_")),
    ("stem conv weight", |n| n == "backbone.conv1.weight"),
    ("stem BN running var", |n| n == "backbone.bn1.running_var"),
    ("every BN running var", |n| n.ends_with("running_var")),
];

/// The report and the failures: per checkpoint, each group's distance of ours and of PyTorch's
/// own spread from `ref`, and the steps' losses.
fn compare(traj: &HashMap<&str, Trajectory>, checkpoints: &[usize]) -> (String, Vec<String>) {
    let reference = &traj["ref"];
    let mut md = String::from(
        "| after step | group | ours vs ref | ulp vs ref | nhwc vs ref | ours / PyTorch's spread | ours vs nhwc |\n|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for &k in checkpoints {
        for (group, pick) in GROUPS {
            let d = |name: &str| distance(&traj[name].at[&k], &reference.at[&k], &pick);
            let ours = d("ours");
            let spread = SPREADS.iter().map(|s| d(s)).fold(0.0, f64::max);
            let ratio = ours / spread.max(1e-12);
            let to_nhwc = distance(&traj["ours"].at[&k], &traj["nhwc"].at[&k], &pick);
            let _ = writeln!(
                md,
                "| {k} | {group} | {ours:.3e} | {:.3e} | {:.3e} | {ratio:.2} | {to_nhwc:.3e} |",
                d("ulp"),
                d("nhwc")
            );
            if (ratio.is_nan() || ratio > SPREAD_FACTOR) && ours > 1e-6 {
                failures.push(format!(
                    "after step {k}, {group}: ours is {ours:.3e} from PyTorch's ref, PyTorch's own spread {spread:.3e} \
                     (x{ratio:.1} > x{SPREAD_FACTOR})"
                ));
            }
        }
    }
    let _ = writeln!(md, "\n| steps | mean abs loss difference from ref: ours | ulp | nhwc |\n|---|---|---|---|");
    let steps = reference.loss.len();
    let mut start = 0;
    for end in [1, 10, 30, steps].into_iter().filter(|&e| e <= steps) {
        if end <= start {
            continue;
        }
        let mean_diff = |name: &str| {
            traj[name].loss[start..end].iter().zip(&reference.loss[start..end]).map(|(a, b)| (a - b).abs()).sum::<f64>()
                / (end - start) as f64
        };
        let _ = writeln!(
            md,
            "| {}-{end} | {:.3e} | {:.3e} | {:.3e} |",
            start + 1,
            mean_diff("ours"),
            mean_diff("ulp"),
            mean_diff("nhwc")
        );
        start = end;
    }
    (md, failures)
}

/// The stem's norms (conv weight, BN running var) over the steps, ours and PyTorch's, as ratios
/// to `ref`: the drift the earlier fidelity run suggested, if there is one, shows here.
fn stem_table(traj: &HashMap<&str, Trajectory>) -> String {
    let reference = &traj["ref"];
    let steps = reference.loss.len();
    let mut md = String::from("| step | stem conv norm, ours / ref | ulp / ref | nhwc / ref | stem BN running var norm, ours / ref | ulp / ref | nhwc / ref |\n|---|---|---|---|---|---|---|\n");
    let mut marks: Vec<usize> =
        [1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 250].into_iter().filter(|&s| s < steps).collect();
    marks.push(steps);
    for s in marks {
        let ratio = |t: &str, n: &str| traj[t].norms[n][s - 1] / reference.norms[n][s - 1];
        let (c, v) = ("backbone.conv1.weight", "backbone.bn1.running_var");
        let _ = writeln!(
            md,
            "| {s} | {:.5} | {:.5} | {:.5} | {:.5} | {:.5} | {:.5} |",
            ratio("ours", c),
            ratio("ulp", c),
            ratio("nhwc", c),
            ratio("ours", v),
            ratio("ulp", v),
            ratio("nhwc", v)
        );
    }
    md
}

fn recorded_stream(epochs: usize, warmup: usize, seed: usize) -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(path) = std::env::var_os("GCL_LOCKSTEP_NPZ") {
        return (PathBuf::from(path), None);
    }
    let data = std::env::var_os("GCL_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets")))
        .join("cifar-10-batches-bin");
    assert!(
        data.is_dir(),
        "needs the real CIFAR-10 at {} (set GCL_TEST_DATA to a data root holding it)",
        data.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lockstep_cifar.npz");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lockstep_cifar.py");
    let (epochs, warmup, seed) = (epochs.to_string(), warmup.to_string(), seed.to_string());
    let args: Vec<&std::ffi::OsStr> = [
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--epochs".as_ref(),
        epochs.as_ref(),
        "--warmup".as_ref(),
        warmup.as_ref(),
        "--seed".as_ref(),
        seed.as_ref(),
    ]
    .to_vec();
    eprint!("{}", common::run_python(script, &args));
    (out, Some(dir))
}

#[test]
#[ignore = "trains four ResNet-32 trajectories on the real CIFAR-10-LT (about 3 min an epoch on 2 cores) and needs a torch Python: scripts/lockstep_cifar.sh runs it"]
fn lockstep_cifar_float32_stays_within_pytorchs_own_rounding_spread() {
    tch::set_num_threads(2);
    let (epochs, warmup, seed) =
        (env_or("GCL_LOCKSTEP_EPOCHS", 1), env_or("GCL_LOCKSTEP_WARMUP", 5), env_or("GCL_LOCKSTEP_SEED", 123));
    let (path, _dir) = recorded_stream(epochs, warmup, seed);
    let r = Reference::read(&path);
    let settings = r.i64s("meta/settings");
    let (epochs, warmup, double) = (settings[3] as usize, settings[4] as usize, settings[7] == 1);
    let spec = Stage1Spec {
        optim: OptimSpec {
            epochs,
            batch_size: settings[2] as usize,
            warmup_epochs: warmup,
            milestones: vec![settings[5] as usize, settings[6] as usize],
            ..OptimSpec::default()
        },
        loss: LossSpec::Gcl(Gcl { scale: 30.0, noise_mul: 0.5, ..Gcl::default() }),
        mixup: Mixup { on: true, alpha: 1.0 },
        ..Stage1Spec::default()
    };
    let checkpoints: Vec<usize> = r.i64s("meta/checkpoints").iter().map(|&k| k as usize).collect();
    let mut traj: HashMap<&str, Trajectory> =
        ["ref", "ulp", "nhwc"].into_iter().map(|n| (n, Trajectory::recorded(&r, n, &checkpoints))).collect();
    traj.insert("ours", ours(&r, &spec, &checkpoints, double));
    let per_epoch = (settings[0] as usize).div_ceil(spec.optim.batch_size);
    let recorded_lr = r.f64s("ref/lr");
    let lr_ok = (0..epochs).all(|e| (lr_at(&spec.optim, e + 1) - recorded_lr[e * per_epoch]).abs() < 1e-12);
    let first = (traj["ours"].loss[0] - traj["ref"].loss[0]).abs() / traj["ref"].loss[0];
    let (table, mut failures) = compare(&traj, &checkpoints);
    let md = format!(
        "# Float32 lockstep with PyTorch: GCL stage 1, ResNet-32, real CIFAR-10-LT\n\n\
         Command: `scripts/lockstep_cifar.sh` (GCL_LOCKSTEP_EPOCHS={epochs}, GCL_LOCKSTEP_WARMUP={warmup}, \
         GCL_LOCKSTEP_SEED={seed}); {dtype}, {steps} steps of batch {batch}, warm-up {warmup} epochs, lr {lrs:?} per epoch; \
         libtorch {lt}, {cpu}.\n\n\
         First step's loss: ours {o:.7} and PyTorch {t:.7} (relative {first:.1e}) from the same weights and batch.\n\n\
         Distances (relative L2) from PyTorch's `ref` trajectory: ours, and PyTorch's own from itself (`ulp`: initial \
         weights one ulp up; `nhwc`: channels-last memory order, as ours on CPU). The test asks ours / PyTorch's spread <= {SPREAD_FACTOR}.\n\n{table}\n\
         ## The stem over the steps\n\n{stem}",
        dtype = if double { "float64" } else { "float32" },
        steps = traj["ref"].loss.len(),
        batch = spec.optim.batch_size,
        lrs = (1..=epochs).map(|e| lr_at(&spec.optim, e)).collect::<Vec<_>>(),
        lt = gcl_repro::device::libtorch_version(),
        cpu = gcl_repro::device::cpu_name(),
        o = traj["ours"].loss[0],
        t = traj["ref"].loss[0],
        stem = stem_table(&traj),
    );
    eprintln!("{md}");
    if let Some(out) = std::env::var_os("GCL_LOCKSTEP_OUT") {
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(format!("lockstep_cifar_e{epochs}_w{warmup}_s{seed}.md")), &md).unwrap();
    }
    if !lr_ok {
        failures.push("our learning rates differ from the recorded ones".into());
    }
    if first > 1e-4 {
        failures.push(format!("the first step's loss differs by {first:.1e} relative (float32 rounding is near 1e-6)"));
    }
    assert!(failures.is_empty(), "{} deviations:\n{}", failures.len(), failures.join("\n"));
}

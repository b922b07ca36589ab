//! `gcl-repro bench fidelity`: our engine against an independent PyTorch run, by training.
//!
//! Both engines train the same recipes on the exact CIFAR-10-LT γ = 100 subset, on the same
//! device, with the released schedule compressed from 200 to `E` epochs by the one rule
//! (`training::lr_schedule::compress`: the warm-up whole where a quarter of the run holds it, the
//! decays at 80 % and 90 % of the run), `K` seeds each, one after the other:
//! - GCL stage 1 (cosine head, s = 30, c = 0.5, mixup), then
//! - GCL + CBEN cRT (the released stage 2 on that stage 1's final weights), and
//! - CE (linear head, no mixup).
//!
//! The PyTorch side is `scripts/fidelity_torch.py`, written from the released code's facts with
//! PyTorch's own init, BatchNorm and SGD (it shares no code or weights with us). For each recipe
//! the table gives mean ± std of the final-epoch top-1 of each engine, the difference of means
//! and Welch's t-test p-value. Seeds differ between the engines' generators, so only the
//! distributions can agree, which is what the test asks.
use crate::data::spec::{DatasetName, DatasetSpec};
use crate::data::Data;
use crate::losses::Ce;
use crate::losses::LossSpec;
use crate::models::spec::{Arch, Head};
use crate::stats::{mean_std, paired_t, welch};
use crate::training::spec::{OptimSpec, RunSpec, Stage1Spec, Stage2Spec};
use crate::training::{self, Progress, RunEnv};
use anyhow::{bail, Context as _, Result};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use tch::Device;

/// What `bench fidelity` runs.
pub struct FidelityOptions {
    pub epochs: usize,
    pub seeds: usize,
    pub data_root: PathBuf,
    pub device: Device,
    pub threads: usize,
    pub python: PathBuf,
    pub script: PathBuf,
    /// Where each run's files and the result table go.
    pub out: PathBuf,
}

/// Stage 2 trains at least this many epochs at any compression, so its cosine schedule has a
/// shape (one epoch would run at constant peak lr).
pub const MIN_STAGE2_EPOCHS: usize = 3;

/// The released schedule shrunk to `epochs` by the one rule (`training::lr_schedule::compress`):
/// (warm-up epochs, step milestones, stage-2 epochs: the released 30 scaled by `epochs / 200`).
pub fn compressed_schedule(epochs: usize) -> (usize, Vec<usize>, usize) {
    let c = training::lr_schedule::compress(epochs);
    let stage2 = (30.0 * epochs as f64 / 200.0).round() as usize;
    (c.warmup_epochs, c.milestones, stage2.max(MIN_STAGE2_EPOCHS))
}

/// The two run specs (GCL with its stage 2, CE) of one seed, at the compressed schedule.
pub fn recipes(epochs: usize, seed: u64) -> (RunSpec, RunSpec) {
    let (warmup, milestones, stage2_epochs) = compressed_schedule(epochs);
    let mut base = RunSpec {
        dataset: DatasetSpec { name: DatasetName::Cifar10, imbalance: 100.0, ..DatasetSpec::default() },
        ..RunSpec::default()
    };
    base.model.arch = Arch::Resnet32;
    base.seed = seed;
    base.stage1.optim.epochs = epochs;
    base.stage1.optim.warmup_epochs = warmup;
    base.stage1.optim.milestones = milestones;
    let mut gcl = RunSpec::released_gcl();
    gcl.dataset = base.dataset.clone();
    gcl.seed = seed;
    gcl.stage1 = Stage1Spec { loss: gcl.stage1.loss.clone(), mixup: gcl.stage1.mixup, ..base.stage1.clone() };
    gcl.stage2 = Some(Stage2Spec {
        optim: OptimSpec { epochs: stage2_epochs, ..Stage2Spec::default().optim },
        ..Stage2Spec::default()
    });
    let mut ce = base;
    ce.model.head = Head::Linear;
    ce.stage1.loss = LossSpec::Ce(Ce::default());
    ce.stage1.mixup.on = false;
    (gcl, ce)
}

/// The PyTorch script's config for one of our specs (the same values, spelled out).
fn torch_config(spec: &RunSpec, method: &str, opts: &FidelityOptions) -> serde_json::Value {
    let s1 = &spec.stage1;
    let mut cfg = json!({
        "data_dir": opts.data_root.join("cifar-10-batches-bin"),
        "imbalance": spec.dataset.imbalance,
        "method": method,
        "mixup": s1.mixup.on,
        "seed": spec.seed,
        "threads": opts.threads,
        "device": crate::device::device_label(opts.device),
        "stage1": {
            "epochs": s1.optim.epochs, "batch_size": s1.optim.batch_size, "lr": s1.optim.lr, "momentum": s1.optim.momentum,
            "weight_decay": s1.optim.weight_decay, "warmup_epochs": s1.optim.warmup_epochs,
            "milestones": s1.optim.milestones, "lr_decay": s1.optim.lr_decay,
        },
    });
    if let Some(s2) = &spec.stage2 {
        cfg["stage2"] = json!({
            "epochs": s2.optim.epochs, "batch_size": s2.optim.batch_size, "lr": s2.optim.lr,
            "momentum": s2.optim.momentum, "weight_decay": s2.optim.weight_decay,
        });
    }
    cfg
}

/// Final top-1 of each recipe for one engine and seed: [GCL stage 1, GCL + CBEN cRT, CE].
type Finals = [f64; 3];

/// Finals of one engine and seed, and the training seconds its runs recorded (a resumed
/// benchmark still reports the time its runs took when they trained).
fn ours(gcl: &RunSpec, ce: &RunSpec, data: &Data, opts: &FidelityOptions, dir: &Path) -> Result<(Finals, f64)> {
    let stop = AtomicBool::new(false);
    let observers =
        ["gcl_stage1", "gcl_crt", "ce"].map(|sub| Progress::new(format!("ours seed {} {sub}", gcl.seed), None));
    let env =
        |i: usize, sub: &str| RunEnv { device: opts.device, dir: dir.join(sub), stop: &stop, observer: &observers[i] };
    let s1 = training::run_stage1(&gcl.stage1_only(), data, "gcl-stage1", &env(0, "gcl_stage1"))?;
    let s2 = training::run_stage2(gcl, data, "gcl-crt", "gcl-stage1", &dir.join("gcl_stage1"), &env(1, "gcl_crt"))?;
    let c = training::run_stage1(ce, data, "ce", &env(2, "ce"))?;
    let seconds = s1.provenance.wall_seconds + s2.provenance.wall_seconds + c.provenance.wall_seconds;
    Ok(([s1.final_eval.top1, s2.final_eval.top1, c.final_eval.top1], seconds))
}

/// The PyTorch script's stage-1 weights of a seed (GCL), in its directory.
pub(crate) const TORCH_STAGE1: &str = "gcl_stage1.safetensors";
/// The PyTorch script's initial GCL weights of a seed, before any training.
const TORCH_INIT: &str = "gcl_init.safetensors";

pub(crate) fn torch_run(spec: &RunSpec, method: &str, opts: &FidelityOptions, dir: &Path) -> Result<serde_json::Value> {
    let weights = dir.join(TORCH_STAGE1);
    match method {
        "gcl" => script_run(spec, method, method, json!({ "save_stage1": weights }), &[weights], opts, dir),
        _ => script_run(spec, method, method, json!({}), &[], opts, dir),
    }
}

/// The script's initial GCL weights of a seed (`init_only`: the network built exactly as its
/// full run builds it, from the same seed, saved before any training).
pub(crate) fn torch_init(spec: &RunSpec, opts: &FidelityOptions, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(TORCH_INIT);
    script_run(
        spec,
        "gcl",
        "gcl_init",
        json!({ "save_init": path, "init_only": true }),
        std::slice::from_ref(&path),
        opts,
        dir,
    )?;
    Ok(path)
}

/// One call of the script as `name` (its config and result files), with `extra` config entries;
/// it must leave the `outputs`. A call already made with the same config is not made again.
fn script_run(
    spec: &RunSpec,
    method: &str,
    name: &str,
    extra: serde_json::Value,
    outputs: &[PathBuf],
    opts: &FidelityOptions,
    dir: &Path,
) -> Result<serde_json::Value> {
    std::fs::create_dir_all(dir)?;
    let cfg_path = dir.join(format!("{name}_config.json"));
    let out_path = dir.join(format!("{name}_result.json"));
    let mut cfg = torch_config(spec, method, opts);
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    let cfg_text = serde_json::to_string_pretty(&cfg)?;
    // A finished seed of an interrupted benchmark is not trained again, if it ran this config.
    let same_config = std::fs::read_to_string(&cfg_path).is_ok_and(|t| t == cfg_text);
    if let (true, Ok(text)) = (same_config, std::fs::read_to_string(&out_path)) {
        if let (Ok(v), true) = (serde_json::from_str(&text), outputs.iter().all(|o| o.is_file())) {
            return Ok(v);
        }
    }
    std::fs::write(&cfg_path, cfg_text)?;
    let status = Command::new(&opts.python)
        .arg(&opts.script)
        .arg("--config")
        .arg(&cfg_path)
        .arg("--out")
        .arg(&out_path)
        .status()
        .with_context(|| format!("cannot start {} {}", opts.python.display(), opts.script.display()))?;
    if !status.success() {
        bail!("{} failed ({status}) on {}", opts.script.display(), cfg_path.display());
    }
    let text = std::fs::read_to_string(&out_path)
        .with_context(|| format!("{} wrote no {}", opts.script.display(), out_path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// One seed of the paired check: PyTorch's stage-1 weights evaluated by both engines, and the
/// stage 2 of each engine trained from those very weights.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Paired {
    /// Our evaluation of PyTorch's stage-1 weights, and PyTorch's own (same weights, same images).
    pub stage1_ours: f64,
    pub stage1_torch: f64,
    /// Final top-1 of our stage 2 and of the script's released-recipe stage 2.
    pub stage2_ours: f64,
    pub stage2_torch: f64,
    /// Final top-1 of our GCL stage 1 started from the script's initial weights of the seed (the
    /// script's own stage 1 from them is `Finals[0]` of the script).
    pub stage1_from_torch_init: f64,
}

/// Our GCL stage 1 from the PyTorch script's initial weights of the seed (`model.init_from`):
/// both engines' stage 1 then start from one network; data order, augmentation, mixup and noise
/// still come from each engine's own generators.
fn ours_from_torch_init(
    gcl: &RunSpec,
    torch_init: &Path,
    data: &Data,
    opts: &FidelityOptions,
    dir: &Path,
) -> Result<(f64, f64)> {
    let mut spec = gcl.stage1_only();
    spec.model.pin_init_from(torch_init)?;
    let stop = AtomicBool::new(false);
    let observer = Progress::new(format!("ours seed {} stage 1 from PyTorch's init", gcl.seed), None);
    let env = RunEnv { device: opts.device, dir: dir.join("paired_stage1"), stop: &stop, observer: &observer };
    let s1 = training::run_stage1(&spec, data, "paired-stage1", &env)?;
    Ok((s1.final_eval.top1, s1.provenance.wall_seconds))
}

/// Our stage 2 from the PyTorch script's stage-1 weights: a stage 1 of no epochs that starts
/// from them (`model.init_from`), then the recipe's stage 2 on top.
fn ours_paired(
    gcl: &RunSpec,
    torch_weights: &Path,
    data: &Data,
    opts: &FidelityOptions,
    dir: &Path,
) -> Result<(f64, f64, f64)> {
    let mut spec = gcl.clone();
    spec.model.pin_init_from(torch_weights)?;
    spec.stage1.optim.epochs = 0;
    let stop = AtomicBool::new(false);
    let observers =
        ["imported_stage1", "paired_crt"].map(|sub| Progress::new(format!("ours seed {} {sub}", gcl.seed), None));
    let env =
        |i: usize, sub: &str| RunEnv { device: opts.device, dir: dir.join(sub), stop: &stop, observer: &observers[i] };
    let s1 = training::run_stage1(&spec.stage1_only(), data, "imported-stage1", &env(0, "imported_stage1"))?;
    let s2 = training::run_stage2(
        &spec,
        data,
        "paired-crt",
        "imported-stage1",
        &dir.join("imported_stage1"),
        &env(1, "paired_crt"),
    )?;
    Ok((s1.final_eval.top1, s2.final_eval.top1, s2.provenance.wall_seconds))
}

/// The script's finals and training seconds of one seed, with its GCL result (per class, shot
/// groups, per epoch) kept for the JSON.
fn theirs(gcl: &RunSpec, ce: &RunSpec, opts: &FidelityOptions, dir: &Path) -> Result<(Finals, f64, serde_json::Value)> {
    let top1 = |v: &serde_json::Value, stage: &str| -> Result<f64> {
        v[stage]["final_top1"].as_f64().with_context(|| format!("PyTorch result lacks {stage}.final_top1: {v}"))
    };
    let g = torch_run(gcl, "gcl", opts, dir)?;
    let c = torch_run(ce, "ce", opts, dir)?;
    let secs = |v: &serde_json::Value, stage: &str| v[stage]["seconds"].as_f64().unwrap_or(0.0);
    let seconds = secs(&g, "stage1") + secs(&g, "stage2") + secs(&c, "stage1");
    Ok(([top1(&g, "stage1")?, top1(&g, "stage2")?, top1(&c, "stage1")?], seconds, g))
}

pub const RECIPES: [&str; 3] = ["GCL stage 1", "GCL + CBEN cRT", "CE"];

/// The acceptance rule: a difference within 1.0 point, or not significant (p >= 0.05).
fn verdict(diff: f64, p: f64) -> String {
    match (diff.abs() <= 1.0, p.is_nan()) {
        (true, _) => "yes".into(),
        (false, true) => "untested (one seed: no variance, no test)".into(),
        (false, false) if p >= 0.05 => "yes".into(),
        (false, false) => "NO".into(),
    }
}

fn p_text(p: f64) -> String {
    if p.is_nan() {
        "n/a".into()
    } else {
        format!("{p:.3}")
    }
}

/// The result table (Markdown): the unpaired comparisons (Welch) from each engine's own runs,
/// then the paired ones from PyTorch's stage-1 weights (paired t-test).
pub fn table(ours: &[Finals], theirs: &[Finals], paired: &[Paired]) -> String {
    let mut text = String::from("| recipe | gcl-repro (tch) | PyTorch script | difference | test, p | within 1.0 or p ≥ 0.05 |\n|---|---|---|---|---|---|\n");
    for (r, name) in RECIPES.iter().enumerate() {
        let a: Vec<f64> = ours.iter().map(|f| f[r]).collect();
        let b: Vec<f64> = theirs.iter().map(|f| f[r]).collect();
        let ((ma, sa), (mb, sb)) = (mean_std(&a), mean_std(&b));
        let (_, _, p) = welch(&a, &b);
        let _ = writeln!(
            text,
            "| {name}, unpaired (own stage 1 each) | {ma:.2} ± {sa:.2} | {mb:.2} ± {sb:.2} | {:+.2} | Welch {} | {} |",
            ma - mb,
            p_text(p),
            verdict(ma - mb, p)
        );
    }
    type Pick = fn(&Paired) -> (f64, f64);
    let rows: [(&str, Pick); 3] = [
        ("GCL stage 1, **paired start** (both from PyTorch's initial weights of the seed)", |p| {
            (p.stage1_from_torch_init, p.stage1_torch)
        }),
        ("PyTorch's GCL stage-1 weights, evaluated by each engine", |p| (p.stage1_ours, p.stage1_torch)),
        ("GCL + CBEN cRT, **paired** (both stage 2s from PyTorch's stage 1)", |p| (p.stage2_ours, p.stage2_torch)),
    ];
    for (name, pick) in rows {
        let (a, b): (Vec<f64>, Vec<f64>) = paired.iter().map(pick).unzip();
        let ((ma, sa), (mb, sb)) = (mean_std(&a), mean_std(&b));
        let (d, sd, p) = paired_t(&a, &b);
        let _ = writeln!(
            text,
            "| {name} | {ma:.2} ± {sa:.2} | {mb:.2} ± {sb:.2} | {d:+.2} ± {sd:.2} | paired t {} | {} |",
            p_text(p),
            verdict(d, p)
        );
    }
    text
}

/// What both engines do alike but the released scripts do not, said under the table.
const SHARED_CHOICES: &str = "Choices both engines share that differ from the released scripts: the final-epoch checkpoint is \
reported and stage 2 starts from stage 1's final epoch (released: the best epoch on the test set); stage 2 samples by CBEN \
with the released code's a = 0.9999, b = 1e-5, the paper's sampler (the released `cifar_train_classifier.py` defaults to \
`--train_rule BalancedRS`, class-balanced); CE trains without mixup (the released `--mixup` flag is a `type=bool` argparse option that cannot be turned off).";

/// Trains both engines for every seed (ours first, then PyTorch, then our stage 2 on PyTorch's
/// stage 1, per seed) and writes `fidelity.json` and `fidelity.md` into `opts.out`. Returns
/// the Markdown.
pub fn run(opts: &FidelityOptions) -> Result<String> {
    tch::set_num_threads(opts.threads as i32);
    std::fs::create_dir_all(&opts.out)?;
    let started = Instant::now();
    let (mut ours_all, mut theirs_all, mut paired, mut torch_gcl_results) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ours_seconds, mut theirs_seconds) = (0.0, 0.0);
    let seeds: Vec<u64> = (0..opts.seeds as u64).map(|i| 123 + i).collect();
    // Every seed trains on the same CIFAR-10-LT subset: read it once.
    let data: Data = crate::data::load(&recipes(opts.epochs, 0).0.dataset, &opts.data_root)?.into();
    for &seed in &seeds {
        let (gcl, ce) = recipes(opts.epochs, seed);
        let ours_dir = opts.out.join(format!("ours/seed{seed}"));
        let torch_dir = opts.out.join(format!("torch/seed{seed}"));
        let (o, t_ours) = ours(&gcl, &ce, &data, opts, &ours_dir)?;
        let (p, t_torch, torch_gcl) = theirs(&gcl, &ce, opts, &torch_dir)?;
        let (stage1_ours, stage2_ours, t_paired) =
            ours_paired(&gcl, &torch_dir.join(TORCH_STAGE1), &data, opts, &ours_dir)?;
        let (stage1_from_torch_init, t_init) =
            ours_from_torch_init(&gcl, &torch_init(&gcl, opts, &torch_dir)?, &data, opts, &ours_dir)?;
        let pair = Paired { stage1_ours, stage1_torch: p[0], stage2_ours, stage2_torch: p[1], stage1_from_torch_init };
        tracing::info!(
            "fidelity seed {seed}: ours {o:?} ({t_ours:.0} s), PyTorch {p:?} ({t_torch:.0} s), paired {pair:?}"
        );
        ours_seconds += t_ours + t_paired + t_init;
        theirs_seconds += t_torch;
        ours_all.push(o);
        theirs_all.push(p);
        paired.push(pair);
        torch_gcl_results.push(torch_gcl);
    }
    let command: Vec<String> = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    let mut md = header(opts, &seeds, &command);
    md.push_str(&table(&ours_all, &theirs_all, &paired));
    let _ = writeln!(md, "\n{SHARED_CHOICES}");
    md.push_str(&per_seed(&seeds, &ours_all, &theirs_all, &paired));
    let (dynamics_md, dynamics) = super::dynamics::section(&opts.out, &seeds, TORCH_STAGE1)?;
    let _ = writeln!(
        md,
        "\nTraining time recorded by the runs (evaluation included): ours {:.1} min, PyTorch {:.1} min; \
         this invocation took {:.1} min (finished seeds of an interrupted check are not trained again).",
        ours_seconds / 60.0,
        theirs_seconds / 60.0,
        started.elapsed().as_secs_f64() / 60.0
    );
    md.push_str(&dynamics_md);
    let json = json!({
        "epochs": opts.epochs, "seeds": seeds, "recipes": RECIPES, "ours": ours_all, "torch": theirs_all,
        "paired": paired, "torch_gcl_results": torch_gcl_results, "dynamics": dynamics,
        "engine_version": crate::ENGINE_VERSION, "git_commit": env!("GCL_GIT_COMMIT"),
        "libtorch": crate::device::libtorch_version(), "cpu": crate::device::cpu_name(), "threads": opts.threads,
        "command": command,
        "train_seconds": { "ours": ours_seconds, "torch": theirs_seconds },
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    crate::atomic::write(&opts.out.join("fidelity.json"), serde_json::to_string_pretty(&json)?)?;
    crate::atomic::write(&opts.out.join("fidelity.md"), &md)?;
    Ok(md)
}

/// The report's opening: the command, the versions, the schedule and what the rows mean.
fn header(opts: &FidelityOptions, seeds: &[u64], command: &[String]) -> String {
    let (warmup, milestones, s2) = compressed_schedule(opts.epochs);
    format!(
        "# Fidelity: gcl-repro against an independent PyTorch run\n\n\
         Command: `{cmd}` (gcl-repro {version}, commit {commit}, engine {engine}).\n\n\
         CIFAR-10-LT γ = 100 (12,406 train images, the Cao et al. subset), ResNet-32, final-epoch test top-1 (%).\n\
         Schedule compressed from 200 to {e} epochs: warm-up {warmup}, milestones {milestones:?}, stage 2 {s2} epochs \
         (at least {MIN_STAGE2_EPOCHS}, cosine from the released peak).\n\
         Seeds {seeds:?} for each engine; device {dev} ({cpu}); our CPU path: {path}; libtorch {lt}.\n\n\
         Unpaired rows: each engine trains from its own random init, so they differ by chance as well. Paired rows: \
         both engines start from the PyTorch script's own weights of the same seed, read through `model.init_from`: \
         its initial weights for stage 1 (removing the chance of the init; data order, augmentation, mixup and noise \
         still differ), its stage-1 weights for stage 2 (removing stage 1's chance).\n\n",
        cmd = command.join(" "),
        version = env!("CARGO_PKG_VERSION"),
        commit = env!("GCL_GIT_COMMIT"),
        engine = crate::ENGINE_VERSION,
        e = opts.epochs,
        dev = crate::device::device_label(opts.device),
        cpu = crate::device::cpu_name(),
        path = crate::numerics::describe(),
        lt = crate::device::libtorch_version(),
    )
}

/// One line per seed: every final top-1 of both engines and of the paired runs.
fn per_seed(seeds: &[u64], ours_all: &[Finals], theirs_all: &[Finals], paired: &[Paired]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\nPer seed (ours | PyTorch), {}; paired: stage 1 from PyTorch's init ours / PyTorch, stage 1 read by ours / PyTorch, \
         stage 2 ours / PyTorch:",
        RECIPES.join(", ")
    );
    for (i, seed) in seeds.iter().enumerate() {
        let f = |v: &Finals| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" / ");
        let p = &paired[i];
        let _ = writeln!(
            md,
            "- seed {seed}: {} | {}; paired: {:.2} / {:.2}, {:.2} / {:.2}, {:.2} / {:.2}",
            f(&ours_all[i]),
            f(&theirs_all[i]),
            p.stage1_from_torch_init,
            p.stage1_torch,
            p.stage1_ours,
            p.stage1_torch,
            p.stage2_ours,
            p.stage2_torch
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_scales_every_milestone() {
        assert_eq!(compressed_schedule(200), (5, vec![160, 180], 30));
        assert_eq!(compressed_schedule(6), (1, vec![5, 5], 3), "stage 2 keeps at least 3 epochs");
        assert_eq!(compressed_schedule(20), (5, vec![16, 18], 3));
        assert_eq!(compressed_schedule(40), (5, vec![32, 36], 6));
    }
}

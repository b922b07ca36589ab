//! `gcl-repro bench init`: does our initialisation start GCL where PyTorch's does, and does the
//! stem grow alike from the same weights? (#29's two leads from `bench fidelity`.)
//!
//! Two measurements on the real CIFAR-10-LT γ = 100:
//! - **Step 0**, over many seeds of each init, in our engine (so only the weights differ): on
//!   the same fixed training images, GCL's loss as the first step sees it (BatchNorm on batch
//!   statistics, the noise from one fixed seed), the mean pairwise cosine of the 64-d features
//!   (near 1 means the cosine head gives every image about the same class) and the share of the
//!   most-predicted class. PyTorch's inits come from `scripts/fidelity_torch.py` (`init_only`).
//! - **The first epochs** of `bench fidelity`'s GCL stage 1, per seed: ours from our init and
//!   ours from PyTorch's init of the seed (the same stream: our generators, seeded by the seed,
//!   so the pair differs by the init alone), and the script's own run from its init (same
//!   weights as the second, its own stream). Per run: the loss of each epoch, top-1, the stem.
use super::dynamics::{stem, stem_of};
use super::fidelity::{recipes, torch_init, torch_run, FidelityOptions, TORCH_STAGE1};
use crate::data::samplers::{epoch_indices, SamplerSpec};
use crate::data::Data;
use crate::losses::Criterion;
use crate::models::heads::l2_normalize;
use crate::models::Network;
use crate::stats::{mean_pm_std, paired_t, welch};
use crate::training::spec::RunSpec;
use crate::training::{self, batches, Progress, RunEnv};
use anyhow::{Context as _, Result};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use tch::{Kind, Tensor};

/// What `bench init` runs.
pub struct InitOptions {
    /// The compressed schedule (`epochs`: its length, as `bench fidelity --epochs`), the seeds
    /// of the trained pairs (`seeds` of them from `first_seed`), device, threads, script, output.
    pub fidelity: FidelityOptions,
    /// How many epochs of that schedule each run trains.
    pub train_epochs: usize,
    pub first_seed: u64,
    /// Seeds of each init measured at step 0 (from `first_seed`).
    pub stat_seeds: usize,
}

/// Training images of the step-0 measurement: the first ones of a fixed shuffled order.
const STAT_IMAGES: usize = 512;
/// Our initial weights of a seed, in `ours/seedN/` (PyTorch's are `torch/seedN/gcl_init.safetensors`).
pub const OWN_INIT: &str = "own_init.safetensors";
const STAT_BATCH: usize = 128;

/// Step-0 statistics of one initial network: [GCL loss, mean pairwise feature cosine, share of
/// the most-predicted class].
type Step0 = [f64; 3];
const STEP0_NAMES: [&str; 3] =
    ["GCL loss at step 0", "mean pairwise cosine of the features", "share of the most-predicted class"];

/// The step-0 statistics of `net` on the fixed images (BatchNorm on batch statistics, as the
/// first training step; GCL's noise drawn from seed 0, the same for every network).
fn step0(net: &Network, criterion: &Criterion, data: &Data, device: tch::Device) -> Result<Step0> {
    let labels = data.train_labels();
    let mut order = epoch_indices(&SamplerSpec::default(), &labels, data.class_counts(), 0);
    order.truncate(STAT_IMAGES);
    let (train, _) = batches::sources(data, device, false);
    tch::manual_seed(0);
    let (mut feats, mut outs, mut loss_sum) = (Vec::new(), Vec::new(), 0.0);
    let mut batches = 0.0;
    tch::no_grad(|| -> Result<()> {
        for batch in train.batches(order, STAT_BATCH, false, 0) {
            let (x, y) = batch?;
            let f = net.features(&x, true);
            let out = net.logits(&f);
            loss_sum += criterion.loss(&out, &y, true).double_value(&[]);
            batches += 1.0;
            feats.push(f);
            outs.push(out);
        }
        Ok(())
    })?;
    let f = l2_normalize(&Tensor::cat(&feats, 0).to_kind(Kind::Double), 1);
    let n = f.size()[0] as f64;
    let cos_sum = f.matmul(&f.tr()).sum(Kind::Double).double_value(&[]);
    let mean_cos = (cos_sum - n) / (n * (n - 1.0));
    let top = Tensor::cat(&outs, 0).argmax(1, false).bincount(None::<Tensor>, net.num_classes());
    let top_share = top.max().double_value(&[]) / n;
    Ok([loss_sum / batches, mean_cos, top_share])
}

/// Step-0 statistics of our init and of the script's init, for every statistics seed.
fn step0_all(opts: &InitOptions, data: &Data) -> Result<(Vec<Step0>, Vec<Step0>)> {
    let f = &opts.fidelity;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for seed in (0..opts.stat_seeds as u64).map(|i| opts.first_seed + i) {
        let spec = recipes(f.epochs, seed).0;
        let criterion = Criterion::new(&spec.stage1.loss, data.class_counts(), spec.model.head, f.device)?;
        let classes = data.num_classes() as i64;
        tch::manual_seed(seed as i64); // as `train_stage1` draws our init
        let own = Network::new(&spec.model, classes, f.device);
        // Kept beside PyTorch's (not committed), so the two sets of weights can be compared.
        let own_path = f.out.join(format!("ours/seed{seed}/{OWN_INIT}"));
        std::fs::create_dir_all(own_path.parent().unwrap_or(&f.out))?;
        crate::training::checkpoint::write_atomic(&own_path, &own.named_variables())?;
        ours.push(step0(&own, &criterion, data, f.device)?);
        let path = torch_init(&spec, f, &f.out.join(format!("torch/seed{seed}")))?;
        let imported = Network::new(&spec.model, classes, f.device);
        crate::models::import::load_state_dict(&imported, &path)?;
        theirs.push(step0(&imported, &criterion, data, f.device)?);
        tracing::info!("bench init step 0, seed {seed}: ours {:?}, PyTorch {:?}", ours.last(), theirs.last());
    }
    Ok((ours, theirs))
}

/// One trained run: each epoch's training loss, the final top-1, the stem (conv norm, BN var).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Trained {
    pub losses: Vec<f64>,
    pub top1: f64,
    pub stem: (f64, f64),
}

/// Our first epochs of GCL stage 1 for `spec` (from its `init_from`, if any) in `dir`.
fn ours(spec: &RunSpec, data: &Data, opts: &FidelityOptions, dir: &Path, label: &str) -> Result<Trained> {
    let stop = AtomicBool::new(false);
    let observer = Progress::new(format!("ours seed {} {label}", spec.seed), None);
    let env = RunEnv { device: opts.device, dir: dir.to_path_buf(), stop: &stop, observer: &observer };
    let (net, state) = training::stage1::train_stage1(spec, data, &env)?;
    let stem = stem_of(&net.named_variables(), "backbone.")?;
    let losses = state.records.iter().map(|r| r.train_loss).collect();
    let top1 = state.records.last().map_or(f64::NAN, |r| r.test_top1);
    Ok(Trained { losses, top1, stem })
}

/// The script's first epochs from its own init of the seed.
fn theirs(spec: &RunSpec, opts: &FidelityOptions, dir: &Path) -> Result<Trained> {
    let result = torch_run(spec, "gcl", opts, dir)?;
    let epochs = result["stage1"]["per_epoch"].as_array().context("the script's result has no stage1.per_epoch")?;
    let value = |e: &serde_json::Value, k: &str| e[k].as_f64().with_context(|| format!("an epoch without {k}"));
    let losses = epochs.iter().map(|e| value(e, "train_loss")).collect::<Result<Vec<_>>>()?;
    let top1 = epochs.last().map(|e| value(e, "test_top1")).transpose()?.unwrap_or(f64::NAN);
    Ok(Trained { losses, top1, stem: stem(&dir.join(TORCH_STAGE1), "")? })
}

/// The three runs of one seed: [ours from our init, ours from PyTorch's init, PyTorch].
fn trained_seed(opts: &InitOptions, data: &Data, seed: u64) -> Result<[Trained; 3]> {
    let f = &opts.fidelity;
    let mut spec = recipes(f.epochs, seed).0.stage1_only();
    spec.stage1.optim.epochs = opts.train_epochs;
    let (ours_dir, torch_dir) = (f.out.join(format!("ours/seed{seed}")), f.out.join(format!("torch/seed{seed}")));
    let own = ours(&spec, data, f, &ours_dir.join("own_init"), "from our init")?;
    let init = torch_init(&recipes(f.epochs, seed).0, f, &torch_dir)?;
    let mut paired = spec.clone();
    paired.model.pin_init_from(&init)?;
    let from_torch = ours(&paired, data, f, &ours_dir.join("torch_init"), "from PyTorch's init")?;
    let torch = theirs(&spec, f, &torch_dir)?;
    Ok([own, from_torch, torch])
}

/// "mean ± sd (p, k of n above 0)" of the paired differences `a - b`.
fn paired_text(a: &[f64], b: &[f64], digits: usize) -> String {
    let (m, sd, p) = paired_t(a, b);
    let above = a.iter().zip(b).filter(|(x, y)| x > y).count();
    format!("{m:+.digits$} ± {sd:.digits$} (paired t p {p:.3}; {above} of {} above)", a.len())
}

/// The step-0 table: each statistic, ours and PyTorch's inits, Welch's p.
pub fn step0_table(ours: &[Step0], theirs: &[Step0]) -> String {
    let mut md = String::from("| statistic at step 0 | our init | PyTorch's init | Welch p |\n|---|---|---|---|\n");
    for (i, name) in STEP0_NAMES.iter().enumerate() {
        let (a, b): (Vec<f64>, Vec<f64>) = (ours.iter().map(|s| s[i]).collect(), theirs.iter().map(|s| s[i]).collect());
        let _ = writeln!(md, "| {name} | {} | {} | {:.3} |", mean_pm_std(&a, 3), mean_pm_std(&b, 3), welch(&a, &b).2);
    }
    md
}

/// The trained table (one row per seed) and the paired summaries below it.
pub fn trained_table(seeds: &[u64], runs: &[[Trained; 3]]) -> String {
    let mut md = String::from(
        "| seed | loss, epoch 1: ours (own init) | ours (PyTorch's init) | PyTorch | top-1: ours (own) | ours (PyTorch's init) | PyTorch | stem conv norm: ours (PyTorch's init) | PyTorch | ratio |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (seed, [own, from_torch, torch]) in seeds.iter().zip(runs) {
        let _ = writeln!(
            md,
            "| {seed} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} |",
            own.losses[0],
            from_torch.losses[0],
            torch.losses[0],
            own.top1,
            from_torch.top1,
            torch.top1,
            from_torch.stem.0,
            torch.stem.0,
            from_torch.stem.0 / torch.stem.0
        );
    }
    let col = |run: usize, f: &dyn Fn(&Trained) -> f64| runs.iter().map(|r| f(&r[run])).collect::<Vec<f64>>();
    let first = |t: &Trained| t.losses[0];
    let log_stem = |t: &Trained| t.stem.0.ln();
    let ratios: Vec<f64> = runs.iter().map(|r| r[1].stem.0 / r[2].stem.0).collect();
    let _ = writeln!(
        md,
        "\n- Epoch-1 loss, our init − PyTorch's init, both in our engine on the same stream: {}.\n\
         - Epoch-1 loss, ours − PyTorch from the same initial weights (each its own stream): {}.\n\
         - Stem conv norm ours / PyTorch from the same initial weights: {} (log ratio {}).",
        paired_text(&col(0, &first), &col(1, &first), 3),
        paired_text(&col(1, &first), &col(2, &first), 3),
        mean_pm_std(&ratios, 3),
        paired_text(&col(1, &log_stem), &col(2, &log_stem), 3),
    );
    md
}

/// Measures both, writes `init.md` and `init.json` into the output folder, returns the Markdown.
/// Finished runs of an interrupted call are not trained again (each resumes from its folder).
pub fn run(opts: &InitOptions) -> Result<String> {
    let f = &opts.fidelity;
    tch::set_num_threads(f.threads as i32);
    std::fs::create_dir_all(&f.out)?;
    let started = std::time::Instant::now();
    let data: Data = crate::data::load(&recipes(f.epochs, 0).0.dataset, &f.data_root)?.into();
    let (ours0, theirs0) = step0_all(opts, &data)?;
    let seeds: Vec<u64> = (0..f.seeds as u64).map(|i| opts.first_seed + i).collect();
    let runs = seeds.iter().map(|&s| trained_seed(opts, &data, s)).collect::<Result<Vec<_>>>()?;
    let command: Vec<String> = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    let (warmup, milestones, _) = super::fidelity::compressed_schedule(f.epochs);
    let mut md = format!(
        "# Initialisation: our init against PyTorch's, at step 0 and over the first epochs\n\n\
         Command: `{cmd}` (gcl-repro {version}, commit {commit}, engine {engine}); device {dev} ({cpu}), {threads} threads; \
         {minutes:.1} min.\n\n\
         CIFAR-10-LT γ = 100, ResNet-32, GCL stage 1 (cosine head, s = 30, mixup) at `bench fidelity --epochs {e}`'s \
         schedule (warm-up {warmup}, milestones {milestones:?}), of which each run trains {t} epoch(s).\n\n\
         ## Step 0 ({n0} seeds of each init from {first})\n\n\
         Both inits in our engine, on the same {STAT_IMAGES} training images (a fixed shuffled order, no augmentation, \
         BatchNorm on batch statistics of {STAT_BATCH} as at the first step, GCL's noise from one fixed seed); \
         PyTorch's inits are `scripts/fidelity_torch.py`'s (`init_only`).\n\n",
        cmd = command.join(" "),
        version = env!("CARGO_PKG_VERSION"),
        commit = env!("GCL_GIT_COMMIT"),
        engine = crate::ENGINE_VERSION,
        dev = crate::device::device_label(f.device),
        cpu = crate::device::cpu_name(),
        threads = f.threads,
        minutes = started.elapsed().as_secs_f64() / 60.0,
        e = f.epochs,
        t = opts.train_epochs,
        n0 = opts.stat_seeds,
        first = opts.first_seed,
    );
    md.push_str(&step0_table(&ours0, &theirs0));
    let _ = writeln!(
        md,
        "\n## The first epoch(s), per seed\n\n\
         Ours from our init and ours from PyTorch's init share the stream (our generators, seeded by the seed), so \
         they differ by the init alone; ours and PyTorch from PyTorch's init share the weights, each with its own \
         stream. Loss: the training loss of epoch 1 (mixup's weighted loss); top-1 after the last trained epoch.\n"
    );
    md.push_str(&trained_table(&seeds, &runs));
    let json = json!({
        "command": command, "engine_version": crate::ENGINE_VERSION, "git_commit": env!("GCL_GIT_COMMIT"),
        "cpu": crate::device::cpu_name(), "threads": f.threads, "schedule_epochs": f.epochs,
        "train_epochs": opts.train_epochs, "step0": { "ours": ours0, "torch": theirs0, "names": STEP0_NAMES },
        "seeds": seeds, "runs": runs, "wall_seconds": started.elapsed().as_secs_f64(),
    });
    crate::atomic::write(&f.out.join("init.json"), serde_json::to_string_pretty(&json)?)?;
    crate::atomic::write(&f.out.join("init.md"), &md)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained(loss: f64, top1: f64, conv: f64) -> Trained {
        Trained { losses: vec![loss], top1, stem: (conv, 1.0) }
    }

    #[test]
    fn paired_text_counts_and_tests_the_differences() {
        // Differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.464 on 2 df, p = 0.0742.
        let text = paired_text(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0], 2);
        assert_eq!(text, "+2.00 ± 1.00 (paired t p 0.074; 3 of 3 above)");
    }

    #[test]
    fn trained_table_has_a_row_per_seed_and_the_stem_ratio() {
        let runs = vec![
            [trained(2.5, 20.0, 7.0), trained(2.2, 21.0, 7.7), trained(2.1, 22.0, 7.0)],
            [trained(2.4, 19.0, 6.0), trained(2.3, 18.0, 6.6), trained(2.2, 17.0, 6.0)],
        ];
        let md = trained_table(&[126, 127], &runs);
        assert!(md.contains("| 126 | 2.500 | 2.200 | 2.100 | 20.00 | 21.00 | 22.00 | 7.700 | 7.000 | 1.100 |"), "{md}");
        assert!(md.contains("| 127 |"), "{md}");
        // Own init minus PyTorch's init: 0.3 and 0.1, both above.
        assert!(md.contains("+0.200 ± 0.141 (paired t p"), "{md}");
        assert!(md.contains("2 of 2 above"), "{md}");
        assert!(md.contains("1.100 ± 0.000"), "{md}");
    }

    #[test]
    fn step0_table_names_every_statistic() {
        let ours = vec![[5.0, 0.95, 0.9], [6.0, 0.93, 0.8]];
        let theirs = vec![[5.5, 0.94, 0.7], [4.5, 0.96, 0.6]];
        let md = step0_table(&ours, &theirs);
        for name in STEP0_NAMES {
            assert!(md.contains(name), "{md}");
        }
        assert!(md.contains("| GCL loss at step 0 | 5.500 ± 0.707 | 5.000 ± 0.707 |"), "{md}");
    }
}

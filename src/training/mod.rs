//! The two-stage recipe: stage 1 trains backbone + classifier; stage 2 freezes the backbone
//! (BatchNorm statistics frozen) and re-balances the classifier (cRT, LWS or tau-norm).
//!
//! Determinism and exact resume: every random draw of an epoch (sampler order, augmentation,
//! mixup, GCL noise) is seeded from (run seed, stage, epoch), and the model, the momentum
//! buffers and the metrics so far are checkpointed after every epoch. A run restarted after a
//! kill therefore continues from the last complete epoch and, on CPU, ends bit-identical.
pub mod augment;
pub mod checkpoint;
pub mod schedule;
pub mod sgd;
pub mod source;

use crate::config::{ClassifierInit, CheckpointChoice, OptimSpec, Rebalance, RunSpec, SamplerSpec};
use crate::data::Data;
use crate::losses::Criterion;
use crate::metrics::{EpochRecord, Evaluation, Provenance, RunResult, SHOT_RULE};
use crate::models::Network;
use anyhow::{bail, Context as _, Result};
use source::BatchSource;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sgd::Sgd;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Files of a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const FINAL_MODEL: &str = "model.safetensors";
pub const BEST_MODEL: &str = "best.safetensors";
pub const EMBEDDINGS: &str = "embeddings.safetensors";
pub const LOG: &str = "log.jsonl";

/// Where and how a run executes.
pub struct Context<'a> {
    pub device: Device,
    /// The run's working directory (checkpoint, log, outputs).
    pub dir: PathBuf,
    /// Set by Ctrl-C: the run stops after the current step, keeping the last checkpoint.
    pub stop: &'a AtomicBool,
    pub progress: Option<&'a MultiProgress>,
    /// Shown in progress bars and logs.
    pub label: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("interrupted; the run resumes from its last complete epoch when started again")]
    Interrupted,
    #[error("loss diverged ({value}) in stage {stage}, epoch {epoch}, step {step}; the run was stopped (lower the learning rate or check the data)")]
    Diverged { value: f64, stage: u8, epoch: usize, step: usize },
}

/// What the checkpoint carries besides tensors.
#[derive(Serialize, Deserialize, Default)]
struct TrainState {
    epochs_done: usize,
    records: Vec<EpochRecord>,
    best_top1: f64,
    best_epoch: usize,
    best_eval: Option<Evaluation>,
    last_eval: Option<Evaluation>,
    momentum_present: Vec<bool>,
    elapsed_seconds: f64,
}

/// splitmix64: decorrelated seeds for each (run seed, stage, epoch).
pub fn derive_seed(seed: u64, stage: u64, epoch: u64) -> u64 {
    let mut z = seed ^ stage.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 0x7FFF_FFFF_FFFF_FFFF
}

/// The two var stores of a network: backbone and classifier, so stage 2 can freeze one.
pub struct Model {
    pub backbone: nn::VarStore,
    pub head: nn::VarStore,
    pub net: Network,
}

impl Model {
    pub fn new(spec: &RunSpec, num_classes: usize, device: Device) -> Model {
        let backbone = nn::VarStore::new(device);
        let head = nn::VarStore::new(device);
        let net = Network::new(&backbone.root(), &head.root(), &spec.model, num_classes as i64);
        Model { backbone, head, net }
    }

    /// All variables (parameters and BatchNorm statistics) by stable, prefixed names.
    pub fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (prefix, vs) in [("backbone.", &self.backbone), ("head.", &self.head)] {
            for (name, t) in vs.variables() {
                out.push((format!("{prefix}{name}"), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Copy stored tensors into this model's variables; every variable must be present.
    pub fn load_named(&self, named: &[(String, Tensor)]) -> Result<()> {
        let stored: HashMap<&str, &Tensor> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        tch::no_grad(|| -> Result<()> {
            for (name, mut var) in self.named_variables() {
                let src = stored.get(name.as_str()).with_context(|| format!("stored weights lack `{name}`"))?;
                var.copy_(&src.to_device(var.device()));
            }
            Ok(())
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        checkpoint::write_atomic(path, &self.named_variables())
    }

    pub fn load(&self, path: &Path) -> Result<()> {
        let named = Tensor::read_safetensors(path).with_context(|| format!("reading weights {}", path.display()))?;
        self.load_named(&named)
    }
}

/// Trainable tensors sorted by name, so optimiser state lines up across processes.
fn trainable(vs: &nn::VarStore) -> Vec<Tensor> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, t)| t).collect()
}

/// The per-epoch loop shared by both stages. `forward` maps a batch to head outputs with
/// gradients flowing to whatever the stage trains.
struct Loop<'a> {
    stage: u8,
    seed: u64,
    optim: OptimSpec,
    sampler: &'a SamplerSpec,
    mixup: Option<f64>,
    augment: bool,
    labels: &'a [i64],
    counts: &'a [usize],
    train: &'a dyn BatchSource,
    test: &'a dyn BatchSource,
    /// BBN: the re-balancing branch's forward `(x_conv, x_rebal, alpha) -> head output`; its
    /// input comes from the reversed sampler and alpha follows the cumulative-learning schedule.
    bbn: Option<&'a dyn Fn(&Tensor, &Tensor, f64) -> Tensor>,
}

impl<'a> Loop<'a> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ctx: &Context,
        criterion: &mut Criterion,
        opt: &mut Sgd,
        forward: &dyn Fn(&Tensor, bool) -> Tensor,
        save_tensors: &dyn Fn() -> Vec<(String, Tensor)>,
        restore_tensors: &dyn Fn(&[(String, Tensor)]) -> Result<()>,
        save_best: &dyn Fn() -> Result<()>,
        on_epoch_start: &mut dyn FnMut(usize, &mut Criterion),
    ) -> Result<TrainState> {
        std::fs::create_dir_all(&ctx.dir)?;
        let ck_path = ctx.dir.join(CHECKPOINT);
        let mut state = TrainState::default();
        if ck_path.exists() {
            let (named, st): (Vec<(String, Tensor)>, TrainState) = checkpoint::load(&ck_path)?;
            let (momentum, model): (Vec<_>, Vec<_>) = named.into_iter().partition(|(n, _)| n.starts_with("momentum."));
            restore_tensors(&model)?;
            let mut buffers: Vec<Option<Tensor>> = (0..st.momentum_present.len()).map(|_| None).collect();
            for (name, t) in momentum {
                let i: usize = name["momentum.".len()..].parse()?;
                buffers[i] = Some(t.to_device(ctx.device));
            }
            opt.set_buffers(buffers);
            tracing::info!("{}: resuming stage {} after epoch {}", ctx.label, self.stage, st.epochs_done);
            state = st;
        }
        rewrite_log(&ctx.dir.join(LOG), &state.records)?;
        let epochs = self.optim.epochs;
        for epoch in state.epochs_done + 1..=epochs {
            let t0 = Instant::now();
            let seed = derive_seed(self.seed, self.stage as u64, epoch as u64);
            tch::manual_seed(seed as i64);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            on_epoch_start(epoch, criterion);
            let order = crate::samplers::epoch_indices(self.sampler, self.labels, self.counts, seed);
            let reversed = SamplerSpec { kind: crate::config::SamplerKind::Reversed, ..SamplerSpec::default() };
            let order_rebal = match self.bbn {
                Some(_) => crate::samplers::epoch_indices(&reversed, self.labels, self.counts, seed ^ 0xBB4E),
                None => Vec::new(),
            };
            let lr = schedule::lr_at(&self.optim, epoch);
            let steps = order.len().div_ceil(self.optim.batch_size);
            let bar = epoch_bar(ctx, self.stage, epoch, epochs, steps);
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0.0f64, 0usize);
            let bs = self.optim.batch_size;
            let mut rebal_batches = self.train.batches(order_rebal, bs, self.augment, seed ^ 0xBB4E);
            for (step, batch) in self.train.batches(order, bs, self.augment, seed).enumerate() {
                if ctx.stop.load(Ordering::SeqCst) {
                    bar.abandon();
                    return Err(TrainError::Interrupted.into());
                }
                let (x, y) = batch?;
                let b = y.size()[0] as usize;
                let (loss, hits) = match (self.bbn, self.mixup) {
                    (Some(bbn_forward), _) => {
                        let (x_r, y_r) = rebal_batches.next().context("the re-balancing sampler ran out of batches")??;
                        let alpha = crate::models::bbn::cumulative_alpha(epoch - 1, epochs);
                        let out = bbn_forward(&x, &x_r, alpha);
                        let loss = criterion.mixup_loss(&out, &y, &y_r, alpha, true);
                        let pred = criterion.eval_logits(&out).argmax(1, false);
                        (loss, alpha * count_eq(&pred, &y) + (1.0 - alpha) * count_eq(&pred, &y_r))
                    }
                    (None, Some(alpha)) => {
                        let lam = crate::portable::beta(&mut rng, alpha, alpha);
                        let perm = Tensor::randperm(b as i64, (Kind::Int64, ctx.device));
                        let x = &x * lam + x.index_select(0, &perm) * (1.0 - lam);
                        let y_b = y.index_select(0, &perm);
                        let out = forward(&x, true);
                        let loss = criterion.mixup_loss(&out, &y, &y_b, lam, true);
                        let pred = criterion.eval_logits(&out).argmax(1, false);
                        let hits = lam * count_eq(&pred, &y) + (1.0 - lam) * count_eq(&pred, &y_b);
                        (loss, hits)
                    }
                    (None, None) => {
                        let out = forward(&x, true);
                        let loss = criterion.loss(&out, &y, true);
                        let pred = criterion.eval_logits(&out).argmax(1, false);
                        (loss, count_eq(&pred, &y))
                    }
                };
                opt.zero_grad();
                loss.backward();
                opt.step(lr);
                let l = loss.double_value(&[]);
                if !l.is_finite() || l > 1e4 {
                    bar.abandon();
                    return Err(TrainError::Diverged { value: l, stage: self.stage, epoch, step: step + 1 }.into());
                }
                loss_sum += l * b as f64;
                correct += hits;
                seen += b;
                bar.inc(1);
                if step % 10 == 0 {
                    bar.set_message(format!("loss {:.3} acc {:.1}%", loss_sum / seen as f64, 100.0 * correct / seen as f64));
                }
            }
            bar.finish_and_clear();
            let train_seconds = t0.elapsed().as_secs_f64();
            let eval = evaluate(forward, criterion, self.test, self.counts)?;
            let record = EpochRecord {
                stage: self.stage,
                epoch,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                train_acc: 100.0 * correct / seen.max(1) as f64,
                test_top1: eval.top1,
                test_top5: eval.top5,
                many: eval.many,
                medium: eval.medium,
                few: eval.few,
                images_per_sec: seen as f64 / train_seconds.max(1e-9),
                seconds: t0.elapsed().as_secs_f64(),
            };
            tracing::info!(
                "{} stage {} epoch {}/{}: loss {:.4} train {:.2}% test {:.2}% (many {} / med {} / few {}) {:.0} img/s",
                ctx.label, self.stage, epoch, epochs, record.train_loss, record.train_acc, eval.top1,
                fmt_opt(eval.many), fmt_opt(eval.medium), fmt_opt(eval.few), record.images_per_sec
            );
            if eval.top1 > state.best_top1 || state.best_eval.is_none() {
                state.best_top1 = eval.top1;
                state.best_epoch = epoch;
                state.best_eval = Some(eval.clone());
                save_best()?;
            }
            append_log(&ctx.dir.join(LOG), &record)?;
            state.records.push(record);
            state.last_eval = Some(eval);
            state.epochs_done = epoch;
            state.elapsed_seconds += t0.elapsed().as_secs_f64();
            let buffers = opt.buffers();
            state.momentum_present = buffers.iter().map(|b| b.is_some()).collect();
            let mut tensors = save_tensors();
            for (i, b) in buffers.into_iter().enumerate() {
                if let Some(b) = b {
                    tensors.push((format!("momentum.{i}"), b));
                }
            }
            checkpoint::save(&ck_path, &tensors, &state)?;
        }
        Ok(state)
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn count_eq(a: &Tensor, b: &Tensor) -> f64 {
    a.eq_tensor(b).sum(Kind::Int64).int64_value(&[]) as f64
}

fn epoch_bar(ctx: &Context, stage: u8, epoch: usize, epochs: usize, steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    let bar = match ctx.progress {
        Some(m) => m.add(bar),
        None => bar,
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {per_sec} ETA {eta} {msg}")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} s{} ep {}/{}", ctx.label, stage, epoch, epochs));
    bar
}

fn append_log(path: &Path, record: &EpochRecord) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{}", serde_json::to_string(record)?)?;
    Ok(())
}

/// On resume, the log is cut back to the epochs the checkpoint holds (a killed epoch may have
/// been logged without its checkpoint).
fn rewrite_log(path: &Path, records: &[EpochRecord]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// Top-1/top-5, per-class, shot groups and confusion on a split, without noise or gradients.
pub fn evaluate(forward: &dyn Fn(&Tensor, bool) -> Tensor, criterion: &Criterion, split: &dyn BatchSource, train_counts: &[usize]) -> Result<Evaluation> {
    let k = 5.min(train_counts.len() as i64);
    let (mut preds, mut labels, mut hits5) = (Vec::new(), Vec::new(), Vec::new());
    tch::no_grad(|| -> Result<()> {
        for batch in split.batches((0..split.len()).collect(), 500, false, 0) {
            let (x, y) = batch?;
            let logits = criterion.eval_logits(&forward(&x, false));
            let top = logits.topk(k, 1, true, true).1;
            let p = top.select(1, 0);
            let h = top.eq_tensor(&y.unsqueeze(1)).any_dim(1, false);
            preds.extend(Vec::<i64>::try_from(p.to_device(Device::Cpu))?);
            labels.extend(Vec::<i64>::try_from(y.to_device(Device::Cpu))?);
            hits5.extend(Vec::<bool>::try_from(h.to_device(Device::Cpu))?);
        }
        Ok(())
    })?;
    Ok(Evaluation::from_predictions(&labels, &preds, &hits5, train_counts))
}

/// Stage 1: train backbone and classifier from scratch (or from pretrained weights).
pub fn run_stage1(spec: &RunSpec, data: &Data, key: &str, ctx: &Context) -> Result<RunResult> {
    let started = chrono::Utc::now();
    let s1 = &spec.stage1;
    tch::manual_seed(spec.seed as i64);
    let model = Model::new(spec, data.num_classes(), ctx.device);
    if let Some(p) = &spec.model.pretrained {
        model.net.load_pretrained(&model.backbone, Path::new(p))?;
    }
    let counts = data.class_counts();
    let labels = data.train_labels();
    let mut criterion = Criterion::new(&s1.loss, counts, ctx.device).with_head(spec.model.head);
    let mut params = trainable(&model.backbone);
    params.extend(trainable(&model.head));
    let mut opt = Sgd::new(params, s1.momentum, s1.weight_decay).nesterov(s1.nesterov);
    let (train, test) = source::sources(data, ctx.device);
    let forward = |x: &Tensor, is_train: bool| model.net.logits(&model.net.features(x, is_train));
    let best_path = ctx.dir.join(BEST_MODEL);
    let drw = s1.drw_epoch;
    let drw_weights = crate::samplers::drw_weights(counts, 0.9999);
    let bbn_forward = |x_c: &Tensor, x_r: &Tensor, alpha: f64| model.net.logits(&model.net.bbn_features(x_c, x_r, alpha, true));
    let lp = Loop {
        stage: 1,
        seed: spec.seed,
        optim: s1.optim(),
        sampler: &s1.sampler,
        mixup: s1.mixup.then_some(s1.mixup_alpha),
        augment: s1.augment,
        labels: &labels,
        counts,
        train: train.as_ref(),
        test: test.as_ref(),
        bbn: spec.model.bbn.then_some(&bbn_forward as &dyn Fn(&Tensor, &Tensor, f64) -> Tensor),
    };
    let state = lp.run(
        ctx,
        &mut criterion,
        &mut opt,
        &forward,
        &|| model.named_variables(),
        &|named| model.load_named(named),
        &|| model.save(&best_path),
        &mut |epoch, crit| {
            // Deferred re-weighting (LDAM-DRW): class weights switch on after `drw_epoch`.
            if let Some(d) = drw {
                let w = (epoch > d).then(|| Tensor::from_slice(&drw_weights).to_kind(Kind::Float).to_device(ctx.device));
                crit.set_class_weights(w);
            }
        },
    )?;
    model.save(&ctx.dir.join(FINAL_MODEL))?;
    export_embeddings(&model, train.as_ref(), test.as_ref(), &ctx.dir.join(EMBEDDINGS))?;
    Ok(result(key, 1, None, state, data, started))
}

/// Stage 2: freeze the stage-1 backbone (eval mode: BatchNorm statistics frozen) and
/// re-balance the classifier.
pub fn run_stage2(spec: &RunSpec, data: &Data, key: &str, parent_key: &str, parent_dir: &Path, ctx: &Context) -> Result<RunResult> {
    let started = chrono::Utc::now();
    let s2 = spec.stage2.as_ref().context("run_stage2 called on a spec without stage 2")?;
    tch::manual_seed(derive_seed(spec.seed, 2, 0) as i64);
    let mut model = Model::new(spec, data.num_classes(), ctx.device);
    let weights = match s2.from_checkpoint {
        CheckpointChoice::Final => parent_dir.join(FINAL_MODEL),
        CheckpointChoice::BestOnTest => parent_dir.join(BEST_MODEL),
    };
    model.load(&weights)?;
    if s2.init == ClassifierInit::Reinit {
        // A fresh classifier (Kang et al. 2020) instead of fine-tuning the stage-1 one.
        let head = nn::VarStore::new(ctx.device);
        model.net.reset_head(&head.root(), data.num_classes() as i64);
        model.head = head;
    }
    model.backbone.freeze();
    let num_classes = data.num_classes() as i64;
    let counts = data.class_counts();
    let labels = data.train_labels();
    // LWS learns one scale per class on top of the classifier (frozen for `lws`, trained beside
    // it at `lr * classifier_lr_factor` for `crt_lws`, as MiSLAS's two parameter groups).
    let lws_scale = Tensor::ones([num_classes], (Kind::Float, ctx.device)).set_requires_grad(true);
    let head_params = || {
        let p = trainable(&model.head);
        let scales = vec![s2.classifier_lr_factor; p.len()];
        (p, scales)
    };
    let (params, lr_scales) = match s2.method {
        Rebalance::Crt => head_params(),
        Rebalance::CrtLws => {
            let (mut p, mut scales) = head_params();
            p.push(lws_scale.shallow_clone());
            scales.push(1.0);
            (p, scales)
        }
        Rebalance::Lws => {
            model.head.freeze();
            (vec![lws_scale.shallow_clone()], vec![1.0])
        }
        Rebalance::TauNorm => {
            model.head.freeze();
            model.net.tau_normalize(s2.tau);
            (vec![], vec![])
        }
    };
    let mut opt = Sgd::with_lr_scales(params, lr_scales, s2.momentum, s2.weight_decay).nesterov(s2.nesterov);
    let mut criterion = Criterion::new(&s2.loss, counts, ctx.device).with_head(spec.model.head);
    let (train, test) = source::sources(data, ctx.device);
    let method = s2.method;
    let shift_bn = s2.shift_bn;
    let forward = |x: &Tensor, is_train: bool| {
        // The backbone trains nothing in stage 2. Its BatchNorm layers stay in eval mode, except
        // with `shift_bn` while training, where they re-estimate their running statistics.
        let f = tch::no_grad(|| model.net.features(x, shift_bn && is_train));
        let out = model.net.logits(&f);
        if matches!(method, Rebalance::Lws | Rebalance::CrtLws) { out * lws_scale.unsqueeze(0) } else { out }
    };
    let best_path = ctx.dir.join(BEST_MODEL);
    let save_all = || {
        let mut v = model.named_variables();
        v.push(("lws.scale".into(), lws_scale.shallow_clone()));
        v
    };
    let optim = if method == Rebalance::TauNorm { OptimSpec { epochs: 0, ..s2.optim() } } else { s2.optim() };
    let lp = Loop {
        stage: 2,
        seed: spec.seed,
        optim,
        sampler: &s2.sampler,
        mixup: s2.mixup.then_some(s2.mixup_alpha),
        augment: spec.stage1.augment,
        labels: &labels,
        counts,
        train: train.as_ref(),
        test: test.as_ref(),
        bbn: None,
    };
    let mut state = lp.run(
        ctx,
        &mut criterion,
        &mut opt,
        &forward,
        &save_all,
        &|named| {
            let rest: Vec<(String, Tensor)> =
                named.iter().filter(|(n, _)| n != "lws.scale").map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
            model.load_named(&rest)?;
            if let Some((_, t)) = named.iter().find(|(n, _)| n == "lws.scale") {
                tch::no_grad(|| lws_scale.shallow_clone().copy_(t));
            }
            Ok(())
        },
        &|| checkpoint::write_atomic(&best_path, &save_all()),
        &mut |_, _| {},
    )?;
    // The final classifier (and LWS scales), beside the best-on-test ones.
    checkpoint::write_atomic(&ctx.dir.join(FINAL_MODEL), &save_all())?;
    if method == Rebalance::TauNorm {
        // No training: one evaluation of the normalised classifier.
        let eval = evaluate(&forward, &criterion, test.as_ref(), counts)?;
        state.best_top1 = eval.top1;
        state.best_eval = Some(eval.clone());
        state.last_eval = Some(eval);
    }
    Ok(result(key, 2, Some(parent_key.to_string()), state, data, started))
}

fn result(key: &str, stage: u8, parent: Option<String>, state: TrainState, data: &Data, started: chrono::DateTime<chrono::Utc>) -> RunResult {
    let finished = chrono::Utc::now();
    RunResult {
        key: key.to_string(),
        stage,
        parent,
        final_eval: state.last_eval.clone().unwrap_or_default(),
        best_top1: state.best_top1,
        best_epoch: state.best_epoch,
        best_eval: state.best_eval.clone().unwrap_or_default(),
        selection_rule: "final: last epoch (reported); best: highest test top-1 over epochs (the released code's choice, i.e. selection on the test set; kept for comparison only)".into(),
        shot_rule: SHOT_RULE.into(),
        train_class_counts: data.class_counts().to_vec(),
        epochs: state.records,
        provenance: Provenance {
            crate_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: env!("GCL_GIT_COMMIT").into(),
            libtorch_version: crate::device::libtorch_version(),
            cuda: None,
            device: String::new(),
            device_name: String::new(),
            threads: tch::get_num_threads() as usize,
            started: started.to_rfc3339(),
            finished: finished.to_rfc3339(),
            wall_seconds: state.elapsed_seconds,
            engine_version: crate::ENGINE_VERSION,
            cpu_numerics: crate::numerics::describe(),
        },
    }
}

/// Features (the classifier's input) of the train and test splits, for t-SNE figures; at most
/// `MAX_EMBEDDED` evenly spaced samples per split (their dataset indices are stored too).
const MAX_EMBEDDED: usize = 20_000;

fn export_embeddings(model: &Model, train: &dyn BatchSource, test: &dyn BatchSource, path: &Path) -> Result<()> {
    let feats = |split: &dyn BatchSource| -> Result<(Tensor, Tensor, Tensor)> {
        let order = source::spread(split.len(), MAX_EMBEDDED);
        let index = Tensor::from_slice(&order.iter().map(|&i| i as i64).collect::<Vec<_>>());
        tch::no_grad(|| {
            let (mut parts, mut labels) = (Vec::new(), Vec::new());
            for batch in split.batches(order, 500, false, 0) {
                let (x, y) = batch?;
                parts.push(model.net.features(&x, false).to_device(Device::Cpu));
                labels.extend(Vec::<i64>::try_from(y.to_device(Device::Cpu))?);
            }
            Ok((Tensor::cat(&parts, 0), source::labels_tensor(labels), index))
        })
    };
    let (tf, tl, ti) = feats(train)?;
    let (vf, vl, vi) = feats(test)?;
    let tensors = [("train_features", tf), ("train_labels", tl), ("train_index", ti), ("test_features", vf), ("test_labels", vl), ("test_index", vi)];
    let named: Vec<(String, Tensor)> = tensors.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    checkpoint::write_atomic(path, &named)
}

/// Refuse to start a run whose settings cannot work, before any training.
pub fn check_spec(spec: &RunSpec) -> Result<()> {
    if spec.stage1.batch_size == 0 {
        bail!("stage1.batch_size must be at least 1");
    }
    if spec.cpu.threads == Some(0) {
        bail!("cpu.threads must be at least 1 (or left out: the machine's default)");
    }
    if spec.model.bbn && spec.stage1.mixup {
        bail!("model.bbn combines two samplers by cumulative learning; it cannot be used with stage1.mixup (set mixup = false)");
    }
    if spec.model.bbn && spec.stage2.is_some() {
        bail!("model.bbn is a one-stage method; remove stage2 from this run");
    }
    if let Some(s2) = &spec.stage2 {
        if s2.batch_size == 0 {
            bail!("stage2.batch_size must be at least 1");
        }
    }
    Ok(())
}

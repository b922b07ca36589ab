//! The epoch loop both stages share, and the [`Stage`] trait they implement.
//!
//! Per epoch: seed every random draw from (run seed, stage, epoch); let the stage prepare
//! (deferred re-weighting, BBN's second sampler); visit the sampler's order in batches, one
//! optimiser step each; evaluate on the test split; append the epoch's record; checkpoint the
//! stage's tensors, the momentum buffers and the records so far. A run restarted after a kill
//! resumes after its last complete epoch and, on CPU, ends bit-identical.
use super::batches::BatchSource;
use super::sgd::Sgd;
use super::static_step::{StaticParts, StaticStep, StepMode};
use super::step::{EpochCtx, StepOutcome};
use super::{checkpoint, derive_seed, evaluate::evaluate, lr_schedule, RunEnv, Stream, TrainError};
use crate::cache::files::{BEST_MODEL, CHECKPOINT, LOG};
use crate::config::{OptimSpec, SamplerSpec};
use crate::metrics::{EpochRecord, Evaluation};
use anyhow::{anyhow, bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tch::{Device, Tensor};

/// The training split (labels, class counts, images) and the test images of a run.
pub struct Split<'a> {
    pub labels: &'a [i64],
    pub counts: &'a [usize],
    pub train: &'a dyn BatchSource,
    pub test: &'a dyn BatchSource,
}

/// One stage of the recipe: its settings, its training step, its prediction and the tensors it
/// checkpoints. Implemented by `standard::Standard`, `bbn::Bbn` and `stage2::Stage2`.
pub trait Stage {
    /// 1 or 2: seeds each epoch's randomness and labels the records.
    fn number(&self) -> u8;
    fn optim(&self) -> OptimSpec;
    fn sampler(&self) -> &SamplerSpec;
    fn augment(&self) -> bool;
    /// Called before each epoch's first batch.
    fn begin_epoch(&mut self, _ctx: &mut EpochCtx) -> Result<()> {
        Ok(())
    }
    /// The loss (with gradients to what the stage trains) and hits of one batch.
    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: &mut EpochCtx) -> Result<StepOutcome>;
    /// The parts of the static step ([`StaticStep`]) for a stage whose step it can run;
    /// `None` (the default) trains with the eager step only.
    fn static_parts(&self) -> Option<StaticParts<'_>> {
        None
    }
    /// The logits to predict from, in evaluation mode.
    fn eval_logits(&self, x: &Tensor) -> Tensor;
    /// Every tensor the stage needs to continue or to be used later, by stable names.
    fn tensors(&self) -> Vec<(String, Tensor)>;
    /// Put back what `tensors` returned (resume).
    fn restore(&self, named: &[(String, Tensor)]) -> Result<()>;
}

/// What the checkpoint carries besides tensors.
#[derive(Serialize, Deserialize, Default)]
pub struct TrainState {
    pub epochs_done: usize,
    pub records: Vec<EpochRecord>,
    pub best_top1: f64,
    pub best_epoch: usize,
    pub best_eval: Option<Evaluation>,
    pub last_eval: Option<Evaluation>,
    momentum_present: Vec<bool>,
    pub elapsed_seconds: f64,
}

/// Train `stage` for its epochs (resuming from the run directory's checkpoint if there is one).
pub fn train(env: &RunEnv, stage: &mut dyn Stage, opt: &mut Sgd, split: &Split, seed: u64) -> Result<TrainState> {
    std::fs::create_dir_all(&env.dir)?;
    let ck_path = env.dir.join(CHECKPOINT);
    let n = stage.number();
    let mut state = TrainState::default();
    if ck_path.exists() {
        state = resume(env, stage, opt, &ck_path)?;
        env.observer.resumed(n, state.epochs_done);
    }
    rewrite_log(&env.dir.join(LOG), &state.records)?;
    let optim = stage.optim();
    let epochs = optim.epochs;
    let mode = super::step_mode();
    // The static step's tensors, made at the first full batch and kept for the stage.
    let mut fixed: Option<StaticStep> = None;
    for epoch in state.epochs_done + 1..=epochs {
        let t0 = Instant::now();
        let epoch_seed = derive_seed(seed, n as u64, epoch as u64);
        tch::manual_seed(epoch_seed as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(Stream::Mixup.seed(epoch_seed));
        let mut ctx = EpochCtx { epoch, epochs, seed: epoch_seed, rng: &mut rng, device: env.device };
        stage.begin_epoch(&mut ctx)?;
        let order = crate::data::samplers::epoch_indices(
            stage.sampler(),
            split.labels,
            split.counts,
            Stream::Sampler.seed(epoch_seed),
        );
        let lr = lr_schedule::lr_at(&optim, epoch);
        let bs = optim.batch_size;
        let order_len = order.len();
        env.observer.epoch_started(n, epoch, epochs, order_len.div_ceil(bs));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0.0f64, 0usize);
        let on_cpu = env.device == Device::Cpu;
        for (step, batch) in
            split.train.batches(order, bs, stage.augment(), Stream::HostAugment.seed(epoch_seed)).enumerate()
        {
            if env.stop.load(Ordering::SeqCst) {
                env.observer.stopped();
                return Err(TrainError::Interrupted.into());
            }
            let (x, y) = batch?;
            let b = y.size()[0] as usize;
            if mode == StepMode::Graph {
                if let Some(parts) = stage.static_parts() {
                    let fixed = fixed.get_or_insert_with(|| StaticStep::new(&x, env.device));
                    if fixed.fits(&x) {
                        fixed.run(&parts, &x, &y, lr, opt, &mut ctx)?;
                        // The sums live on the device: read them for the bar on CPU only (free there).
                        let (s, l, h) = if on_cpu { fixed.peek_sums() } else { (0, f64::NAN, f64::NAN) };
                        let done = (seen + s).max(1) as f64;
                        env.observer.step_done(step, (loss_sum + l) / done, 100.0 * (correct + h) / done);
                        continue;
                    }
                }
            }
            let StepOutcome { loss, hits } = stage.step(&x, &y, &mut ctx)?;
            opt.zero_grad();
            loss.backward();
            opt.step(lr);
            let l = loss.double_value(&[]);
            if !l.is_finite() || l > 1e4 {
                env.observer.stopped();
                return Err(TrainError::Diverged { value: l, stage: n, epoch, step: step + 1 }.into());
            }
            loss_sum += l * b as f64;
            correct += hits;
            seen += b;
            env.observer.step_done(step, loss_sum / seen as f64, 100.0 * correct / seen as f64);
        }
        if let Some(fixed) = fixed.as_mut() {
            // One host read per epoch. Only the epoch's last batch can have run eagerly (a
            // partial one), so adding the device sums after it is the eager order's last addition.
            let (s, l, h) = fixed.take_sums();
            let mean = l / s.max(1) as f64;
            if !l.is_finite() || mean > 1e4 {
                env.observer.stopped();
                return Err(TrainError::Diverged { value: mean, stage: n, epoch, step: order_len.div_ceil(bs) }.into());
            }
            loss_sum += l;
            correct += h;
            seen += s;
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let eval = evaluate(&|x| stage.eval_logits(x), split.test, split.counts)?;
        let record = EpochRecord {
            stage: n,
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
        env.observer.epoch_finished(&record);
        if eval.top1 > state.best_top1 || state.best_eval.is_none() {
            state.best_top1 = eval.top1;
            state.best_epoch = epoch;
            state.best_eval = Some(eval.clone());
            checkpoint::write_atomic(&env.dir.join(BEST_MODEL), &stage.tensors())?;
        }
        append_log(&env.dir.join(LOG), &record)?;
        state.records.push(record);
        state.last_eval = Some(eval);
        state.epochs_done = epoch;
        state.elapsed_seconds += t0.elapsed().as_secs_f64();
        save_checkpoint(&ck_path, stage, opt, &mut state)?;
        if epoch < epochs && super::WIND_DOWN.load(Ordering::SeqCst) {
            env.observer.stopped();
            return Err(TrainError::WoundDown { stage: n, epoch }.into());
        }
    }
    if epochs == 0 {
        // Nothing to train (imported weights used as stage 1, tau-norm): the stage's result is
        // one evaluation of what it starts from, and that evaluation is its time.
        let t0 = Instant::now();
        let eval = evaluate(&|x| stage.eval_logits(x), split.test, split.counts)?;
        state.best_top1 = eval.top1;
        state.best_eval = Some(eval.clone());
        state.last_eval = Some(eval);
        state.elapsed_seconds = t0.elapsed().as_secs_f64();
    }
    Ok(state)
}

/// Checkpoint names of the momentum buffers: `momentum.<index of the parameter>`.
const MOMENTUM: &str = "momentum.";

/// The stage's tensors and the momentum buffers (`momentum.<i>`), with the state.
fn save_checkpoint(path: &Path, stage: &dyn Stage, opt: &Sgd, state: &mut TrainState) -> Result<()> {
    let buffers = opt.buffers();
    state.momentum_present = buffers.iter().map(|b| b.is_some()).collect();
    let mut tensors = stage.tensors();
    for (i, b) in buffers.into_iter().enumerate() {
        if let Some(b) = b {
            tensors.push((format!("{MOMENTUM}{i}"), b));
        }
    }
    checkpoint::save(path, &tensors, &*state)
}

/// Continue from the checkpoint at `path`. A checkpoint that cannot be read or does not fit the
/// run (another version's, or damaged) is one error naming it and how to start over; nothing is
/// discarded silently, since the partial run may hold hours of training.
fn resume(env: &RunEnv, stage: &dyn Stage, opt: &mut Sgd, path: &Path) -> Result<TrainState> {
    let restored = checkpoint::load(path).and_then(|(named, st): (_, TrainState)| {
        restore(stage, opt, named, &st, env.device)
            .with_context(|| format!("checkpoint {} does not fit this run", path.display()))?;
        Ok(st)
    });
    restored.map_err(|e| {
        anyhow!("{e:#}; delete the run's partial directory {} to restart it from its first epoch", env.dir.display())
    })
}

/// Put a checkpoint's tensors back into the stage and its momentum buffers into the optimiser,
/// after checking that every one is there with the shape it needs.
fn restore(
    stage: &dyn Stage,
    opt: &mut Sgd,
    named: Vec<(String, Tensor)>,
    st: &TrainState,
    device: Device,
) -> Result<()> {
    let params = opt.params();
    if st.momentum_present.len() != params.len() {
        bail!("its optimiser state covers {} parameters, this run trains {}", st.momentum_present.len(), params.len());
    }
    // A momentum buffer has its parameter's shape and dtype.
    let mut expected = stage.tensors();
    for (i, p) in params.iter().enumerate().filter(|(i, _)| st.momentum_present[*i]) {
        expected.push((format!("{MOMENTUM}{i}"), p.shallow_clone()));
    }
    checkpoint::check_fits(&named, &expected)?;
    let (momentum, tensors): (Vec<_>, Vec<_>) = named.into_iter().partition(|(n, _)| n.starts_with(MOMENTUM));
    stage.restore(&tensors)?;
    let mut buffers: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
    for (name, t) in momentum {
        // Only the buffers the state lists were checked against their parameters.
        let index = name[MOMENTUM.len()..].parse::<usize>().ok().filter(|&i| st.momentum_present.get(i) == Some(&true));
        let Some(i) = index else { bail!("tensor `{name}` is not a momentum buffer its optimiser state lists") };
        buffers[i] = Some(t.to_device(device));
    }
    opt.set_buffers(buffers)
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

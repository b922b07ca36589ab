//! The epoch loop both stages share; the step is the stage's ([`Stage`], `stage.rs`) and the
//! checkpoints are the checkpointer's (`checkpointer.rs`).
//!
//! Per epoch: seed every random draw from (run seed, stage, epoch); let the stage prepare
//! (deferred re-weighting, BBN's second sampler); visit the sampler's order in batches, one
//! optimiser step each; evaluate on the test split; append the epoch's record; checkpoint the
//! stage's tensors, the momentum buffers and the records so far. A run restarted after a kill
//! resumes after its last complete epoch and, on CPU, ends bit-identical.
use super::ranks::Ranks;
use super::sgd::Sgd;
use super::stage::{Split, Stage, TrainState};
use super::static_step::{StaticStep, StepMode};
use super::step::{EpochCtx, StepOutcome};
use super::{checkpoint, checkpointer, derive_seed, evaluate::evaluate, lr_schedule, RunEnv, Stream, TrainError};
use crate::cache::files::{BEST_MODEL, CHECKPOINT, LOG};
use crate::metrics::{EpochRecord, Evaluation};
use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tch::{Device, Tensor};

/// A loss above this (or not finite) stops the run as diverged.
const DIVERGED_ABOVE: f64 = 1e4;

/// Train `stage` for its epochs (resuming from the run directory's checkpoint if there is one).
pub fn train(env: &RunEnv, stage: &mut dyn Stage, opt: &mut Sgd, split: &Split, seed: u64) -> Result<TrainState> {
    let ranks = Ranks::of_process();
    if ranks.writes() {
        std::fs::create_dir_all(&env.dir)?;
    }
    ranks.barrier()?;
    let ck_path = env.dir.join(CHECKPOINT);
    let n = stage.number();
    let mut state = TrainState::default();
    if ck_path.exists() {
        state = checkpointer::resume(env, stage, opt, &ck_path)?;
        env.observer.resumed(n, state.epochs_done);
    }
    ranks.share_start(stage)?;
    if ranks.writes() {
        checkpointer::rewrite_log(&env.dir.join(LOG), &state.records)?;
    }
    let epochs = stage.optim().epochs;
    let mode = if ranks.is_data_parallel() { StepMode::Eager } else { super::step_mode() };
    let mut steps = Steps { mode, fixed: None, ranks };
    for epoch in state.epochs_done + 1..=epochs {
        let t0 = Instant::now();
        let (lr, sums) = train_epoch(env, stage, opt, split, &mut steps, Epoch { seed, number: epoch, of: epochs })?;
        if ranks.writes() {
            finish_epoch(env, stage, split, &mut state, EpochEnd { number: epoch, lr, sums, t0 })?;
            checkpointer::save(&ck_path, stage, opt, &mut state)?;
        }
        state.epochs_done = epoch;
        if epoch < epochs && ranks.any(super::winding_down())? {
            env.observer.stopped();
            return Err(TrainError::WoundDown { stage: n, epoch }.into());
        }
    }
    if epochs == 0 && ranks.writes() {
        evaluate_only(stage, split, &mut state)?;
    }
    Ok(state)
}

/// An epoch just trained: its number, learning rate, sums and start.
struct EpochEnd {
    number: usize,
    lr: f64,
    sums: Sums,
    t0: Instant,
}

/// Evaluate the epoch's weights, record the epoch (log, best weights) in `state`.
fn finish_epoch(env: &RunEnv, stage: &dyn Stage, split: &Split, state: &mut TrainState, e: EpochEnd) -> Result<()> {
    let train_seconds = e.t0.elapsed().as_secs_f64();
    let eval = evaluate(&|x| stage.eval_logits(x), split.test, split.counts)?;
    let record = e.sums.record(stage.number(), e.number, e.lr, &eval, train_seconds, e.t0.elapsed().as_secs_f64());
    env.observer.epoch_finished(&record);
    if eval.top1 > state.best_top1 || state.best_eval.is_none() {
        state.best_top1 = eval.top1;
        state.best_epoch = e.number;
        state.best_eval = Some(eval.clone());
        checkpoint::write_atomic(&env.dir.join(BEST_MODEL), &stage.tensors())?;
    }
    checkpointer::append_log(&env.dir.join(LOG), &record)?;
    state.records.push(record);
    state.last_eval = Some(eval);
    state.epochs_done = e.number;
    state.elapsed_seconds += e.t0.elapsed().as_secs_f64();
    Ok(())
}

/// Nothing to train (imported weights used as stage 1, tau-norm): the stage's result is one
/// evaluation of what it starts from, and that evaluation is its time.
fn evaluate_only(stage: &dyn Stage, split: &Split, state: &mut TrainState) -> Result<()> {
    let t0 = Instant::now();
    let eval = evaluate(&|x| stage.eval_logits(x), split.test, split.counts)?;
    state.best_top1 = eval.top1;
    state.best_eval = Some(eval.clone());
    state.last_eval = Some(eval);
    state.elapsed_seconds = t0.elapsed().as_secs_f64();
    Ok(())
}

/// Which epoch of how many, of the run with seed `seed`.
#[derive(Clone, Copy)]
struct Epoch {
    seed: u64,
    number: usize,
    of: usize,
}

/// How the stage's steps run: `mode`, the static step's tensors (made at the first full batch
/// and kept for the stage), and this process's part in a data-parallel run.
struct Steps {
    mode: StepMode,
    fixed: Option<StaticStep>,
    ranks: Ranks,
}

/// The running sums of an epoch's training loss, hits and images.
#[derive(Default)]
struct Sums {
    loss: f64,
    hits: f64,
    seen: usize,
}

impl Sums {
    /// One eagerly trained batch of `b` images with mean loss `loss`.
    fn add_batch(&mut self, loss: f64, hits: f64, b: usize) {
        self.loss += loss * b as f64;
        self.hits += hits;
        self.seen += b;
    }

    /// Sums kept elsewhere (the static step's, on the device).
    fn add_sums(&mut self, (seen, loss, hits): (usize, f64, f64)) {
        self.loss += loss;
        self.hits += hits;
        self.seen += seen;
    }

    fn record(&self, stage: u8, epoch: usize, lr: f64, eval: &Evaluation, train_s: f64, total_s: f64) -> EpochRecord {
        let seen = self.seen.max(1) as f64;
        EpochRecord {
            stage,
            epoch,
            lr,
            train_loss: self.loss / seen,
            train_acc: 100.0 * self.hits / seen,
            test_top1: eval.top1,
            test_top5: eval.top5,
            many: eval.many,
            medium: eval.medium,
            few: eval.few,
            images_per_sec: self.seen as f64 / train_s.max(1e-9),
            seconds: total_s,
        }
    }
}

/// A diverged loss (`value`, at `step` of the epoch) stops the run with an error naming it.
fn check_loss(env: &RunEnv, value: f64, stage: u8, epoch: usize, step: usize) -> Result<()> {
    if !value.is_finite() || value > DIVERGED_ABOVE {
        env.observer.stopped();
        return Err(TrainError::Diverged { value, stage, epoch, step }.into());
    }
    Ok(())
}

/// One epoch's training: its learning rate and sums.
fn train_epoch(
    env: &RunEnv,
    stage: &mut dyn Stage,
    opt: &mut Sgd,
    split: &Split,
    steps: &mut Steps,
    e: Epoch,
) -> Result<(f64, Sums)> {
    let n = stage.number();
    let epoch_seed = derive_seed(e.seed, n as u64, e.number as u64);
    tch::manual_seed(epoch_seed as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(Stream::Mixup.seed(epoch_seed));
    let mut ctx = EpochCtx { epoch: e.number, epochs: e.of, seed: epoch_seed, rng: &mut rng, device: env.device };
    stage.begin_epoch(&mut ctx)?;
    let order = crate::data::samplers::epoch_indices(
        stage.sampler(),
        split.labels,
        split.counts,
        Stream::Sampler.seed(epoch_seed),
    );
    let optim = stage.optim();
    let lr = lr_schedule::lr_at(&optim, e.number);
    let (order, bs) = steps.ranks.epoch_share(order, optim.batch_size);
    let batch_count = order.len().div_ceil(bs);
    let buffers = steps.ranks.step_buffers(stage);
    env.observer.epoch_started(n, e.number, e.of, batch_count);
    let mut sums = Sums::default();
    for (step, batch) in
        split.train.batches(order, bs, stage.augment(), Stream::HostAugment.seed(epoch_seed)).enumerate()
    {
        if env.stop.load(Ordering::SeqCst) {
            env.observer.stopped();
            return Err(TrainError::Interrupted.into());
        }
        let (x, y) = batch?;
        if static_step(env, stage, opt, steps, Batch { x: &x, y: &y, lr, step }, &mut ctx, &sums)? {
            continue;
        }
        steps.ranks.before_step(&buffers)?;
        let StepOutcome { loss, hits } = stage.step(&x, &y, &mut ctx)?;
        opt.zero_grad();
        loss.backward();
        steps.ranks.after_backward(opt)?;
        opt.step(lr);
        let l = loss.double_value(&[]);
        check_loss(env, l, n, e.number, step + 1)?;
        sums.add_batch(l, hits, y.size()[0] as usize);
        env.observer.step_done(step, sums.loss / sums.seen as f64, 100.0 * sums.hits / sums.seen as f64);
    }
    if let Some(fixed) = steps.fixed.as_mut() {
        // One host read per epoch. Only the epoch's last batch can have run eagerly (a
        // partial one), so adding the device sums after it is the eager order's last addition.
        let device_sums = fixed.take_sums();
        check_loss(env, device_sums.1 / device_sums.0.max(1) as f64, n, e.number, batch_count)?;
        sums.add_sums(device_sums);
    }
    let [loss, hits, seen] = steps.ranks.epoch_sums([sums.loss, sums.hits, sums.seen as f64])?;
    Ok((lr, Sums { loss, hits, seen: seen as usize }))
}

/// One batch of an epoch: its images and labels, the epoch's learning rate, its index.
struct Batch<'a> {
    x: &'a Tensor,
    y: &'a Tensor,
    lr: f64,
    step: usize,
}

/// Run the batch through the static step when the stage has one and the batch fits it (every
/// full batch); `false` leaves it to the eager step.
fn static_step(
    env: &RunEnv,
    stage: &dyn Stage,
    opt: &mut Sgd,
    steps: &mut Steps,
    batch: Batch,
    ctx: &mut EpochCtx,
    sums: &Sums,
) -> Result<bool> {
    if steps.mode != StepMode::Graph {
        return Ok(false);
    }
    let Some(parts) = stage.static_parts() else { return Ok(false) };
    let fixed = steps.fixed.get_or_insert_with(|| StaticStep::new(batch.x, env.device));
    if !fixed.fits(batch.x) {
        return Ok(false);
    }
    fixed.run(&parts, batch.x, batch.y, batch.lr, opt, ctx)?;
    // The sums live on the device: read them for the bar on CPU only (free there).
    let (s, l, h) = if env.device == Device::Cpu { fixed.peek_sums() } else { (0, f64::NAN, f64::NAN) };
    let done = (sums.seen + s).max(1) as f64;
    env.observer.step_done(batch.step, (sums.loss + l) / done, 100.0 * (sums.hits + h) / done);
    Ok(true)
}

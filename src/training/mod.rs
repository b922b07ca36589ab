//! The two-stage recipe: stage 1 trains backbone + classifier; stage 2 freezes the backbone
//! and re-balances the classifier. One file per part:
//! - `stage`: the [`Stage`] trait every stage implements (its step, prediction and tensors);
//!   `epoch`: the loop both stages share; `checkpointer`: what the loop saves after every epoch
//!   and resumes from (`checkpoint`: the file format); `step`: one training step (its context,
//!   its outcome, the supervised step); `static_step`: the same step from static tensors (a CUDA
//!   graph on CUDA);
//! - `stage1` (training `standard`, the standard stage 1, or `bbn`, BBN's own stage 1),
//!   `stage2` with `rebalance` (cRT, LWS, tau-norm, cRT + LWS);
//! - `evaluate`, `export` (result record, embeddings), `observer` (progress and logs);
//! - `lr_schedule`, `sgd`, `batches` (where batches come from), `augment`.
//!
//! Determinism and exact resume: every random draw of an epoch (sampler order, augmentation,
//! mixup, GCL noise) is seeded from (run seed, stage, epoch), and the stage's tensors, the
//! momentum buffers and the metrics so far are checkpointed after every epoch. A run restarted
//! after a kill therefore continues from the last complete epoch and, on CPU, ends bit-identical.
pub mod augment;
pub mod batches;
pub mod bbn;
pub mod checkpoint;
pub mod checkpointer;
pub mod epoch;
pub mod evaluate;
pub mod export;
pub mod lr_schedule;
pub mod observer;
pub mod ranks;
pub mod rebalance;
pub mod sgd;
pub mod spec;
pub mod stage;
pub mod stage1;
pub mod stage2;
pub mod standard;
pub mod static_step;
pub mod step;

pub use evaluate::{evaluate, evaluate_weights};
pub use observer::{Observer, Progress, Silent};
pub use stage::Stage;
pub use stage1::run_stage1;
pub use stage2::run_stage2;

use crate::training::spec::RunSpec;
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use tch::Device;

/// Files of a run directory (named by the cache: [`crate::cache::files`]).
pub use crate::cache::files::{BEST_MODEL, CHECKPOINT, EMBEDDINGS, FINAL_MODEL, LOG};

/// Where and how a run executes.
pub struct RunEnv<'a> {
    pub device: Device,
    /// The run's working directory (checkpoint, log, outputs).
    pub dir: PathBuf,
    /// Set by Ctrl-C: the run stops after the current step, keeping the last checkpoint.
    pub stop: &'a AtomicBool,
    /// Receives the run's progress (bars, per-epoch lines).
    pub observer: &'a dyn Observer,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("interrupted; the run resumes from its last complete epoch when started again")]
    Interrupted,
    #[error("wound down at the end of epoch {epoch} of stage {stage} (deadline); the run resumes from there when started again")]
    WoundDown { stage: u8, epoch: usize },
    #[error("loss diverged ({value}) in stage {stage}, epoch {epoch}, step {step}; the run was stopped (lower the learning rate or check the data)")]
    Diverged { value: f64, stage: u8, epoch: usize, step: usize },
}

/// Set by a deadline (`--deadline`): every training in this process stops after the epoch it is
/// in, with that epoch checkpointed ([`TrainError::WoundDown`]), so nothing finished is lost.
/// Unlike Ctrl-C (`RunEnv::stop`, which stops after the current step and loses the partial
/// epoch) it is process-wide: a worker process runs one training at a time.
static WIND_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How this process's training steps run ([`static_step::StepMode`]): the static step unless
/// `GCL_STEP=eager` or [`set_step_mode`] says otherwise. Both give the same bits on CPU.
pub fn step_mode() -> static_step::StepMode {
    match STEP_MODE.load(std::sync::atomic::Ordering::SeqCst) {
        1 => static_step::StepMode::Eager,
        2 => static_step::StepMode::Graph,
        _ => match std::env::var("GCL_STEP").as_deref() {
            Ok("eager") => static_step::StepMode::Eager,
            _ => static_step::StepMode::Graph,
        },
    }
}

/// Choose the step of every later training in this process (`bench train --mode`).
pub fn set_step_mode(mode: static_step::StepMode) {
    let v = match mode {
        static_step::StepMode::Eager => 1,
        static_step::StepMode::Graph => 2,
    };
    STEP_MODE.store(v, std::sync::atomic::Ordering::SeqCst);
}

static STEP_MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Ask every training in this process to stop at the end of its current epoch.
pub fn wind_down() {
    WIND_DOWN.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`wind_down`] was called in this process.
pub fn winding_down() -> bool {
    WIND_DOWN.load(std::sync::atomic::Ordering::SeqCst)
}

/// splitmix64: decorrelated seeds for each (run seed, stage, epoch).
pub fn derive_seed(seed: u64, stage: u64, epoch: u64) -> u64 {
    let mut z = seed ^ stage.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 0x7FFF_FFFF_FFFF_FFFF
}

/// The consumers of an epoch's randomness that draw from their own generator. Each gets its own
/// stream seeded from the epoch's seed ([`Stream::seed`]), so no two read the same numbers (the
/// sampler's order and mixup's lambda once read one ChaCha stream from the same seed). libtorch's
/// generator (crop offsets and flips on the device, mixup's permutation, GCL's noise) is seeded
/// with the epoch's seed itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The stage's sampler: the epoch's order of images.
    Sampler = 1,
    /// Mixup's lambda, one Beta draw per batch.
    Mixup = 2,
    /// BBN's reversed sampler (its second branch's batches).
    ReversedSampler = 3,
    /// Augmentation of images decoded on the host (list-file datasets).
    HostAugment = 4,
    /// The same for the images of BBN's reversed sampler.
    ReversedHostAugment = 5,
}

impl Stream {
    /// The stream's seed in the epoch whose seed is `epoch_seed`.
    pub fn seed(self, epoch_seed: u64) -> u64 {
        derive_seed(epoch_seed, 0x5eed_0000 + self as u64, 0)
    }
}

/// Refuse to start a run whose settings cannot work, before any training.
pub fn check_spec(spec: &RunSpec) -> Result<()> {
    if spec.stage1.optim.batch_size == 0 {
        bail!("stage1.batch_size must be at least 1");
    }
    if spec.cpu.threads == Some(0) {
        bail!("cpu.threads must be at least 1 (or left out: the machine's default)");
    }
    if spec.model.bbn && spec.stage1.mixup.on {
        bail!("model.bbn combines two samplers by cumulative learning; it cannot be used with stage1.mixup (set mixup = false)");
    }
    if spec.model.bbn && spec.stage2.is_some() {
        bail!("model.bbn is a one-stage method; remove stage2 from this run");
    }
    if let Some(s2) = &spec.stage2 {
        if s2.optim.batch_size == 0 {
            bail!("stage2.batch_size must be at least 1");
        }
    }
    ranks::check(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand::SeedableRng;

    /// Every stream of an epoch starts elsewhere: no consumer reads another's numbers.
    #[test]
    fn each_purpose_reads_its_own_stream() {
        let streams =
            [Stream::Sampler, Stream::Mixup, Stream::ReversedSampler, Stream::HostAugment, Stream::ReversedHostAugment];
        let epoch_seed = derive_seed(123, 1, 1);
        let firsts: std::collections::HashSet<u64> =
            streams.iter().map(|s| rand_chacha::ChaCha8Rng::seed_from_u64(s.seed(epoch_seed)).gen::<u64>()).collect();
        assert_eq!(firsts.len(), streams.len());
        assert!(streams.iter().all(|s| s.seed(epoch_seed) != epoch_seed));
        assert_eq!(Stream::Mixup.seed(epoch_seed), Stream::Mixup.seed(epoch_seed), "deterministic");
    }
}

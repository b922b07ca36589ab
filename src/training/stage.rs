//! What a stage of the recipe is to the epoch loop (`epoch`): the [`Stage`] trait the stages
//! implement, the data they train on ([`Split`]) and what the loop carries from epoch to epoch
//! and checkpoints beside the tensors ([`TrainState`]).
use super::batches::BatchSource;
use super::static_step::StaticParts;
use super::step::{EpochCtx, StepOutcome};
use crate::data::samplers::SamplerSpec;
use crate::metrics::{EpochRecord, Evaluation};
use crate::training::spec::OptimSpec;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

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
    /// Which parameters have a momentum buffer (the checkpointer stores those).
    pub(super) momentum_present: Vec<bool>,
    pub elapsed_seconds: f64,
}

//! BBN's stage 1 (Zhou et al. 2020), a method of its own: the bilateral network
//! (`models::bbn`) sees one batch from the stage's sampler (conventional branch) and one from
//! BBN's reversed sampler (re-balancing branch) per step, mixed by cumulative learning:
//! `alpha = 1 - (t / T)^2` (t counted from 0), features `[alpha f_c, (1 - alpha) f_r]`, loss
//! `alpha L(out, y_c) + (1 - alpha) L(out, y_r)`.
use super::batches::{BatchSource, Batches};
use super::stage::{Split, Stage};
use super::standard::Standard;
use super::step::{blended_outcome, EpochCtx, StepOutcome};
use super::Stream;
use crate::data::samplers::SamplerSpec;
use crate::models::bbn::cumulative_alpha;
use crate::training::spec::OptimSpec;
use anyhow::{Context as _, Result};
use tch::Tensor;

/// The re-balancing branch's sampler: class probability proportional to `1 / n_j`.
fn reversed_sampler() -> SamplerSpec {
    SamplerSpec::Reversed(crate::data::samplers::Reversed {})
}

pub struct Bbn<'a> {
    base: Standard<'a>,
    labels: &'a [i64],
    counts: &'a [usize],
    train: &'a dyn BatchSource,
    /// This epoch's batches of the reversed sampler.
    rebalancing: Option<Batches<'a>>,
}

impl<'a> Bbn<'a> {
    pub fn new(base: Standard<'a>, split: &Split<'a>) -> Bbn<'a> {
        Bbn { base, labels: split.labels, counts: split.counts, train: split.train, rebalancing: None }
    }
}

impl Stage for Bbn<'_> {
    fn number(&self) -> u8 {
        1
    }

    fn optim(&self) -> OptimSpec {
        self.base.optim()
    }

    fn sampler(&self) -> &SamplerSpec {
        self.base.sampler()
    }

    fn augment(&self) -> bool {
        self.base.augment()
    }

    fn begin_epoch(&mut self, ctx: &mut EpochCtx) -> Result<()> {
        self.base.begin(ctx);
        let order = crate::data::samplers::epoch_indices(
            &reversed_sampler(),
            self.labels,
            self.counts,
            Stream::ReversedSampler.seed(ctx.seed),
        );
        let augment_seed = Stream::ReversedHostAugment.seed(ctx.seed);
        self.rebalancing =
            Some(self.train.batches(order, self.base.spec.optim.batch_size, self.base.spec.augment, augment_seed));
        Ok(())
    }

    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: &mut EpochCtx) -> Result<StepOutcome> {
        let next = self.rebalancing.as_mut().and_then(|b| b.next());
        let (x_r, y_r) = next.context("the re-balancing sampler ran out of batches")??;
        let alpha = cumulative_alpha(ctx.epoch - 1, ctx.epochs);
        let net = self.base.net;
        let out = net.logits(&net.bbn_features(x, &x_r, alpha, true));
        Ok(blended_outcome(&self.base.criterion, &out, y, &y_r, alpha, None))
    }

    fn eval_logits(&self, x: &Tensor) -> Tensor {
        self.base.eval_logits(x)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        self.base.tensors()
    }

    fn restore(&self, named: &[(String, Tensor)]) -> Result<()> {
        self.base.restore(named)
    }
}

//! The standard stage 1 as a [`Stage`]: one forward of the whole network per (possibly mixed)
//! batch, with the stage's loss and, optionally, deferred re-weighting. The stage-1 driver
//! (`stage1.rs`) trains it, and BBN's stage 1 (`bbn.rs`) builds on it.
use super::stage::Stage;
use super::static_step::StaticParts;
use super::step::{supervised_step, EpochCtx, StepOutcome};
use crate::data::samplers::SamplerSpec;
use crate::losses::Criterion;
use crate::models::Network;
use crate::training::spec::{OptimSpec, Stage1Spec};
use anyhow::Result;
use tch::{Kind, Tensor};

/// Deferred re-weighting (LDAM-DRW): after `from_epoch`, the loss weights each class by its
/// effective number with beta 0.9999.
pub struct DeferredReweighting {
    from_epoch: usize,
    weights: Vec<f64>,
}

impl DeferredReweighting {
    pub fn new(spec: &Stage1Spec, counts: &[usize]) -> Option<DeferredReweighting> {
        spec.drw_epoch
            .map(|d| DeferredReweighting { from_epoch: d, weights: crate::data::samplers::drw_weights(counts, 0.9999) })
    }

    pub fn apply(&self, criterion: &mut Criterion, ctx: &EpochCtx) {
        let on = ctx.epoch > self.from_epoch;
        criterion.set_class_weights(
            on.then(|| Tensor::from_slice(&self.weights).to_kind(Kind::Float).to_device(ctx.device)),
        );
    }
}

/// The standard stage 1: one forward of the whole network per (possibly mixed) batch.
pub struct Standard<'a> {
    pub spec: &'a Stage1Spec,
    pub net: &'a Network,
    pub criterion: Criterion,
    pub drw: Option<DeferredReweighting>,
}

impl Standard<'_> {
    pub fn begin(&mut self, ctx: &EpochCtx) {
        if let Some(drw) = &self.drw {
            drw.apply(&mut self.criterion, ctx);
        }
    }
}

impl Stage for Standard<'_> {
    fn number(&self) -> u8 {
        1
    }

    fn optim(&self) -> OptimSpec {
        self.spec.optim.clone()
    }

    fn sampler(&self) -> &SamplerSpec {
        &self.spec.sampler
    }

    fn augment(&self) -> bool {
        self.spec.augment
    }

    fn begin_epoch(&mut self, ctx: &mut EpochCtx) -> Result<()> {
        self.begin(ctx);
        Ok(())
    }

    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: &mut EpochCtx) -> Result<StepOutcome> {
        let net = self.net;
        let mixup = self.spec.mixup.alpha_if_on();
        Ok(supervised_step(&self.criterion, mixup, &|x| net.logits(&net.features(x, true)), x, y, ctx))
    }

    fn static_parts(&self) -> Option<StaticParts<'_>> {
        let net = self.net;
        Some(StaticParts {
            forward: Box::new(move |x| net.logits(&net.features(x, true))),
            criterion: &self.criterion,
            mixup_alpha: self.spec.mixup.alpha_if_on(),
            state: net.named_variables().into_iter().map(|(_, t)| t).collect(),
            generation: self.criterion.version(),
        })
    }

    fn eval_logits(&self, x: &Tensor) -> Tensor {
        self.criterion.eval_logits(&self.net.logits(&self.net.features(x, false)))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        self.net.named_variables()
    }

    fn restore(&self, named: &[(String, Tensor)]) -> Result<()> {
        self.net.load_named(named)
    }
}

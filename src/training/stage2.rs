//! Stage 2: freeze the stage-1 backbone (BatchNorm in eval mode, or re-estimating its statistics
//! with `shift_bn`) and re-balance the classifier by the stage's `rebalance` method.
use super::epoch;
use super::rebalance::Rebalancer;
use super::sgd::Sgd;
use super::stage::{Split, Stage};
use super::step::{supervised_step, EpochCtx, StepOutcome};
use super::{batches, checkpoint, derive_seed, export, RunEnv};
use crate::cache::files::{BEST_MODEL, FINAL_MODEL};
use crate::data::samplers::SamplerSpec;
use crate::data::Data;
use crate::losses::Criterion;
use crate::metrics::RunResult;
use crate::models::Network;
use crate::training::spec::{CheckpointChoice, OptimSpec, RunSpec, Stage2Spec};
use anyhow::{anyhow, Context as _, Result};
use std::path::Path;
use tch::Tensor;

pub struct Stage2<'a> {
    spec: &'a Stage2Spec,
    /// Augmentation follows stage 1's setting.
    augment: bool,
    net: &'a Network,
    classifier: Rebalancer,
    criterion: Criterion,
}

impl Stage2<'_> {
    /// Head output with gradients only to what the method trains. The backbone trains nothing;
    /// its BatchNorm layers stay in eval mode, except with `shift_bn` while training, where they
    /// re-estimate their running statistics.
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let f = tch::no_grad(|| self.net.features(x, self.spec.shift_bn && train));
        self.classifier.output(self.net.logits(&f))
    }
}

impl Stage for Stage2<'_> {
    fn number(&self) -> u8 {
        2
    }

    fn optim(&self) -> OptimSpec {
        let optim = self.spec.optim.clone();
        if self.classifier.trains() {
            optim
        } else {
            OptimSpec { epochs: 0, ..optim }
        }
    }

    fn sampler(&self) -> &SamplerSpec {
        &self.spec.sampler
    }

    fn augment(&self) -> bool {
        self.augment
    }

    fn step(&mut self, x: &Tensor, y: &Tensor, ctx: &mut EpochCtx) -> Result<StepOutcome> {
        let mixup = self.spec.mixup.alpha_if_on();
        Ok(supervised_step(&self.criterion, mixup, &|x| self.forward(x, true), x, y, ctx))
    }

    fn eval_logits(&self, x: &Tensor) -> Tensor {
        self.criterion.eval_logits(&self.forward(x, false))
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = self.net.named_variables();
        v.extend(self.classifier.tensors());
        v
    }

    fn restore(&self, named: &[(String, Tensor)]) -> Result<()> {
        let rest: Vec<(String, Tensor)> =
            self.classifier.restore(named)?.into_iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        self.net.load_named(&rest)
    }
}

/// Load the stage-1 run's stored weights into `net`, checking them first: a file damaged in the
/// cache, or one written for another network, is an error naming it, not a panic in tch.
fn load_parent(net: &Network, path: &Path, parent_key: &str) -> Result<()> {
    let stored = checkpoint::read(path).and_then(|stored| {
        checkpoint::check_fits(&stored, &net.named_variables())
            .with_context(|| format!("{} does not fit this run's network", path.display()))?;
        Ok(stored)
    });
    let stored = stored.map_err(|e| {
        anyhow!(
            "{e:#}; these are the weights of stage-1 run {parent_key}: `gcl-repro cache verify` checks its files, \
             `gcl-repro run MANIFEST --force --only {parent_key}` re-trains it"
        )
    })?;
    net.load_named(&stored)
}

/// Run stage 2 of `spec` in `env.dir` on the stage-1 run stored in `parent_dir`.
pub fn run_stage2(
    spec: &RunSpec,
    data: &Data,
    key: &str,
    parent_key: &str,
    parent_dir: &Path,
    env: &RunEnv,
) -> Result<RunResult> {
    let started = chrono::Utc::now();
    let s2 = spec.stage2.as_ref().context("run_stage2 called on a spec without stage 2")?;
    tch::manual_seed(derive_seed(spec.seed, 2, 0) as i64);
    let mut net = Network::new(&spec.model, data.num_classes() as i64, env.device);
    let weights = match s2.from_checkpoint {
        CheckpointChoice::Final => parent_dir.join(FINAL_MODEL),
        CheckpointChoice::BestOnTest => parent_dir.join(BEST_MODEL),
    };
    load_parent(&net, &weights, parent_key)?;
    net.backbone_vars.freeze();
    let classifier = s2.rebalance.prepare(&mut net, env.device);
    let (params, lr_factors) = classifier.params();
    let mut opt =
        Sgd::with_lr_scales(params, lr_factors, s2.optim.momentum, s2.optim.weight_decay).nesterov(s2.optim.nesterov);
    let counts = data.class_counts();
    let labels = data.train_labels();
    let criterion = Criterion::new(&s2.loss, counts, spec.model.head, env.device)?;
    let (train, test) = batches::sources(data, env.device, spec.dataset.color_jitter);
    let split = Split { labels: &labels, counts, train: train.as_ref(), test: test.as_ref() };
    let mut stage = Stage2 { spec: s2, augment: spec.stage1.augment, net: &net, classifier, criterion };
    // A method that trains nothing (tau-norm) has no epochs: `train` evaluates it once.
    let state = epoch::train(env, &mut stage, &mut opt, &split, spec.seed)?;
    // The final classifier (and the method's own tensors), beside the best-on-test ones.
    if super::ranks::Ranks::of_process().writes() {
        checkpoint::write_atomic(&env.dir.join(FINAL_MODEL), &stage.tensors())?;
    }
    Ok(export::result(key, 2, Some(parent_key.to_string()), state, data, started))
}

//! Stage 1: train backbone and classifier from scratch (or from pretrained weights) with the
//! stage's loss, sampler and, optionally, mixup and deferred re-weighting. BBN's stage 1 is
//! its own method (`bbn`), built on the same pieces.
use super::epoch::{self, supervised_step, EpochCtx, Split, Stage, StepOutcome};
use super::sgd::Sgd;
use super::static_step::StaticParts;
use super::{bbn::Bbn, checkpoint, export, source, RunEnv};
use crate::cache::files::{EMBEDDINGS, FINAL_MODEL};
use crate::config::{ModelSpec, OptimSpec, RunSpec, SamplerSpec, Stage1Spec};
use crate::data::Data;
use crate::losses::Criterion;
use crate::models::{trainable, Network};
use crate::metrics::RunResult;
use anyhow::{bail, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Deferred re-weighting (LDAM-DRW): after `from_epoch`, the loss weights each class by its
/// effective number with beta 0.9999.
pub struct DeferredReweighting {
    from_epoch: usize,
    weights: Vec<f64>,
}

impl DeferredReweighting {
    pub fn new(spec: &Stage1Spec, counts: &[usize]) -> Option<DeferredReweighting> {
        spec.drw_epoch.map(|d| DeferredReweighting { from_epoch: d, weights: crate::data::samplers::drw_weights(counts, 0.9999) })
    }

    pub fn apply(&self, criterion: &mut Criterion, ctx: &EpochCtx) {
        let on = ctx.epoch > self.from_epoch;
        criterion.set_class_weights(on.then(|| Tensor::from_slice(&self.weights).to_kind(Kind::Float).to_device(ctx.device)));
    }
}

/// The standard stage 1: one forward of the whole network per (possibly mixed) batch.
pub struct Stage1<'a> {
    pub spec: &'a Stage1Spec,
    pub net: &'a Network,
    pub criterion: Criterion,
    pub drw: Option<DeferredReweighting>,
}

impl Stage1<'_> {
    pub fn begin(&mut self, ctx: &EpochCtx) {
        if let Some(drw) = &self.drw {
            drw.apply(&mut self.criterion, ctx);
        }
    }
}

impl Stage for Stage1<'_> {
    fn number(&self) -> u8 {
        1
    }

    fn optim(&self) -> OptimSpec {
        self.spec.optim()
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
        let mixup = self.spec.mixup.then_some(self.spec.mixup_alpha);
        Ok(supervised_step(&self.criterion, mixup, &|x| net.logits(&net.features(x, true)), x, y, ctx))
    }

    fn static_parts(&self) -> Option<StaticParts<'_>> {
        let net = self.net;
        Some(StaticParts {
            forward: Box::new(move |x| net.logits(&net.features(x, true))),
            criterion: &self.criterion,
            mixup_alpha: self.spec.mixup.then_some(self.spec.mixup_alpha),
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

/// Run stage 1 of `spec` in `env.dir`: train, store the final weights and the embeddings.
pub fn run_stage1(spec: &RunSpec, data: &Data, key: &str, env: &RunEnv) -> Result<RunResult> {
    let started = chrono::Utc::now();
    let s1 = &spec.stage1;
    tch::manual_seed(spec.seed as i64);
    let net = Network::new(&spec.model, data.num_classes() as i64, env.device);
    if let Some(p) = &spec.model.pretrained {
        net.load_pretrained(Path::new(p))?;
    }
    load_init_from(&net, &spec.model)?;
    let counts = data.class_counts();
    let labels = data.train_labels();
    let criterion = Criterion::new(&s1.loss, counts, spec.model.head, env.device);
    let mut params = trainable(&net.backbone_vars);
    params.extend(trainable(&net.head_vars));
    let mut opt = Sgd::new(params, s1.momentum, s1.weight_decay).nesterov(s1.nesterov);
    let (train, test) = source::sources(data, env.device, spec.dataset.color_jitter);
    let split = Split { labels: &labels, counts, train: train.as_ref(), test: test.as_ref() };
    let standard = Stage1 { spec: s1, net: &net, criterion, drw: DeferredReweighting::new(s1, counts) };
    // `epochs = 0` (imported weights used as stage 1): `train` evaluates them once.
    let state = if spec.model.bbn {
        epoch::train(env, &mut Bbn::new(standard, &split), &mut opt, &split, spec.seed)?
    } else {
        let mut stage = standard;
        epoch::train(env, &mut stage, &mut opt, &split, spec.seed)?
    };
    checkpoint::write_atomic(&env.dir.join(FINAL_MODEL), &net.named_variables())?;
    export::embeddings(&net, train.as_ref(), test.as_ref(), &env.dir.join(EMBEDDINGS))?;
    Ok(export::result(key, 1, None, state, data, started))
}

/// Start from `model.init_from`'s weights, refusing a file whose content is not the one the
/// run's key was computed from.
pub fn load_init_from(net: &Network, model: &ModelSpec) -> Result<()> {
    let Some(path) = &model.init_from else { return Ok(()) };
    let path = Path::new(path);
    let digest = crate::models::import::sha256_file(path)?;
    match &model.init_sha256 {
        Some(pinned) if *pinned == digest => crate::models::import::load_state_dict(net, path),
        Some(pinned) => bail!(
            "model.init_from {}: its SHA-256 is now {digest}, but the run was keyed with {pinned}; the file changed since the run was planned (restore it, or plan again)",
            path.display()
        ),
        None => bail!("model.init_from {} has no init_sha256: a run's starting weights must be pinned (ModelSpec::pin_init_from)", path.display()),
    }
}

//! Stage 1: train backbone and classifier from scratch (or from pretrained weights) with the
//! stage's loss, sampler and, optionally, mixup and deferred re-weighting. BBN's stage 1 is
//! its own method (`bbn`), built on the same pieces as the standard stage (`standard`); this
//! driver trains one or the other.
use super::batches::{self, BatchSource};
use super::bbn::Bbn;
use super::epoch;
use super::sgd::Sgd;
use super::stage::{Split, TrainState};
use super::standard::{DeferredReweighting, Standard};
use super::{checkpoint, export, RunEnv};
use crate::cache::files::{EMBEDDINGS, FINAL_MODEL};
use crate::data::Data;
use crate::losses::Criterion;
use crate::metrics::RunResult;
use crate::models::spec::ModelSpec;
use crate::models::{trainable, Network};
use crate::training::spec::RunSpec;
use anyhow::{bail, Result};
use std::path::Path;

/// Run stage 1 of `spec` in `env.dir`: train, store the final weights and the embeddings.
pub fn run_stage1(spec: &RunSpec, data: &Data, key: &str, env: &RunEnv) -> Result<RunResult> {
    let started = chrono::Utc::now();
    let (train, test) = batches::sources(data, env.device, spec.dataset.color_jitter);
    let (net, state) = train_on(spec, data, env, train.as_ref(), test.as_ref())?;
    // In a data-parallel run rank 0 writes the run's files (`ranks`).
    if super::ranks::Ranks::of_process().writes() {
        checkpoint::write_atomic(&env.dir.join(FINAL_MODEL), &net.named_variables())?;
        export::embeddings(&net, train.as_ref(), test.as_ref(), &env.dir.join(EMBEDDINGS))?;
    }
    Ok(export::result(key, 1, None, state, data, started))
}

/// Stage 1's training alone (resuming from `env.dir`'s checkpoint): the trained network and
/// what the loop recorded, with nothing written beyond the checkpoint and the log.
pub fn train_stage1(spec: &RunSpec, data: &Data, env: &RunEnv) -> Result<(Network, TrainState)> {
    let (train, test) = batches::sources(data, env.device, spec.dataset.color_jitter);
    train_on(spec, data, env, train.as_ref(), test.as_ref())
}

/// [`train_stage1`] on batch sources the caller made (`run_stage1` exports from them after).
fn train_on(
    spec: &RunSpec,
    data: &Data,
    env: &RunEnv,
    train: &dyn BatchSource,
    test: &dyn BatchSource,
) -> Result<(Network, TrainState)> {
    let s1 = &spec.stage1;
    tch::manual_seed(spec.seed as i64);
    let net = Network::new(&spec.model, data.num_classes() as i64, env.device);
    if let Some(p) = &spec.model.pretrained {
        net.load_pretrained(Path::new(p))?;
    }
    load_init_from(&net, &spec.model)?;
    let counts = data.class_counts();
    let labels = data.train_labels();
    let criterion = Criterion::new(&s1.loss, counts, spec.model.head, env.device)?;
    let mut params = trainable(&net.backbone_vars);
    params.extend(trainable(&net.head_vars));
    let mut opt = Sgd::new(params, s1.optim.momentum, s1.optim.weight_decay).nesterov(s1.optim.nesterov);
    let split = Split { labels: &labels, counts, train, test };
    let standard = Standard { spec: s1, net: &net, criterion, drw: DeferredReweighting::new(s1, counts) };
    // `epochs = 0` (imported weights used as stage 1): `train` evaluates them once.
    let state = if spec.model.bbn {
        epoch::train(env, &mut Bbn::new(standard, &split), &mut opt, &split, spec.seed)?
    } else {
        let mut stage = standard;
        epoch::train(env, &mut stage, &mut opt, &split, spec.seed)?
    };
    Ok((net, state))
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

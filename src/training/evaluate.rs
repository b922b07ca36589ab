//! Evaluation on a split: top-1/top-5, per-class accuracy, shot groups and confusion, without
//! noise or gradients.
use super::batches::BatchSource;
use crate::metrics::Evaluation;
use anyhow::Result;
use tch::{Device, Tensor};

/// Images per evaluation batch: on CPU 128-256 evaluate ResNet-32 fastest (measured with
/// `bench train`: 10,000 images in 7.0-7.2 s at 128-256, 7.9 s at 500, 9.2 s at 1000) and 256
/// holds half the memory of 500. Per-image results do not depend on it (BatchNorm uses its
/// running statistics).
pub const EVAL_BATCH: usize = 256;

/// `predict` maps a batch of images to the logits to rank classes by.
pub fn evaluate(
    predict: &dyn Fn(&Tensor) -> Tensor,
    split: &dyn BatchSource,
    train_counts: &[usize],
) -> Result<Evaluation> {
    let k = 5.min(train_counts.len() as i64);
    let (mut preds, mut labels, mut hits5) = (Vec::new(), Vec::new(), Vec::new());
    tch::no_grad(|| -> Result<()> {
        for batch in split.batches((0..split.len()).collect(), EVAL_BATCH, false, 0) {
            let (x, y) = batch?;
            let top = predict(&x).topk(k, 1, true, true).1;
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

/// Evaluate the weights in `path` (a PyTorch state_dict, see `models::import`, or a run's
/// `model.safetensors`) in the network `spec` builds, on the test split of `data`, predicting as
/// the spec's last stage does (its loss's evaluation logits). Stage-2 extras that live outside
/// the network (LWS scales, tau-norm) are not applied: this evaluates backbone + classifier.
pub fn evaluate_weights(
    spec: &crate::training::spec::RunSpec,
    data: &crate::data::Data,
    path: &std::path::Path,
    device: Device,
) -> Result<Evaluation> {
    let net = crate::models::Network::new(&spec.model, data.num_classes() as i64, device);
    crate::models::import::load_state_dict(&net, path)?;
    let loss = spec.stage2.as_ref().map_or(&spec.stage1.loss, |s2| &s2.loss);
    let criterion = crate::losses::Criterion::new(loss, data.class_counts(), spec.model.head, device)?;
    let (_, test) = super::batches::sources(data, device, spec.dataset.color_jitter);
    evaluate(&|x| criterion.eval_logits(&net.logits(&net.features(x, false))), test.as_ref(), data.class_counts())
}

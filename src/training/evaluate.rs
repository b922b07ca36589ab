//! Evaluation on a split: top-1/top-5, per-class accuracy, shot groups and confusion, without
//! noise or gradients.
use super::source::BatchSource;
use crate::metrics::Evaluation;
use anyhow::Result;
use tch::{Device, Tensor};

/// `predict` maps a batch of images to the logits to rank classes by.
pub fn evaluate(predict: &dyn Fn(&Tensor) -> Tensor, split: &dyn BatchSource, train_counts: &[usize]) -> Result<Evaluation> {
    let k = 5.min(train_counts.len() as i64);
    let (mut preds, mut labels, mut hits5) = (Vec::new(), Vec::new(), Vec::new());
    tch::no_grad(|| -> Result<()> {
        for batch in split.batches((0..split.len()).collect(), 500, false, 0) {
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

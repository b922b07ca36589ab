//! Logit-adjusted cross-entropy (Menon et al. 2021): `CE(s' o + tau log pi, y)`,
//! `pi_j = n_j / N`. Prediction uses the scaled logits without the prior.
use super::{class_constant, cross_entropy, log_prior, plain_scale, row, Classes, Loss, Noise, Objective};
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogitAdjusted {
    /// Logit scale on the cosine head.
    pub scale: f64,
    pub tau: f64,
}

impl Default for LogitAdjusted {
    fn default() -> Self {
        LogitAdjusted { scale: 30.0, tau: 1.0 }
    }
}

impl Loss for LogitAdjusted {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        let log_prior = class_constant(&log_prior(classes.counts), classes.device);
        Box::new(PriorAdjusted { s: plain_scale(self.scale, classes.head), log_prior, tau: self.tau })
    }
}

/// `CE(s' o + tau log pi, y)` (logit adjustment; balanced softmax is tau = 1).
#[derive(Debug)]
pub(super) struct PriorAdjusted {
    pub s: f64,
    pub log_prior: Tensor,
    pub tau: f64,
}

impl Objective for PriorAdjusted {
    fn per_sample(&self, out: &Tensor, targets: &Tensor, _: Noise) -> Tensor {
        // tau multiplies the prior in the outputs' precision (engine 3's order of operations).
        cross_entropy(&(out * self.s + row(&self.log_prior, out) * self.tau), targets)
    }

    fn eval_logits(&self, out: &Tensor) -> Tensor {
        out * self.s
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::models::Head;

    #[test]
    fn prior_added_in_training_only() {
        let n: f64 = COUNTS.iter().sum::<usize>() as f64;
        let prior: Vec<f64> = COUNTS.iter().map(|&c| c as f64 / n).collect();
        let c = criterion(LogitAdjusted { tau: 1.5, ..LogitAdjusted::default() }, Head::Linear);
        let want = mean_over_rows(|_, o, y| ce(&[0, 1, 2].map(|j| o[j] + 1.5 * prior[j].ln()), y));
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
        // Prediction uses the raw logits, without the prior.
        assert!(c.eval_logits(&out_tensor()).equal(&out_tensor()));
    }
}

//! Balanced softmax (Ren et al. 2020): `CE(s' o + log pi, y)`, `pi_j = n_j / N`; prediction
//! uses the scaled logits without the prior.
use super::logit_adjusted::PriorAdjusted;
use super::{class_constant, log_prior, plain_scale, Classes, Loss, Objective};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancedSoftmax {
    /// Logit scale on the cosine head.
    pub scale: f64,
}

impl Default for BalancedSoftmax {
    fn default() -> Self {
        BalancedSoftmax { scale: 30.0 }
    }
}

impl Loss for BalancedSoftmax {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        let log_prior = class_constant(&log_prior(classes.counts), classes.device);
        Box::new(PriorAdjusted { s: plain_scale(self.scale, classes.head), log_prior, tau: 1.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::models::Head;

    #[test]
    fn log_prior_added() {
        let n: f64 = COUNTS.iter().sum::<usize>() as f64;
        let c = criterion(BalancedSoftmax::default(), Head::Linear);
        let want = mean_over_rows(|_, o, y| ce(&[0, 1, 2].map(|j| o[j] + (COUNTS[j] as f64 / n).ln()), y));
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
    }
}

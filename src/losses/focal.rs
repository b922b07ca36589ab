//! Focal loss (Lin et al. 2017) as the released GCL code's `FocalLoss`: cross-entropy wrapped
//! by the criterion's detached focal factor, `mean(sg[(1 - p_y)^gamma] CE_i)`, `p_y = exp(-CE_i)`.
use super::{cross_entropy, plain_scale, Classes, Loss, Noise, Objective};
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Focal {
    /// Logit scale on the cosine head.
    pub scale: f64,
    pub focal_gamma: f64,
}

impl Default for Focal {
    fn default() -> Self {
        Focal { scale: 30.0, focal_gamma: 1.0 }
    }
}

impl Loss for Focal {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        Box::new(FocalCe { s: plain_scale(self.scale, classes.head), gamma: self.focal_gamma })
    }
}

#[derive(Debug)]
struct FocalCe {
    s: f64,
    gamma: f64,
}

impl Objective for FocalCe {
    fn per_sample(&self, out: &Tensor, targets: &Tensor, _: Noise) -> Tensor {
        cross_entropy(&(out * self.s), targets)
    }

    fn eval_logits(&self, out: &Tensor) -> Tensor {
        out * self.s
    }

    fn focal_gamma(&self) -> f64 {
        self.gamma
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::models::Head;

    #[test]
    fn focal_factor_on_cross_entropy() {
        let c = criterion(Focal { focal_gamma: 2.0, ..Focal::default() }, Head::Linear);
        let want = mean_over_rows(|_, o, y| {
            let l = ce(o, y);
            (1.0 - (-l).exp()).powi(2) * l
        });
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
    }
}

//! Cross-entropy: `CE(s' o, y)` (`s' = s` on the cosine head, 1 on raw linear logits).
use super::{cross_entropy, plain_scale, Classes, Loss, Noise, Objective};
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ce {
    /// Logit scale on the cosine head.
    pub scale: f64,
}

impl Default for Ce {
    fn default() -> Self {
        Ce { scale: 30.0 }
    }
}

impl Loss for Ce {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        Box::new(ScaledCe { s: plain_scale(self.scale, classes.head) })
    }
}

#[derive(Debug)]
struct ScaledCe {
    s: f64,
}

impl Objective for ScaledCe {
    fn per_sample(&self, out: &Tensor, targets: &Tensor, _: Noise) -> Tensor {
        cross_entropy(&(out * self.s), targets)
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
    fn linear_and_cosine_scaling() {
        let c = criterion(Ce::default(), Head::Linear);
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), mean_over_rows(|_, o, y| ce(o, y)));
        let c = criterion(Ce::default(), Head::Normed);
        let want = mean_over_rows(|_, o, y| ce(&o.map(|v| 30.0 * v), y));
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
        assert!(c.eval_logits(&out_tensor()).allclose(&(out_tensor() * 30.0), 1e-12, 1e-12, false));
    }
}

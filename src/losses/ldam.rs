//! LDAM (Cao et al. 2019): `CE(s (o - m_y 1_y), y)`, `m_j ∝ n_j^(-1/4)` with largest margin
//! `max_margin` (the tail class). With `drw_epoch` in the stage it becomes LDAM-DRW.
//! Prediction uses the plain head output.
use super::{class_constant, cross_entropy, row, Classes, Loss, Noise, Objective};
use crate::portable;
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ldam {
    /// Logit scale (always applied, as the released code pairs LDAM with the cosine head).
    pub scale: f64,
    pub max_margin: f64,
}

impl Default for Ldam {
    fn default() -> Self {
        Ldam { scale: 30.0, max_margin: 0.5 }
    }
}

impl Loss for Ldam {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        let margins = class_constant(&ldam_margins(classes.counts, self.max_margin), classes.device);
        Box::new(LdamObjective { s: self.scale, margins })
    }
}

/// LDAM margins `m_j = C n_j^(-1/4)` with `C` chosen so that the largest margin is `max_margin`.
pub fn ldam_margins(counts: &[usize], max_margin: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts.iter().map(|&n| portable::pow(n as f64, -0.25)).collect();
    let max = raw.iter().cloned().fold(0.0, f64::max);
    raw.iter().map(|m| m * max_margin / max).collect()
}

#[derive(Debug)]
struct LdamObjective {
    s: f64,
    margins: Tensor,
}

impl Objective for LdamObjective {
    fn per_sample(&self, out: &Tensor, targets: &Tensor, _: Noise) -> Tensor {
        let one_hot = targets.one_hot(out.size()[1]).to_kind(out.kind());
        cross_entropy(&((out - one_hot * row(&self.margins, out)) * self.s), targets)
    }

    fn eval_logits(&self, out: &Tensor) -> Tensor {
        out.shallow_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::models::Head;

    #[test]
    fn margins_and_loss() {
        let m = ldam_margins(&COUNTS, 0.5);
        close(m[2], 0.5);
        close(m[0], 0.5 * 100f64.powf(-0.25));
        let c = criterion(Ldam::default(), Head::Linear);
        let want = mean_over_rows(|_, o, y| {
            let mut z = *o;
            z[y] -= m[y];
            ce(&z.map(|v| 30.0 * v), y)
        });
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
        assert!(c.eval_logits(&out_tensor()).equal(&out_tensor()));
    }
}

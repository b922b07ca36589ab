//! Label-aware smoothing (MiSLAS, Zhong et al. 2021): with `t_j = (n_j - n_min) / (n_max - n_min)`,
//! `eps_j = las_tail + (las_head - las_tail) f(t_j)`, `f(t) = sin(pi/2 t)` for the MiSLAS code's
//! default shape "concave" and `f(t) = t` for "linear"; loss
//! `(1 - eps_y) (-log p_y) + eps_y mean_j(-log p_j)` on `s' o`.
use super::{class_constant, plain_scale, Classes, Loss, Noise, Objective};
use crate::portable;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelAwareSmoothing {
    /// Logit scale on the cosine head.
    pub scale: f64,
    /// Smoothing of the largest (head) and of the smallest (tail) class, and the curve between.
    pub las_head: f64,
    pub las_tail: f64,
    pub las_shape: LasShape,
}

impl Default for LabelAwareSmoothing {
    fn default() -> Self {
        LabelAwareSmoothing { scale: 30.0, las_head: 0.4, las_tail: 0.1, las_shape: LasShape::Concave }
    }
}

/// How label-aware smoothing goes from the tail's to the head's value (MiSLAS's `shape`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LasShape {
    /// `s_t + (s_h - s_t) sin(pi/2 t)` (MiSLAS's default).
    #[default]
    Concave,
    /// `s_t + (s_h - s_t) t`.
    Linear,
}

impl Loss for LabelAwareSmoothing {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        let eps = las_smoothing(classes.counts, self.las_head, self.las_tail, self.las_shape);
        Box::new(Smoothed { s: plain_scale(self.scale, classes.head), eps: class_constant(&eps, classes.device) })
    }
}

/// Smoothing per class: `las_head` for the largest class, `las_tail` for the smallest, along
/// the curve `shape` (module docs). A balanced set gives every class `las_head`.
pub fn las_smoothing(counts: &[usize], las_head: f64, las_tail: f64, shape: LasShape) -> Vec<f64> {
    let n_max = counts.iter().copied().max().unwrap_or(0) as f64;
    let n_min = counts.iter().copied().min().unwrap_or(0) as f64;
    counts
        .iter()
        .map(|&n| {
            let t = if n_max > n_min { (n as f64 - n_min) / (n_max - n_min) } else { 1.0 };
            let f = match shape {
                LasShape::Concave => portable::sin(std::f64::consts::FRAC_PI_2 * t),
                LasShape::Linear => t,
            };
            las_tail + (las_head - las_tail) * f
        })
        .collect()
}

#[derive(Debug)]
struct Smoothed {
    s: f64,
    /// `[C]` smoothing per class.
    eps: Tensor,
}

impl Objective for Smoothed {
    fn per_sample(&self, out: &Tensor, targets: &Tensor, _: Noise) -> Tensor {
        let log_p = (out * self.s).log_softmax(1, None::<Kind>);
        let nll = -log_p.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1);
        let eps_y = self.eps.to_kind(out.kind()).to_device(out.device()).index_select(0, targets);
        let smooth = -log_p.mean_dim(1, false, None::<Kind>);
        (-&eps_y + 1.0) * nll + eps_y * smooth
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
    fn shapes_and_loss() {
        // MiSLAS concave: s_t + (s_h - s_t) sin((n - n_min) pi / (2 (n_max - n_min))).
        let eps = las_smoothing(&COUNTS, 0.3, 0.0, LasShape::Concave);
        close(eps[0], 0.3);
        close(eps[2], 0.0);
        close(eps[1], 0.3 * (9.0 * std::f64::consts::PI / (2.0 * 99.0)).sin());
        let eps = las_smoothing(&COUNTS, 0.4, 0.1, LasShape::Linear);
        close(eps[0], 0.4);
        close(eps[2], 0.1);
        close(eps[1], 0.1 + 0.3 * 9.0 / 99.0);
        assert_eq!(las_smoothing(&[5, 5], 0.4, 0.1, LasShape::Linear), vec![0.4, 0.4]);
        let c = criterion(LabelAwareSmoothing { las_shape: LasShape::Linear, ..LabelAwareSmoothing::default() }, Head::Linear);
        let want = mean_over_rows(|_, o, y| {
            let mean_nll = (0..3).map(|j| ce(o, j)).sum::<f64>() / 3.0;
            (1.0 - eps[y]) * ce(o, y) + eps[y] * mean_nll
        });
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
    }
}

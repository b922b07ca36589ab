//! Class-balanced loss (Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of
//! Samples"), as the released code (richardaecn/class-balanced-loss, `src/cifar_main.py`).
//!
//! Weights: the inverse effective number `w_j = (1 - beta) / (1 - beta^n_j)`, normalised so that
//! `sum_j w_j = C`. With logits `z = s' o` and `w = w_y` of each sample:
//! - `softmax`: `w CE(z, y)`;
//! - `sigmoid`: `w sum_j BCE(z_j, 1[j = y])`, one-vs-all sigmoids;
//! - `focal`: `w sum_j (1 - p^t_j)^gamma BCE(z_j, 1[j = y])`, `p^t_j = sigmoid(z_j)` for `j = y`
//!   and `1 - sigmoid(z_j)` otherwise; the modulator is differentiated (the released TF code
//!   computes it in the graph, unlike the detached factor of GCL's `focal_loss`).
//!
//! All three are averaged over the batch (the released code divides the sigmoid sums by the
//! number of positive labels, which is the batch size). Prediction: argmax of `z`.
//! Not reproduced: the released TF model's classifier set-up for the sigmoid forms
//! (`model_base.py`'s `_fully_connected` takes the loss type); ours is the run's usual head.
use super::{class_constant, cross_entropy, plain_scale, Classes, Loss, Noise, Objective};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassBalanced {
    /// Logit scale on the cosine head.
    pub scale: f64,
    /// Effective-number hyper-parameter (released CIFAR runs: 0.9999).
    pub beta: f64,
    pub form: CbForm,
    /// Focal exponent of `form = "focal"` (released default 1.0).
    pub focal_gamma: f64,
}

impl Default for ClassBalanced {
    fn default() -> Self {
        ClassBalanced { scale: 30.0, beta: 0.9999, form: CbForm::Softmax, focal_gamma: 1.0 }
    }
}

/// The base loss the class-balanced weights multiply (the released code's `loss_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CbForm {
    #[default]
    Softmax,
    Sigmoid,
    Focal,
}

/// `(1 - beta) / (1 - beta^n_j)`, normalised to sum to the number of classes: the same weights
/// as LDAM-DRW's deferred re-weighting (both from Cui et al.), so computed by that one function.
pub fn class_balanced_weights(counts: &[usize], beta: f64) -> Vec<f64> {
    crate::data::class_stats::drw_weights(counts, beta)
}

impl Loss for ClassBalanced {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        let weights = class_constant(&class_balanced_weights(classes.counts, self.beta), classes.device);
        Box::new(Balanced { s: plain_scale(self.scale, classes.head), form: self.form, gamma: self.focal_gamma, weights })
    }
}

#[derive(Debug)]
struct Balanced {
    s: f64,
    form: CbForm,
    gamma: f64,
    /// `[C]` normalised class-balanced weights.
    weights: Tensor,
}

impl Objective for Balanced {
    fn per_sample(&self, out: &Tensor, targets: &Tensor, _: Noise) -> Tensor {
        let z = out * self.s;
        let w_y = self.weights.to_kind(out.kind()).to_device(out.device()).index_select(0, targets);
        let base = match self.form {
            CbForm::Softmax => cross_entropy(&z, targets),
            CbForm::Sigmoid | CbForm::Focal => {
                let y = targets.one_hot(z.size()[1]).to_kind(z.kind());
                // BCE with logits, stable: max(z, 0) - z y + log(1 + exp(-|z|)).
                let bce = z.clamp_min(0.0) - &z * &y + (-z.abs()).exp().log1p();
                let per_class = if self.form == CbForm::Focal {
                    // (1 - p_t)^gamma = exp(-gamma (y z + log(1 + exp(-z)))), the released
                    // code's stable form.
                    let log1p_exp_neg = (-&z).clamp_min(0.0) + (-z.abs()).exp().log1p();
                    (-(&y * &z + log1p_exp_neg) * self.gamma).exp() * bce
                } else {
                    bce
                };
                per_class.sum_dim_intlist(1, false, None::<Kind>)
            }
        };
        w_y * base
    }

    fn eval_logits(&self, out: &Tensor) -> Tensor {
        out * self.s
    }
}

#[cfg(test)]
mod tests {
    //! Against a direct f64 evaluation of the released code's formulas.
    use super::super::testing::*;
    use super::*;
    use crate::models::Head;

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// `w_y sum_j (1 - p_t)^gamma (-log p_t)` with sigmoid probabilities (gamma 0: plain BCE).
    fn sigmoid_reference(o: &[f64; 3], y: usize, w: f64, gamma: f64) -> f64 {
        w * (0..3)
            .map(|j| {
                let p = sigmoid(o[j]);
                let pt = if j == y { p } else { 1.0 - p };
                (1.0 - pt).powf(gamma) * -pt.ln()
            })
            .sum::<f64>()
    }

    #[test]
    fn weights_are_the_normalised_inverse_effective_number() {
        let w = class_balanced_weights(&COUNTS, 0.9999);
        let raw: Vec<f64> = COUNTS.iter().map(|&n| (1.0 - 0.9999) / (1.0 - 0.9999f64.powi(n as i32))).collect();
        let sum: f64 = raw.iter().sum();
        for j in 0..3 {
            assert!((w[j] - raw[j] * 3.0 / sum).abs() < 1e-12, "{w:?}");
        }
        assert!((w.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        assert!(w[2] > w[1] && w[1] > w[0], "rarer classes weigh more: {w:?}");
    }

    #[test]
    fn three_forms_against_direct_evaluation() {
        let w = class_balanced_weights(&COUNTS, 0.9999);
        let c = criterion(ClassBalanced::default(), Head::Linear);
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), mean_over_rows(|_, o, y| w[y] * ce(o, y)));
        let c = criterion(ClassBalanced { form: CbForm::Sigmoid, ..ClassBalanced::default() }, Head::Linear);
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), mean_over_rows(|_, o, y| sigmoid_reference(o, y, w[y], 0.0)));
        let c = criterion(ClassBalanced { form: CbForm::Focal, focal_gamma: 2.0, ..ClassBalanced::default() }, Head::Linear);
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), mean_over_rows(|_, o, y| sigmoid_reference(o, y, w[y], 2.0)));
        // beta = 0: every weight 1, so the softmax form is plain cross-entropy.
        let c = criterion(ClassBalanced { beta: 0.0, ..ClassBalanced::default() }, Head::Normed);
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), mean_over_rows(|_, o, y| ce(&o.map(|v| 30.0 * v), y)));
    }

    /// The focal form's modulator is differentiated: compare with a central difference of the
    /// direct evaluation.
    #[test]
    fn focal_form_gradient_includes_the_modulator() {
        let w = class_balanced_weights(&COUNTS, 0.9999);
        let c = criterion(ClassBalanced { form: CbForm::Focal, focal_gamma: 2.0, ..ClassBalanced::default() }, Head::Linear);
        let out = out_tensor().set_requires_grad(true);
        c.loss(&out, &y_tensor(), true).backward();
        let got: Vec<f64> = Vec::try_from(out.grad().view([-1])).unwrap();
        let h = 1e-6;
        for i in 0..4 {
            for j in 0..3 {
                let f = |d: f64| {
                    let mut o = OUT[i];
                    o[j] += d;
                    sigmoid_reference(&o, Y[i] as usize, w[Y[i] as usize], 2.0) / 4.0
                };
                let want = (f(h) - f(-h)) / (2.0 * h);
                assert!((got[i * 3 + j] - want).abs() < 1e-7, "d/do[{i}][{j}]: {} vs {want}", got[i * 3 + j]);
            }
        }
    }
}

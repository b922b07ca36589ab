//! Classifiers on top of the pooled features.
//!
//! - `Linear`: `W f + b`, `W` of shape `[C, D]` (torch's `nn.Linear` layout).
//! - `Normed`: the cosine classifier of LDAM/GCL, `cos(theta_j) = f/||f|| . w_j/||w_j||`, no bias.
//!   `W` has the released code's `NormedLinear` layout `[D, C]` (one anchor per column) and its
//!   init: uniform(-1, 1) per entry, then every column rescaled to unit norm. The output is the
//!   unscaled cosine in [-1, 1]; the loss applies the logit scale `s`.
//!
//! Stage-2 re-balancing on top of either head:
//! - tau-normalisation (Kang et al. 2020), post hoc: anchors `w_j / ||w_j||^tau`. On the linear
//!   head the weights are rescaled in place (the bias is kept). On the cosine head a tau-norm of
//!   unit anchors would be a no-op, so there the anchors are divided by `||w_j||^tau` instead of
//!   `||w_j||` (`tau = 1` is the plain cosine head; `tau < 1` lets anchors with a larger norm
//!   produce larger logits).
//! - LWS (learnable weight scaling): one learnable scale per class multiplying the head's
//!   output, on a frozen classifier.
use std::cell::Cell;
use tch::nn::{self, Init};
use tch::Tensor;

use super::resnet_cifar::KAIMING_NORMAL_FAN_IN;
use super::spec::Head;

/// How a linear head's weights are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearInit {
    /// The LDAM/GCL CIFAR code's `_weights_init`: Kaiming-normal weights (fan-in, ReLU gain).
    KaimingNormal,
    /// torch's `nn.Linear` default (torchvision's `fc`): uniform(+-1/sqrt(D)).
    TorchDefault,
}

#[derive(Debug)]
enum Weights {
    Linear { weight: Tensor, bias: Tensor },
    Normed { weight: Tensor },
}

/// A classifier head (see the module docs).
#[derive(Debug)]
pub struct Classifier {
    weights: Weights,
    /// Exponent of the anchor norm on the cosine head (1: plain cosine).
    tau: Cell<f64>,
}

/// `x / max(||x||_2, 1e-12)` along `dim`, as `torch.nn.functional.normalize`.
pub fn l2_normalize(x: &Tensor, dim: i64) -> Tensor {
    let norm = x.norm_scalaropt_dim(2.0, [dim], true).clamp_min(1e-12);
    x / norm
}

impl Classifier {
    /// Build under `p` (variables `p.weight`, and `p.bias` for the linear head).
    pub fn new(p: &nn::Path, head: Head, dim: i64, classes: i64, init: LinearInit) -> Classifier {
        let weights = match head {
            Head::Linear => {
                let bound = 1.0 / (dim as f64).sqrt();
                let w_init = match init {
                    LinearInit::KaimingNormal => KAIMING_NORMAL_FAN_IN,
                    LinearInit::TorchDefault => Init::Uniform { lo: -bound, up: bound },
                };
                Weights::Linear {
                    weight: p.var("weight", &[classes, dim], w_init),
                    bias: p.var("bias", &[classes], Init::Uniform { lo: -bound, up: bound }),
                }
            }
            Head::Normed => {
                let weight = p.var("weight", &[dim, classes], Init::Uniform { lo: -1.0, up: 1.0 });
                tch::no_grad(|| {
                    let unit = l2_normalize(&weight, 0);
                    weight.shallow_clone().copy_(&unit);
                });
                Weights::Normed { weight }
            }
        };
        Classifier { weights, tau: Cell::new(1.0) }
    }

    pub fn num_classes(&self) -> i64 {
        match &self.weights {
            Weights::Linear { weight, .. } => weight.size()[0],
            Weights::Normed { weight } => weight.size()[1],
        }
    }

    /// Head output `[B, C]`: raw logits (linear) or cosines (normed).
    pub fn forward(&self, features: &Tensor) -> Tensor {
        match &self.weights {
            Weights::Linear { weight, bias } => features.linear(weight, Some(bias)),
            Weights::Normed { weight } => {
                let tau = self.tau.get();
                let norm = weight.norm_scalaropt_dim(2.0, [0], true).clamp_min(1e-12);
                let anchors = if tau == 1.0 { weight / norm } else { weight / norm.pow_tensor_scalar(tau) };
                l2_normalize(features, 1).matmul(&anchors)
            }
        }
    }

    /// tau-normalisation; see the module docs for what it means on each head.
    pub fn tau_normalize(&self, tau: f64) {
        match &self.weights {
            Weights::Linear { weight, .. } => tch::no_grad(|| {
                let norm = weight.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12);
                let scaled = weight / norm.pow_tensor_scalar(tau);
                weight.shallow_clone().copy_(&scaled);
            }),
            Weights::Normed { .. } => self.tau.set(tau),
        }
    }

    /// Overwrite this classifier's values with `other`'s (same head kind and shape).
    pub(crate) fn copy_values_from(&self, other: &Classifier) {
        tch::no_grad(|| match (&self.weights, &other.weights) {
            (Weights::Linear { weight, bias }, Weights::Linear { weight: w2, bias: b2 }) => {
                weight.shallow_clone().copy_(w2);
                bias.shallow_clone().copy_(b2);
            }
            (Weights::Normed { weight }, Weights::Normed { weight: w2 }) => {
                weight.shallow_clone().copy_(w2);
            }
            _ => unreachable!("copy_values_from is only called between heads of one kind"),
        });
        self.tau.set(1.0);
    }
}

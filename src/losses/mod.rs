//! Training losses: one file per loss, each owning its settings (the manifest's `loss` table),
//! their defaults and what it computes; this module registers them and wraps them in the
//! [`Criterion`] the training loop uses.
//!
//! Notation: `o` is the head output (a cosine for the normed head, raw logits for the linear
//! one), `y` the target, `n_j` the class counts, `s` the logit scale.
//!
//! A loss is a [`LossSpec`] variant chosen by `kind` in the manifest (`loss = { kind = "gcl",
//! scale = 30 }`). Its settings struct implements [`Loss`]: `build` precomputes its per-class
//! constants for a training split and returns an [`Objective`], which gives the per-sample loss
//! and the logits to predict from. Only the chosen variant's fields are part of a run's cache
//! key, so adding a field to one loss leaves every other loss's cached runs valid.
//!
//! The scale: GCL and LDAM always multiply the head output by `s` (as the released code, which
//! pairs them with the cosine head). The other kinds use `s' = s` when the head is the cosine
//! head and `s' = 1` otherwise (raw linear logits); see [`plain_scale`].
//!
//! The criterion's batch reduction (shared by all losses): an objective that declares a focal
//! exponent `gamma > 0` has its per-sample loss `l_i` wrapped as `sg[(1 - exp(-l_i))^gamma] l_i`,
//! where `sg` stops the gradient: the released `focal_loss` uses `p.detach()`, so the factor
//! re-weights samples without being differentiated. Class weights (LDAM-DRW): without the focal
//! wrapper the batch mean is weighted like torch's `cross_entropy(weight=w)`,
//! `sum(w_y l_i) / sum(w_y)`; with it, `l_i` is first multiplied by `w_y` (as the LDAM code's
//! `FocalLoss`).
//!
//! Adding a loss: see CONTRIBUTING.md (its own file here plus one line in `register_losses!`).
use tch::{Device, Kind, Tensor};

use crate::models::Head;
use crate::portable;

/// Declares the loss modules and the [`LossSpec`] enum with one variant per loss (through
/// [`crate::registry::tagged_settings!`]): the variant, its settings struct and its module share
/// one name (`Gcl` in `gcl.rs`). The serde tag is the variant's snake_case name, which is also
/// its module's name (`kind = "logit_adjusted"` in `logit_adjusted.rs`).
macro_rules! register_losses {
    ($($module:ident :: $variant:ident),* $(,)?) => {
        $(pub mod $module;)*
        $(pub use $module::$variant;)*

        crate::registry::tagged_settings! {
            /// The loss of one stage. Each variant owns its settings and their defaults.
            #[serde(tag = "kind", rename_all = "snake_case")]
            pub enum LossSpec by "kind", kind, kinds {
                $($variant($variant),)*
            }
        }

        /// The module of each registered loss, in registration order (each is its `kind`).
        pub const LOSS_MODULES: &[&str] = &[$(stringify!($module),)*];

        impl LossSpec {
            /// The settings as the [`Loss`] they implement.
            pub fn method(&self) -> &dyn Loss {
                match self {
                    $(LossSpec::$variant(s) => s,)*
                }
            }
        }

        $(impl From<$variant> for LossSpec {
            fn from(settings: $variant) -> Self {
                LossSpec::$variant(settings)
            }
        })*
    };
}

register_losses! {
    ce::Ce,
    focal::Focal,
    ldam::Ldam,
    logit_adjusted::LogitAdjusted,
    balanced_softmax::BalancedSoftmax,
    label_aware_smoothing::LabelAwareSmoothing,
    gcl::Gcl,
    class_balanced::ClassBalanced,
}

pub use crate::data::class_stats::{cloud_sizes, CloudSchedule};
pub use label_aware_smoothing::{las_smoothing, LasShape};
pub use ldam::ldam_margins;

impl Default for LossSpec {
    fn default() -> Self {
        LossSpec::Ce(Ce::default())
    }
}

/// What a loss is built for: the training split's class counts, the head its outputs come
/// from, and the device of its constants.
pub struct Classes<'a> {
    pub counts: &'a [usize],
    pub head: Head,
    pub device: Device,
}

/// A loss's settings: build the objective for a training split.
pub trait Loss: std::fmt::Debug {
    fn build(&self, classes: &Classes) -> Box<dyn Objective>;
}

/// GCL's Gaussian noise for one forward pass: none (evaluation), drawn afresh (training), or
/// a given sample `eps` `[B, C]` before clamping (tests and parity checks).
#[derive(Clone, Copy)]
pub enum Noise<'a> {
    Off,
    Draw,
    Given(&'a Tensor),
}

/// A loss built for one training split.
pub trait Objective: std::fmt::Debug {
    /// The loss of each sample `[B]` (before the criterion's focal wrapper and reduction).
    fn per_sample(&self, out: &Tensor, targets: &Tensor, noise: Noise) -> Tensor;
    /// Logits to predict from at evaluation.
    fn eval_logits(&self, out: &Tensor) -> Tensor;
    /// Exponent of the criterion's detached focal factor (0: none).
    fn focal_gamma(&self) -> f64 {
        0.0
    }
}

/// The multiplier CE-like losses apply to the head output: `s` for the cosine head, 1 for raw
/// linear logits.
pub fn plain_scale(scale: f64, head: Head) -> f64 {
    if head == Head::Normed {
        scale
    } else {
        1.0
    }
}

/// A per-class constant `[C]`, kept in f64 (converted to the outputs' kind where used).
pub fn class_constant(v: &[f64], device: Device) -> Tensor {
    Tensor::from_slice(v).to_device(device)
}

/// A `[C]` constant as a `[1, C]` row of `like`'s kind and device.
pub fn row(t: &Tensor, like: &Tensor) -> Tensor {
    t.to_kind(like.kind()).to_device(like.device()).unsqueeze(0)
}

/// `log(n_j / N)`.
pub fn log_prior(counts: &[usize]) -> Vec<f64> {
    let total: usize = counts.iter().sum();
    counts.iter().map(|&n| portable::ln(n as f64 / total as f64)).collect()
}

/// `-log softmax(z)_y` per row `[B]`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    -logits.log_softmax(1, None::<Kind>).gather(1, &targets.unsqueeze(1), false).squeeze_dim(1)
}

/// A loss with its per-class constants precomputed, the optional class weights of deferred
/// re-weighting, and the shared reduction (module docs).
#[derive(Debug)]
pub struct Criterion {
    objective: Box<dyn Objective>,
    class_weights: Option<Tensor>,
    /// Counts the changes of `class_weights` (a captured step must be captured again).
    version: u64,
}

impl Criterion {
    /// The loss for these training counts; every class needs at least one training image (the
    /// per-class constants take logs and effective numbers of the counts).
    pub fn new(spec: &LossSpec, class_counts: &[usize], head: Head, device: Device) -> anyhow::Result<Criterion> {
        if class_counts.is_empty() {
            anyhow::bail!("the training split has no classes");
        }
        if let Some(empty) = class_counts.iter().position(|&n| n == 0) {
            anyhow::bail!(
                "class {empty} has no training images (training counts per class: {class_counts:?}); the loss's \
                 per-class constants need at least one: lower `dataset.imbalance`, raise `dataset.max_per_class`, \
                 or give the class images in the split"
            );
        }
        let classes = Classes { counts: class_counts, head, device };
        Ok(Criterion { objective: spec.method().build(&classes), class_weights: None, version: 0 })
    }

    /// Mean loss over the batch. `train` controls the GCL noise (never at evaluation).
    pub fn loss(&self, head_out: &Tensor, targets: &Tensor, train: bool) -> Tensor {
        let noise = if train { Noise::Draw } else { Noise::Off };
        self.reduce(&self.objective.per_sample(head_out, targets, noise), targets)
    }

    /// The loss with GCL's Gaussian sample `eps` `[B, C]` supplied (before clamping and
    /// `abs`), for tests and parity checks. Other kinds ignore `eps`.
    pub fn loss_with_noise(&self, head_out: &Tensor, targets: &Tensor, eps: &Tensor) -> Tensor {
        self.reduce(&self.objective.per_sample(head_out, targets, Noise::Given(eps)), targets)
    }

    /// `w * L(y_a) + (1 - w) * L(y_b)`, the training loss of one output against two label sets
    /// (any loss): mixup's (`w` = lambda, `y_b` the permuted labels) and BBN's cumulative
    /// learning (`w` = alpha, `y_b` the re-balancing branch's labels). As in the released code,
    /// each term draws its own GCL noise; `noise` gives the two terms' samples instead (`[B, C]`
    /// each, as in [`Criterion::loss_with_noise`]), for replays of a recorded stream.
    pub fn blended_loss(
        &self,
        head_out: &Tensor,
        y_a: &Tensor,
        y_b: &Tensor,
        w: f64,
        noise: Option<(&Tensor, &Tensor)>,
    ) -> Tensor {
        let term = |y: &Tensor, eps: Option<&Tensor>| match eps {
            Some(eps) => self.loss_with_noise(head_out, y, eps),
            None => self.loss(head_out, y, true),
        };
        term(y_a, noise.map(|n| n.0)) * w + term(y_b, noise.map(|n| n.1)) * (1.0 - w)
    }

    /// [`Criterion::blended_loss`] with `w` and `1 - w` as 0-dim tensors of the output's kind
    /// (the static step's, which a CUDA graph replays with new values). The same arithmetic:
    /// a float32 tensor times an f64 scalar multiplies by the scalar rounded to float32.
    pub fn blended_loss_weighted(
        &self,
        head_out: &Tensor,
        y_a: &Tensor,
        y_b: &Tensor,
        w: &Tensor,
        one_minus_w: &Tensor,
    ) -> Tensor {
        self.loss(head_out, y_a, true) * w + self.loss(head_out, y_b, true) * one_minus_w
    }

    /// Optional per-class weights `[C]` (LDAM-DRW's deferred re-weighting).
    pub fn set_class_weights(&mut self, w: Option<Tensor>) {
        if w.is_some() || self.class_weights.is_some() {
            self.version += 1;
        }
        self.class_weights = w;
    }

    /// Changes whenever the class weights do.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Logits used for prediction at evaluation.
    pub fn eval_logits(&self, head_out: &Tensor) -> Tensor {
        self.objective.eval_logits(head_out)
    }

    /// Batch reduction with the optional class weights and focal wrapper (module docs).
    fn reduce(&self, per_sample: &Tensor, targets: &Tensor) -> Tensor {
        let w_y = self
            .class_weights
            .as_ref()
            .map(|w| w.to_kind(per_sample.kind()).to_device(per_sample.device()).index_select(0, targets));
        let gamma = self.objective.focal_gamma();
        if gamma > 0.0 {
            let l = match &w_y {
                Some(w) => per_sample * w,
                None => per_sample.shallow_clone(),
            };
            // The released `focal_loss` weights each sample by `(1 - p.detach())^gamma`: the
            // factor passes no gradient, it only re-weights the per-sample loss.
            let p = (-&l).exp().detach();
            ((-p + 1.0).pow_tensor_scalar(gamma) * l).mean(None::<Kind>)
        } else {
            match &w_y {
                Some(w) => (per_sample * w).sum(None::<Kind>) / w.sum(None::<Kind>),
                None => per_sample.mean(None::<Kind>),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fixed inputs and an independent f64 evaluation, shared by the tests of every loss.
    use super::*;

    pub const COUNTS: [usize; 3] = [100, 10, 1];
    pub const OUT: [[f64; 3]; 4] = [[0.9, -0.2, 0.1], [0.3, 0.5, -0.7], [-0.4, 0.8, 0.2], [0.05, -0.6, 0.65]];
    pub const Y: [i64; 4] = [0, 2, 1, 2];

    pub fn out_tensor() -> Tensor {
        Tensor::from_slice(&OUT.concat()).view([4, 3])
    }

    pub fn y_tensor() -> Tensor {
        Tensor::from_slice(&Y)
    }

    pub fn value(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    /// `-log softmax(z)_y`.
    pub fn ce(z: &[f64], y: usize) -> f64 {
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        lse - z[y]
    }

    /// Mean over the batch of `f(row, head output, target)`.
    pub fn mean_over_rows(f: impl Fn(usize, &[f64; 3], usize) -> f64) -> f64 {
        (0..4).map(|i| f(i, &OUT[i], Y[i] as usize)).sum::<f64>() / 4.0
    }

    pub fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    pub fn criterion(spec: impl Into<LossSpec>, head: Head) -> Criterion {
        Criterion::new(&spec.into(), &COUNTS, head, Device::Cpu).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn weighted_mean_is_torchs_cross_entropy_weight() {
        // Weighted CE: sum(w_y l) / sum(w_y), as torch's cross_entropy(weight=w).
        let w = [0.5, 1.0, 4.0];
        let mut c = criterion(Ce::default(), Head::Linear);
        c.set_class_weights(Some(Tensor::from_slice(&w)));
        let num: f64 = (0..4).map(|i| w[Y[i] as usize] * ce(&OUT[i], Y[i] as usize)).sum();
        let den: f64 = (0..4).map(|i| w[Y[i] as usize]).sum();
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), num / den);
    }

    #[test]
    fn mixup_is_the_convex_combination() {
        let c = criterion(Ce::default(), Head::Linear);
        let yb = Tensor::from_slice(&[1i64, 1, 0, 0]);
        let got = value(&c.blended_loss(&out_tensor(), &y_tensor(), &yb, 0.3, None));
        let yb_v = [1usize, 1, 0, 0];
        let want =
            0.3 * mean_over_rows(|_, o, y| ce(o, y)) + 0.7 * (0..4).map(|i| ce(&OUT[i], yb_v[i])).sum::<f64>() / 4.0;
        close(got, want);
    }

    #[test]
    fn mixup_with_noise_gives_each_term_its_sample() {
        let c = criterion(Gcl::default(), Head::Normed);
        let (out, y_a, y_b) = (out_tensor(), y_tensor(), Tensor::from_slice(&[1i64, 1, 0, 0]));
        let eps_a = Tensor::from_slice(&[0.3, -1.2, 0.7, 2.0, -0.4, 0.1, -0.9, 1.5, 0.6, 0.2, -2.2, 1.1]).view([4, 3]);
        let eps_b = -&eps_a * 0.5 + 0.25;
        let got = c.blended_loss(&out, &y_a, &y_b, 0.3, Some((&eps_a, &eps_b)));
        let want = c.loss_with_noise(&out, &y_a, &eps_a) * 0.3 + c.loss_with_noise(&out, &y_b, &eps_b) * 0.7;
        assert!(got.equal(&want), "{} vs {}", value(&got), value(&want));
        let swapped = c.blended_loss(&out, &y_a, &y_b, 0.3, Some((&eps_b, &eps_a)));
        assert!((value(&swapped) - value(&got)).abs() > 1e-6, "the samples must reach their own terms");
    }

    #[test]
    fn every_loss_is_registered_under_its_kind() {
        // Each loss's `kind` is its module's name: the registration line is the only list.
        let kinds = LossSpec::kinds();
        assert_eq!(kinds, LOSS_MODULES);
        for k in &kinds {
            assert_eq!(&LossSpec::default_of(k).unwrap().kind(), k);
        }
        assert_eq!(LossSpec::default_of("gcll"), None);
    }

    #[test]
    fn a_loss_table_holds_only_its_own_settings() {
        let spec: LossSpec = toml::from_str("kind = 'gcl'\nnoise_mul = 1.0\n").unwrap();
        assert_eq!(spec, LossSpec::Gcl(Gcl { noise_mul: 1.0, ..Gcl::default() }));
        let err = toml::from_str::<LossSpec>("kind = 'ce'\nnoise_mul = 1.0\n").unwrap_err().to_string();
        assert!(err.contains("noise_mul"), "{err}");
        let err = toml::from_str::<LossSpec>("kind = 'gcll'\n").unwrap_err().to_string();
        assert!(err.contains("gcll") && err.contains("class_balanced"), "{err}");
    }

    #[test]
    fn a_class_without_training_images_is_an_error_naming_it() {
        let err = Criterion::new(&LossSpec::Gcl(Gcl::default()), &[5, 3, 0, 1], Head::Normed, Device::Cpu).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("class 2 has no training images") && text.contains("[5, 3, 0, 1]"), "{text}");
        assert!(Criterion::new(&LossSpec::Ce(Ce::default()), &[], Head::Linear, Device::Cpu).is_err());
    }
}

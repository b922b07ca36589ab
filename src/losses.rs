//! Training losses, built from `config::LossSpec` and the training split's class counts.
//!
//! Every loss is a softmax cross-entropy on adjusted logits, except label-aware smoothing.
//! Notation: `o` is the head output (a cosine for the normed head, raw logits for the linear
//! one), `y` the target, `n_j` the class counts, `s` the logit scale.
//!
//! - CE: `CE(s' o, y)`; focal: `mean((1 - p_y)^gamma * CE_i)` with `p_y = exp(-CE_i)`.
//! - LDAM (Cao et al. 2019): `CE(s (o - m_y 1_y), y)`, `m_j ∝ n_j^(-1/4)` with max `ldam_max_margin`.
//! - Logit-adjusted CE (Menon et al. 2021): `CE(s' o + tau log pi, y)`, `pi_j = n_j / N`.
//! - Balanced softmax (Ren et al. 2020): `CE(s' o + log pi, y)`.
//! - Label-aware smoothing (MisLAS, Zhong et al. 2021): with `t_j = (n_j - n_min) / (n_max - n_min)`,
//!   `eps_j = las_tail + (las_head - las_tail) f(t_j)`, `f(t) = sin(pi/2 t)` for the MiSLAS
//!   code's default shape "concave" and `f(t) = t` for "linear"; loss
//!   `(1 - eps_y) (-log p_y) + eps_y mean_j(-log p_j)`.
//! - GCL (this paper, notes §1): `z_j = s (o_j - c delta_j |eps_ij| - m 1_{j=y})`,
//!   `eps_ij ~ N(0, noise_std^2)` clamped to [-1, 1], drawn afresh per forward pass in training
//!   only; `delta` = `cloud_sizes`.
//!
//! The scale: GCL and LDAM always multiply the head output by `s` (as the released code, which
//! pairs them with the cosine head). The other kinds use `s' = s` when the head is the cosine
//! head (declare it with `Criterion::with_head`) and `s' = 1` otherwise (raw linear logits).
//!
//! `focal_gamma > 0` wraps any kind's per-sample loss `l_i` as `sg[(1 - exp(-l_i))^gamma] l_i`,
//! where `sg` stops the gradient: the released `focal_loss` uses `p.detach()`, so the factor
//! re-weights samples without being differentiated (GCL stage 2 uses gamma = 1;
//! `LossKind::Focal` is CE with this wrapper, as the released code's `FocalLoss`).
//! Class weights (LDAM-DRW): without the focal wrapper the batch mean is weighted like torch's
//! `cross_entropy(weight=w)`, `sum(w_y l_i) / sum(w_y)`; with it, `l_i` is first multiplied by
//! `w_y` (as the LDAM code's `FocalLoss`).
use tch::{Device, Kind, Tensor};

use crate::config::{CloudSchedule, Head, LasShape, LossKind, LossSpec};
use crate::portable;

/// A loss with its per-class constants precomputed.
#[derive(Debug)]
pub struct Criterion {
    kind: LossKind,
    scale: f64,
    /// Whether `scale` multiplies the head output for CE-like kinds (cosine head).
    scale_plain_kinds: bool,
    noise_mul: f64,
    noise_std: f64,
    margin: f64,
    focal_gamma: f64,
    tau: f64,
    /// `[C]` GCL cloud sizes `delta_j` in [0, 1].
    cloud: Tensor,
    /// `[C]` LDAM margins.
    ldam_margins: Tensor,
    /// `[C]` `log(n_j / N)`.
    log_prior: Tensor,
    /// `[C]` MisLAS smoothing per class.
    las_smoothing: Tensor,
    class_weights: Option<Tensor>,
}

fn vec_tensor(v: &[f64], device: Device) -> Tensor {
    // Kept in f64; converted to the outputs' kind where used.
    Tensor::from_slice(v).to_device(device)
}

impl Criterion {
    pub fn new(spec: &LossSpec, class_counts: &[usize], device: Device) -> Criterion {
        assert!(
            !class_counts.is_empty() && class_counts.iter().all(|&n| n > 0),
            "the loss needs a positive training count for every class, got {class_counts:?}"
        );
        let total: usize = class_counts.iter().sum();
        let log_prior: Vec<f64> = class_counts.iter().map(|&n| portable::ln(n as f64 / total as f64)).collect();
        Criterion {
            kind: spec.kind,
            scale: spec.scale,
            scale_plain_kinds: false,
            noise_mul: spec.noise_mul,
            noise_std: spec.noise_std,
            margin: spec.margin,
            focal_gamma: spec.focal_gamma,
            tau: spec.tau,
            cloud: vec_tensor(&cloud_sizes(spec.cloud, class_counts), device),
            ldam_margins: vec_tensor(&ldam_margins(class_counts, spec.ldam_max_margin), device),
            log_prior: vec_tensor(&log_prior, device),
            las_smoothing: vec_tensor(&las_smoothing(class_counts, spec.las_head, spec.las_tail, spec.las_shape), device),
            class_weights: None,
        }
    }

    /// Declare the head the outputs come from: with the cosine head the CE-like kinds scale
    /// the cosine by `s` as well (GCL and LDAM always do).
    pub fn with_head(mut self, head: Head) -> Criterion {
        self.scale_plain_kinds = head == Head::Normed;
        self
    }

    /// Mean loss over the batch. `train` controls the GCL noise (never at evaluation).
    pub fn loss(&self, head_out: &Tensor, targets: &Tensor, train: bool) -> Tensor {
        let noise = (train && self.kind == LossKind::Gcl)
            .then(|| Tensor::randn(head_out.size(), (head_out.kind(), head_out.device())) * self.noise_std);
        self.loss_impl(head_out, targets, noise.as_ref())
    }

    /// The loss with GCL's Gaussian sample `eps` `[B, C]` supplied (before clamping and
    /// `abs`), for tests and parity checks. Other kinds ignore `eps`.
    pub fn loss_with_noise(&self, head_out: &Tensor, targets: &Tensor, eps: &Tensor) -> Tensor {
        self.loss_impl(head_out, targets, Some(eps))
    }

    /// Mixup: `lam * L(y_a) + (1 - lam) * L(y_b)` (usable with any loss). As in the released
    /// code, each term draws its own GCL noise.
    pub fn mixup_loss(&self, head_out: &Tensor, y_a: &Tensor, y_b: &Tensor, lam: f64, train: bool) -> Tensor {
        self.loss(head_out, y_a, train) * lam + self.loss(head_out, y_b, train) * (1.0 - lam)
    }

    /// Optional per-class weights `[C]` (LDAM-DRW's deferred re-weighting).
    pub fn set_class_weights(&mut self, w: Option<Tensor>) {
        self.class_weights = w;
    }

    /// Logits used for prediction at evaluation: the plain head output (cosine) for GCL and
    /// LDAM, the scaled logits without any training-time adjustment otherwise.
    pub fn eval_logits(&self, head_out: &Tensor) -> Tensor {
        match self.kind {
            LossKind::Gcl | LossKind::Ldam => head_out.shallow_clone(),
            _ => head_out * self.plain_scale(),
        }
    }

    fn plain_scale(&self) -> f64 {
        if self.scale_plain_kinds {
            self.scale
        } else {
            1.0
        }
    }

    /// A `[C]` constant as a `[1, C]` row of `like`'s kind and device.
    fn row(&self, t: &Tensor, like: &Tensor) -> Tensor {
        t.to_kind(like.kind()).to_device(like.device()).unsqueeze(0)
    }

    fn loss_impl(&self, out: &Tensor, targets: &Tensor, eps: Option<&Tensor>) -> Tensor {
        let classes = out.size()[1];
        let one_hot = targets.one_hot(classes).to_kind(out.kind());
        let s_plain = self.plain_scale();
        let logits = match self.kind {
            LossKind::Ce | LossKind::Focal | LossKind::LabelAwareSmoothing => out * s_plain,
            LossKind::Ldam => (out - one_hot * self.row(&self.ldam_margins, out)) * self.scale,
            LossKind::LogitAdjusted => out * s_plain + self.row(&self.log_prior, out) * self.tau,
            LossKind::BalancedSoftmax => out * s_plain + self.row(&self.log_prior, out),
            LossKind::Gcl => {
                let mut cos = out.shallow_clone();
                if let Some(eps) = eps {
                    let cloud = self.row(&self.cloud, out);
                    cos = cos - cloud * eps.clamp(-1.0, 1.0).abs() * self.noise_mul;
                }
                (cos - one_hot * self.margin) * self.scale
            }
        };
        let log_p = logits.log_softmax(1, None::<Kind>);
        let nll = -log_p.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1);
        let per_sample = if self.kind == LossKind::LabelAwareSmoothing {
            let eps_y = self.las_smoothing.to_kind(out.kind()).to_device(out.device()).index_select(0, targets);
            let smooth = -log_p.mean_dim(1, false, None::<Kind>);
            (-&eps_y + 1.0) * nll + eps_y * smooth
        } else {
            nll
        };
        self.reduce(&per_sample, targets)
    }

    /// Batch reduction with the optional class weights and focal wrapper (module docs).
    fn reduce(&self, per_sample: &Tensor, targets: &Tensor) -> Tensor {
        let w_y = self
            .class_weights
            .as_ref()
            .map(|w| w.to_kind(per_sample.kind()).to_device(per_sample.device()).index_select(0, targets));
        if self.focal_gamma > 0.0 {
            let l = match &w_y {
                Some(w) => per_sample * w,
                None => per_sample.shallow_clone(),
            };
            // The released `focal_loss` weights each sample by `(1 - p.detach())^gamma`: the
            // factor passes no gradient, it only re-weights the per-sample loss.
            let p = (-&l).exp().detach();
            ((-p + 1.0).pow_tensor_scalar(self.focal_gamma) * l).mean(None::<Kind>)
        } else {
            match &w_y {
                Some(w) => (per_sample * w).sum(None::<Kind>) / w.sum(None::<Kind>),
                None => per_sample.mean(None::<Kind>),
            }
        }
    }
}

/// GCL's noise magnitudes `|clamp(eps, -1, 1)|`, `eps ~ N(0, std^2)`, of the given shape.
pub fn cloud_noise(shape: &[i64], std: f64, kind: Kind, device: Device) -> Tensor {
    (Tensor::randn(shape, (kind, device)) * std).clamp(-1.0, 1.0).abs()
}

/// Cloud size per class (paper Table 3), normalised so the largest is 1 (head class: 0).
/// A balanced set (all sizes 0) gives all zeros.
pub fn cloud_sizes(schedule: CloudSchedule, counts: &[usize]) -> Vec<f64> {
    let n_max = counts.iter().copied().max().unwrap_or(0) as f64;
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| {
            let n = n as f64;
            match schedule {
                CloudSchedule::Log => portable::ln(n_max) - portable::ln(n),
                CloudSchedule::PowThird => portable::pow(n_max, 1.0 / 3.0) - portable::pow(n, 1.0 / 3.0),
                CloudSchedule::PowQuarter => portable::pow(n_max, 0.25) - portable::pow(n, 0.25),
                CloudSchedule::Cos => portable::cos(n / n_max * std::f64::consts::FRAC_PI_2),
            }
        })
        .collect();
    let max = raw.iter().cloned().fold(0.0, f64::max);
    raw.iter().map(|&d| if max > 0.0 { d / max } else { 0.0 }).collect()
}

/// LDAM margins `m_j = C n_j^(-1/4)` with `C` chosen so that the largest margin is `max_margin`.
pub fn ldam_margins(counts: &[usize], max_margin: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts.iter().map(|&n| portable::pow(n as f64, -0.25)).collect();
    let max = raw.iter().cloned().fold(0.0, f64::max);
    raw.iter().map(|m| m * max_margin / max).collect()
}

/// MisLAS label-aware smoothing per class: `las_head` for the largest class, `las_tail` for the
/// smallest, along the curve `shape` (module docs). A balanced set gives every class `las_head`.
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

#[cfg(test)]
mod tests {
    //! Each loss against an independent f64 evaluation of its formula, row by row.
    use super::*;

    const COUNTS: [usize; 3] = [100, 10, 1];
    const OUT: [[f64; 3]; 4] = [[0.9, -0.2, 0.1], [0.3, 0.5, -0.7], [-0.4, 0.8, 0.2], [0.05, -0.6, 0.65]];
    const Y: [i64; 4] = [0, 2, 1, 2];

    fn out_tensor() -> Tensor {
        Tensor::from_slice(&OUT.concat()).view([4, 3])
    }

    fn y_tensor() -> Tensor {
        Tensor::from_slice(&Y)
    }

    fn value(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    /// `-log softmax(z)_y`.
    fn ce(z: &[f64], y: usize) -> f64 {
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        lse - z[y]
    }

    /// Mean over the batch of `f(row, adjusted logits, target)`.
    fn mean_over_rows(f: impl Fn(usize, &[f64; 3], usize) -> f64) -> f64 {
        (0..4).map(|i| f(i, &OUT[i], Y[i] as usize)).sum::<f64>() / 4.0
    }

    fn spec(kind: LossKind) -> LossSpec {
        LossSpec { kind, ..LossSpec::default() }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn ce_linear_and_cosine_scaling() {
        let c = Criterion::new(&spec(LossKind::Ce), &COUNTS, Device::Cpu);
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), mean_over_rows(|_, o, y| ce(o, y)));
        let c = c.with_head(Head::Normed);
        let want = mean_over_rows(|_, o, y| ce(&o.map(|v| 30.0 * v), y));
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
        assert!(c.eval_logits(&out_tensor()).allclose(&(out_tensor() * 30.0), 1e-12, 1e-12, false));
    }

    #[test]
    fn focal_and_class_weights() {
        let s = LossSpec { focal_gamma: 2.0, ..spec(LossKind::Focal) };
        let c = Criterion::new(&s, &COUNTS, Device::Cpu);
        let want = mean_over_rows(|_, o, y| {
            let l = ce(o, y);
            (1.0 - (-l).exp()).powi(2) * l
        });
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);

        // Weighted CE: sum(w_y l) / sum(w_y), as torch's cross_entropy(weight=w).
        let w = [0.5, 1.0, 4.0];
        let mut c = Criterion::new(&spec(LossKind::Ce), &COUNTS, Device::Cpu);
        c.set_class_weights(Some(Tensor::from_slice(&w)));
        let num: f64 = (0..4).map(|i| w[Y[i] as usize] * ce(&OUT[i], Y[i] as usize)).sum();
        let den: f64 = (0..4).map(|i| w[Y[i] as usize]).sum();
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), num / den);
    }

    #[test]
    fn ldam_margins_and_loss() {
        let m = ldam_margins(&COUNTS, 0.5);
        close(m[2], 0.5);
        close(m[0], 0.5 * 100f64.powf(-0.25));
        let c = Criterion::new(&spec(LossKind::Ldam), &COUNTS, Device::Cpu);
        let want = mean_over_rows(|_, o, y| {
            let mut z = *o;
            z[y] -= m[y];
            ce(&z.map(|v| 30.0 * v), y)
        });
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
        assert!(c.eval_logits(&out_tensor()).equal(&out_tensor()));
    }

    #[test]
    fn logit_adjusted_and_balanced_softmax() {
        let n: f64 = COUNTS.iter().sum::<usize>() as f64;
        let prior: Vec<f64> = COUNTS.iter().map(|&c| c as f64 / n).collect();
        let s = LossSpec { tau: 1.5, ..spec(LossKind::LogitAdjusted) };
        let c = Criterion::new(&s, &COUNTS, Device::Cpu);
        let want = mean_over_rows(|_, o, y| ce(&[0, 1, 2].map(|j| o[j] + 1.5 * prior[j].ln()), y));
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
        // Prediction uses the raw logits, without the prior.
        assert!(c.eval_logits(&out_tensor()).equal(&out_tensor()));

        let c = Criterion::new(&spec(LossKind::BalancedSoftmax), &COUNTS, Device::Cpu);
        let want = mean_over_rows(|_, o, y| ce(&[0, 1, 2].map(|j| o[j] + prior[j].ln()), y));
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
    }

    #[test]
    fn label_aware_smoothing_shapes() {
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
        let c = Criterion::new(&LossSpec { las_shape: LasShape::Linear, ..spec(LossKind::LabelAwareSmoothing) }, &COUNTS, Device::Cpu);
        let want = mean_over_rows(|_, o, y| {
            let mean_nll = (0..3).map(|j| ce(o, j)).sum::<f64>() / 3.0;
            (1.0 - eps[y]) * ce(o, y) + eps[y] * mean_nll
        });
        close(value(&c.loss(&out_tensor(), &y_tensor(), true)), want);
    }

    /// Fixed noise sample, including entries beyond the [-1, 1] clamp.
    const EPS: [[f64; 3]; 4] = [[0.3, -1.7, 0.2], [-0.1, 0.6, -0.45], [1.2, -0.05, 0.9], [0.0, 0.33, -2.5]];

    fn gcl_reference(s: f64, c: f64, m: f64, gamma: f64, eps: Option<&[[f64; 3]; 4]>) -> f64 {
        let delta = cloud_sizes(CloudSchedule::Log, &COUNTS);
        mean_over_rows(|i, o, y| {
            let z: Vec<f64> = (0..3)
                .map(|j| {
                    let noise = eps.map_or(0.0, |e| e[i][j].clamp(-1.0, 1.0).abs());
                    let margin = if j == y { m } else { 0.0 };
                    s * (o[j] - c * delta[j] * noise - margin)
                })
                .collect();
            let l = ce(&z, y);
            if gamma > 0.0 {
                (1.0 - (-l).exp()).powf(gamma) * l
            } else {
                l
            }
        })
    }

    #[test]
    fn gcl_with_explicit_noise_stage1_and_stage2() {
        let eps = Tensor::from_slice(&EPS.concat()).view([4, 3]);
        let c = Criterion::new(&spec(LossKind::Gcl), &COUNTS, Device::Cpu);
        let got = value(&c.loss_with_noise(&out_tensor(), &y_tensor(), &eps));
        close(got, gcl_reference(30.0, 0.5, 0.0, 0.0, Some(&EPS)));

        let s2 = LossSpec { scale: 20.0, margin: 0.1, focal_gamma: 1.0, ..spec(LossKind::Gcl) };
        let c = Criterion::new(&s2, &COUNTS, Device::Cpu);
        let got = value(&c.loss_with_noise(&out_tensor(), &y_tensor(), &eps));
        close(got, gcl_reference(20.0, 0.5, 0.1, 1.0, Some(&EPS)));
        assert!(c.eval_logits(&out_tensor()).equal(&out_tensor()));
    }

    /// Stage-2 gradient against the released `focal_loss`: `mean((1 - p.detach())^g * ce_i)`.
    /// With the factor `w_i` held constant, `dL/do_ij = s w_i / B (softmax(z_i)_j - 1[j = y_i])`
    /// (GCL's logit `z = s (o - c delta |eps| - m 1_y)` has `dz/do = s`). Written from that formula,
    /// not from our loss; the gradient through `p` that the released code stops would add
    /// `g (1 - p)^(g-1) p ce_i` times the same softmax term and fail this comparison.
    #[test]
    fn gcl_stage2_gradient_matches_released_focal_loss() {
        let (s, c, m, g) = (20.0, 0.5, 0.1, 1.0);
        let delta = cloud_sizes(CloudSchedule::Log, &COUNTS);
        let mut want = [[0.0f64; 3]; 4];
        for i in 0..4 {
            let y = Y[i] as usize;
            let z: Vec<f64> = (0..3)
                .map(|j| s * (OUT[i][j] - c * delta[j] * EPS[i][j].clamp(-1.0, 1.0).abs() - if j == y { m } else { 0.0 }))
                .collect();
            let ce_i = ce(&z, y);
            let w = (1.0 - (-ce_i).exp()).powf(g);
            let zmax = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let denom: f64 = z.iter().map(|v| (v - zmax).exp()).sum();
            for j in 0..3 {
                let softmax = (z[j] - zmax).exp() / denom;
                want[i][j] = s * w / 4.0 * (softmax - if j == y { 1.0 } else { 0.0 });
            }
        }
        let spec = LossSpec { scale: s, margin: m, focal_gamma: g, noise_mul: c, ..spec(LossKind::Gcl) };
        let crit = Criterion::new(&spec, &COUNTS, Device::Cpu);
        let out = out_tensor().set_requires_grad(true);
        let eps = Tensor::from_slice(&EPS.concat()).view([4, 3]);
        crit.loss_with_noise(&out, &y_tensor(), &eps).backward();
        let got: Vec<f64> = Vec::try_from(out.grad().view([-1])).unwrap();
        for (k, (a, b)) in got.iter().zip(want.concat()).enumerate() {
            assert!((a - b).abs() < 1e-10, "d loss / d o[{}][{}]: {a} vs released focal_loss {b}", k / 3, k % 3);
        }
    }

    #[test]
    fn gcl_no_noise_at_eval_fresh_noise_in_training() {
        let c = Criterion::new(&spec(LossKind::Gcl), &COUNTS, Device::Cpu);
        let eval1 = value(&c.loss(&out_tensor(), &y_tensor(), false));
        let eval2 = value(&c.loss(&out_tensor(), &y_tensor(), false));
        close(eval1, gcl_reference(30.0, 0.5, 0.0, 0.0, None));
        assert_eq!(eval1, eval2);
        tch::manual_seed(7);
        let t1 = value(&c.loss(&out_tensor(), &y_tensor(), true));
        let t2 = value(&c.loss(&out_tensor(), &y_tensor(), true));
        assert!(t1 != t2 && t1 != eval1, "training draws fresh noise: {t1} {t2} {eval1}");
    }

    #[test]
    fn cloud_noise_statistics() {
        tch::manual_seed(11);
        let n = 1_000_000;
        let e = cloud_noise(&[n], 1.0 / 3.0, Kind::Double, Device::Cpu);
        assert!(value(&e.min()) >= 0.0 && value(&e.max()) <= 1.0);
        // E|clamp(X, -1, 1)| for X ~ N(0, s^2), s = 1/3:
        // s sqrt(2/pi) (1 - exp(-1/(2 s^2))) + P(|X| > 1) = 0.265706...
        let s: f64 = 1.0 / 3.0;
        let tail = 0.002699796063260; // P(|Z| > 3)
        let expected = s * (2.0 / std::f64::consts::PI).sqrt() * (1.0 - (-4.5f64).exp()) + tail;
        let mean = value(&e.mean(None::<Kind>));
        assert!((mean - expected).abs() < 1e-3, "mean {mean} vs {expected}");
        // The clamp: about 0.27% of the draws land exactly on 1.
        let at_one = value(&e.eq(1.0).to_kind(Kind::Double).mean(None::<Kind>));
        assert!((at_one - tail).abs() < 3e-4, "{at_one}");
    }

    #[test]
    fn cloud_schedules_known_values() {
        let close_all = |a: Vec<f64>, b: &[f64]| {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
            }
        };
        close_all(cloud_sizes(CloudSchedule::Log, &[100, 10, 1]), &[0.0, 0.5, 1.0]);
        close_all(cloud_sizes(CloudSchedule::PowThird, &[1000, 125, 8, 1]), &[0.0, 5.0 / 9.0, 8.0 / 9.0, 1.0]);
        close_all(cloud_sizes(CloudSchedule::PowQuarter, &[10000, 625, 16, 1]), &[0.0, 5.0 / 9.0, 8.0 / 9.0, 1.0]);
        // cos(pi/2) = 0, cos(pi/4), cos(pi/6); divided by cos(pi/6).
        close_all(cloud_sizes(CloudSchedule::Cos, &[6, 3, 2]), &[0.0, (2.0f64 / 3.0).sqrt(), 1.0]);
        close_all(cloud_sizes(CloudSchedule::Log, &[7, 7]), &[0.0, 0.0]);
    }

    #[test]
    fn mixup_is_the_convex_combination() {
        let c = Criterion::new(&spec(LossKind::Ce), &COUNTS, Device::Cpu);
        let yb = Tensor::from_slice(&[1i64, 1, 0, 0]);
        let got = value(&c.mixup_loss(&out_tensor(), &y_tensor(), &yb, 0.3, true));
        let yb_v = [1usize, 1, 0, 0];
        let want =
            0.3 * mean_over_rows(|_, o, y| ce(o, y)) + 0.7 * (0..4).map(|i| ce(&OUT[i], yb_v[i])).sum::<f64>() / 4.0;
        close(got, want);
    }
}

//! Gaussian clouded logit (this paper, notes §1): `z_j = s (o_j - c delta_j |eps_ij| - m 1_{j=y})`,
//! `eps_ij ~ N(0, noise_std^2)` clamped to [-1, 1], drawn afresh per forward pass in training
//! only; `delta` = [`cloud_sizes`]. Stage 2 of the released code wraps it in the focal factor
//! (gamma 1) with a margin `m = 0.1` and `s = 20`. Prediction uses the plain cosine.
use super::{class_constant, cross_entropy, row, Classes, Loss, Noise, Objective};
use crate::data::class_stats::{cloud_sizes, CloudSchedule};
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gcl {
    /// Logit scale `s` (released: 30 in stage 1, 20 in stage 2).
    pub scale: f64,
    /// Noise multiplier `c` (released code 0.5; the paper's text implies 1.0).
    pub noise_mul: f64,
    /// Standard deviation of the Gaussian noise before clamping to [-1, 1].
    pub noise_std: f64,
    /// Additive margin subtracted from the target class's cosine (stage 2: 0.1).
    pub margin: f64,
    pub cloud: CloudSchedule,
    /// Exponent of the detached focal factor (stage 2: 1; 0: plain cross-entropy).
    pub focal_gamma: f64,
}

impl Default for Gcl {
    fn default() -> Self {
        Gcl { scale: 30.0, noise_mul: 0.5, noise_std: 1.0 / 3.0, margin: 0.0, cloud: CloudSchedule::Log, focal_gamma: 0.0 }
    }
}

impl Loss for Gcl {
    fn build(&self, classes: &Classes) -> Box<dyn Objective> {
        Box::new(Clouded { spec: self.clone(), cloud: class_constant(&cloud_sizes(self.cloud, classes.counts), classes.device) })
    }
}

#[derive(Debug)]
struct Clouded {
    spec: Gcl,
    /// `[C]` cloud sizes `delta_j` in [0, 1].
    cloud: Tensor,
}

impl Objective for Clouded {
    fn per_sample(&self, out: &Tensor, targets: &Tensor, noise: Noise) -> Tensor {
        let g = &self.spec;
        let drawn;
        let eps = match noise {
            Noise::Off => None,
            Noise::Draw => {
                drawn = Tensor::randn(out.size(), (out.kind(), out.device())) * g.noise_std;
                Some(&drawn)
            }
            Noise::Given(eps) => Some(eps),
        };
        // Out of place: an in-place `-=` would overwrite `out`, which autograd keeps.
        let cos = match eps {
            Some(eps) => out - row(&self.cloud, out) * eps.clamp(-1.0, 1.0).abs() * g.noise_mul,
            None => out.shallow_clone(),
        };
        let one_hot = targets.one_hot(out.size()[1]).to_kind(out.kind());
        cross_entropy(&((cos - one_hot * g.margin) * g.scale), targets)
    }

    fn eval_logits(&self, out: &Tensor) -> Tensor {
        out.shallow_clone()
    }

    fn focal_gamma(&self) -> f64 {
        self.spec.focal_gamma
    }
}

#[cfg(test)]
mod tests {
    //! Against an independent f64 evaluation of the formula, row by row.
    use super::super::testing::*;
    use super::*;
    use crate::models::Head;
    use tch::{Device, Kind};

    /// Fixed noise sample, including entries beyond the [-1, 1] clamp.
    const EPS: [[f64; 3]; 4] = [[0.3, -1.7, 0.2], [-0.1, 0.6, -0.45], [1.2, -0.05, 0.9], [0.0, 0.33, -2.5]];

    fn reference(s: f64, c: f64, m: f64, gamma: f64, eps: Option<&[[f64; 3]; 4]>) -> f64 {
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

    fn eps_tensor() -> Tensor {
        Tensor::from_slice(&EPS.concat()).view([4, 3])
    }

    #[test]
    fn explicit_noise_stage1_and_stage2() {
        let c = criterion(Gcl::default(), Head::Normed);
        let got = value(&c.loss_with_noise(&out_tensor(), &y_tensor(), &eps_tensor()));
        close(got, reference(30.0, 0.5, 0.0, 0.0, Some(&EPS)));

        let c = criterion(Gcl { scale: 20.0, margin: 0.1, focal_gamma: 1.0, ..Gcl::default() }, Head::Normed);
        let got = value(&c.loss_with_noise(&out_tensor(), &y_tensor(), &eps_tensor()));
        close(got, reference(20.0, 0.5, 0.1, 1.0, Some(&EPS)));
        assert!(c.eval_logits(&out_tensor()).equal(&out_tensor()));
    }

    /// Stage-2 gradient against the released `focal_loss`: `mean((1 - p.detach())^g * ce_i)`.
    /// With the factor `w_i` held constant, `dL/do_ij = s w_i / B (softmax(z_i)_j - 1[j = y_i])`
    /// (GCL's logit `z = s (o - c delta |eps| - m 1_y)` has `dz/do = s`). Written from that formula,
    /// not from our loss; the gradient through `p` that the released code stops would add
    /// `g (1 - p)^(g-1) p ce_i` times the same softmax term and fail this comparison.
    #[test]
    fn stage2_gradient_matches_released_focal_loss() {
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
        let crit = criterion(Gcl { scale: s, margin: m, focal_gamma: g, noise_mul: c, ..Gcl::default() }, Head::Normed);
        let out = out_tensor().set_requires_grad(true);
        crit.loss_with_noise(&out, &y_tensor(), &eps_tensor()).backward();
        let got: Vec<f64> = Vec::try_from(out.grad().view([-1])).unwrap();
        for (k, (a, b)) in got.iter().zip(want.concat()).enumerate() {
            assert!((a - b).abs() < 1e-10, "d loss / d o[{}][{}]: {a} vs released focal_loss {b}", k / 3, k % 3);
        }
    }

    #[test]
    fn no_noise_at_eval_fresh_noise_in_training() {
        let c = criterion(Gcl::default(), Head::Normed);
        let eval1 = value(&c.loss(&out_tensor(), &y_tensor(), false));
        let eval2 = value(&c.loss(&out_tensor(), &y_tensor(), false));
        close(eval1, reference(30.0, 0.5, 0.0, 0.0, None));
        assert_eq!(eval1, eval2);
        tch::manual_seed(7);
        let t1 = value(&c.loss(&out_tensor(), &y_tensor(), true));
        let t2 = value(&c.loss(&out_tensor(), &y_tensor(), true));
        assert!(t1 != t2 && t1 != eval1, "training draws fresh noise: {t1} {t2} {eval1}");
    }

    /// The noise training draws (`Noise::Draw`), read back from the loss: with two classes of
    /// cloud sizes 0 and 1, outputs 0, `s = c = 1`, no margin and target 0, each sample's loss is
    /// `ln(1 + exp(-a))` with `a = |clamp(eps, -1, 1)|`, so `a = -ln(exp(loss) - 1)`.
    #[test]
    fn drawn_noise_statistics() {
        let gcl = Gcl { scale: 1.0, noise_mul: 1.0, ..Gcl::default() };
        let objective = gcl.build(&Classes { counts: &[100, 1], head: Head::Normed, device: Device::Cpu });
        tch::manual_seed(11);
        let n = 1_000_000;
        let out = Tensor::zeros([n, 2], (Kind::Double, Device::Cpu));
        let loss = objective.per_sample(&out, &Tensor::zeros([n], (Kind::Int64, Device::Cpu)), Noise::Draw);
        let e = -(loss.exp() - 1.0).log();
        assert!(value(&e.min()) >= -1e-9 && value(&e.max()) <= 1.0 + 1e-9);
        // E|clamp(X, -1, 1)| for X ~ N(0, s^2), s = 1/3:
        // s sqrt(2/pi) (1 - exp(-1/(2 s^2))) + P(|X| > 1) = 0.265706...
        let s: f64 = 1.0 / 3.0;
        let tail = 0.002699796063260; // P(|Z| > 3)
        let expected = s * (2.0 / std::f64::consts::PI).sqrt() * (1.0 - (-4.5f64).exp()) + tail;
        let mean = value(&e.mean(None::<Kind>));
        assert!((mean - expected).abs() < 1e-3, "mean {mean} vs {expected}");
        // The clamp: about 0.27% of the draws land on 1 (exactly, up to the read-back's rounding).
        let at_one = value(&e.ge(1.0 - 1e-9).to_kind(Kind::Double).mean(None::<Kind>));
        assert!((at_one - tail).abs() < 3e-4, "{at_one}");
    }
}

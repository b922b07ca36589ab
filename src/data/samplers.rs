//! Which training images an epoch visits, for both stages: the manifest's `sampler` table
//! ([`SamplerSpec`], tagged by `kind`; each sampler owns its parameters).
//!
//! - IB (instance-balanced): every image once, shuffled.
//! - CB (class-balanced): each image of class j has weight 1/n_j.
//! - EN (effective number, Cui et al. 2019): weight `(1-beta)/(1-beta^n_j)`.
//! - CBEN (this paper, eq. 13-14): like EN with a per-class
//!   `beta_j = b * (delta_j - delta_min)/(delta_max - delta_min) + a`, where
//!   `delta_j = log n_max - log n_j` normalised by its maximum.
//! - Class-aware: a class uniformly at random, then an image of it uniformly.
//!
//! The weighted samplers draw N (= dataset size) images with replacement per epoch. Because all
//! images of a class share one weight, a draw is "pick class j with probability
//! `n_j w_j / sum_k n_k w_k`, then a uniform image of j", which is what [`epoch_indices`] does.
//!
//! Adding a sampler: its settings struct here, its arm in [`per_image_weights`] and one line in
//! the `tagged_settings!` invocation below (CONTRIBUTING.md).
pub use super::class_stats::drw_weights;
use super::class_stats::{cloud_sizes, effective_weight, CloudSchedule};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

crate::registry::tagged_settings! {
    /// The sampler of one stage (`sampler = { kind = "cben", a = 0.999 }`). Each variant owns
    /// its parameters (its struct denies any other), so only the chosen sampler's parameters
    /// enter a run's key.
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub enum SamplerSpec by "kind", kind, kinds {
        Ib(Ib),
        Cb(Cb),
        En(En),
        Cben(Cben),
        ClassAware(ClassAware),
        Reversed(Reversed),
    }
}

impl Default for SamplerSpec {
    fn default() -> Self {
        SamplerSpec::Ib(Ib {})
    }
}

/// Instance-balanced: every image once per epoch, shuffled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ib {}

/// Class-balanced: weight 1/n_j per sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cb {}

/// Effective number with one beta (Cui et al. 2019).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct En {
    pub beta: f64,
}

impl Default for En {
    fn default() -> Self {
        En { beta: 0.9999 }
    }
}

/// Class-based effective number (this paper, eq. 13-14):
/// `beta_j = b * (delta_j - delta_min)/(delta_max - delta_min) + a`.
/// Released code: a = 0.9999, b = 1e-5; paper: a = 0.999, b = 0.0009.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cben {
    pub a: f64,
    pub b: f64,
}

impl Default for Cben {
    fn default() -> Self {
        Cben { a: 0.9999, b: 1e-5 }
    }
}

/// Class-aware: pick a class uniformly, then an image of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassAware {}

/// BBN's reversed sampler: class probability proportional to 1/n_j (the re-balancing branch's
/// input; set automatically for `model.bbn`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reversed {}

/// CBEN's per-class beta (paper eq. 14). Its `delta_j` is GCL's log cloud size (the released
/// `sampler.py` uses the log schedule whatever the loss's), computed by the same function; an
/// empty class counts as one image.
pub fn cben_betas(counts: &[usize], a: f64, b: f64) -> Vec<f64> {
    let at_least_one: Vec<usize> = counts.iter().map(|&n| n.max(1)).collect();
    let delta = cloud_sizes(CloudSchedule::Log, &at_least_one);
    let dmin = delta.iter().cloned().fold(f64::INFINITY, f64::min);
    let dmax = delta.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    delta.iter().map(|d| if dmax > dmin { b * (d - dmin) / (dmax - dmin) + a } else { a }).collect()
}

/// The weight of one image of each class under `spec` (IB: 1 each).
pub fn per_image_weights(spec: &SamplerSpec, counts: &[usize]) -> Vec<f64> {
    match spec {
        SamplerSpec::Ib(_) => counts.iter().map(|_| 1.0).collect(),
        SamplerSpec::Cb(_) | SamplerSpec::ClassAware(_) => {
            counts.iter().map(|&n| if n == 0 { 0.0 } else { 1.0 / n as f64 }).collect()
        }
        SamplerSpec::En(e) => counts.iter().map(|&n| effective_weight(e.beta, n)).collect(),
        SamplerSpec::Reversed(_) => {
            counts.iter().map(|&n| if n == 0 { 0.0 } else { 1.0 / (n as f64 * n as f64) }).collect()
        }
        SamplerSpec::Cben(c) => {
            cben_betas(counts, c.a, c.b).iter().zip(counts).map(|(&beta, &n)| effective_weight(beta, n)).collect()
        }
    }
}

/// Probability mass of each class per draw (sums to 1).
pub fn class_probabilities(spec: &SamplerSpec, counts: &[usize]) -> Vec<f64> {
    let mass: Vec<f64> = per_image_weights(spec, counts).iter().zip(counts).map(|(w, &n)| w * n as f64).collect();
    let total: f64 = mass.iter().sum();
    mass.iter().map(|m| m / total).collect()
}

/// The image indices one epoch visits, deterministic for a seed. IB: a permutation of
/// `0..labels.len()`; the others: `labels.len()` draws with replacement.
pub fn epoch_indices(spec: &SamplerSpec, labels: &[i64], counts: &[usize], seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if matches!(spec, SamplerSpec::Ib(_)) {
        let mut idx: Vec<usize> = (0..labels.len()).collect();
        idx.shuffle(&mut rng);
        return idx;
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); counts.len()];
    for (i, &l) in labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    // Sample classes by inverse CDF of their probabilities, skipping classes with no images.
    let probs: Vec<f64> = class_probabilities(spec, counts)
        .iter()
        .zip(&members)
        .map(|(p, m)| if m.is_empty() { 0.0 } else { *p })
        .collect();
    let mut cdf = Vec::with_capacity(probs.len());
    let mut acc = 0.0;
    for p in &probs {
        acc += p;
        cdf.push(acc);
    }
    let last = probs.iter().rposition(|&p| p > 0.0).expect("at least one class has images");
    (0..labels.len())
        .map(|_| {
            let u = rng.gen::<f64>() * acc;
            let c = cdf.partition_point(|&x| x <= u).min(last);
            let m = &members[c];
            m[rng.gen_range(0..m.len())]
        })
        .collect()
}

//! Which training images an epoch visits, for both stages (`config::SamplerSpec`).
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
use crate::config::{SamplerKind, SamplerSpec};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Effective-number weight `(1-beta)/(1-beta^n)` of one image of a class with n images
/// (0 for an empty class, which is never drawn).
fn effective_weight(beta: f64, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        (1.0 - beta) / (1.0 - crate::portable::pow(beta, n as f64))
    }
}

/// CBEN's per-class beta (paper eq. 14). Its `delta_j` is GCL's log cloud size (the released
/// `sampler.py` uses the log schedule whatever the loss's), computed by the same function; an
/// empty class counts as one image.
pub fn cben_betas(counts: &[usize], a: f64, b: f64) -> Vec<f64> {
    let at_least_one: Vec<usize> = counts.iter().map(|&n| n.max(1)).collect();
    let delta = crate::losses::cloud_sizes(crate::losses::CloudSchedule::Log, &at_least_one);
    let dmin = delta.iter().cloned().fold(f64::INFINITY, f64::min);
    let dmax = delta.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    delta.iter().map(|d| if dmax > dmin { b * (d - dmin) / (dmax - dmin) + a } else { a }).collect()
}

/// The weight of one image of each class under `spec` (IB: 1 each).
pub fn per_image_weights(spec: &SamplerSpec, counts: &[usize]) -> Vec<f64> {
    match spec.kind {
        SamplerKind::Ib => counts.iter().map(|_| 1.0).collect(),
        SamplerKind::Cb | SamplerKind::ClassAware => counts.iter().map(|&n| if n == 0 { 0.0 } else { 1.0 / n as f64 }).collect(),
        SamplerKind::En => counts.iter().map(|&n| effective_weight(spec.beta, n)).collect(),
        SamplerKind::Reversed => counts.iter().map(|&n| if n == 0 { 0.0 } else { 1.0 / (n as f64 * n as f64) }).collect(),
        SamplerKind::Cben => cben_betas(counts, spec.a, spec.b).iter().zip(counts).map(|(&beta, &n)| effective_weight(beta, n)).collect(),
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
    if spec.kind == SamplerKind::Ib {
        let mut idx: Vec<usize> = (0..labels.len()).collect();
        idx.shuffle(&mut rng);
        return idx;
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); counts.len()];
    for (i, &l) in labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    // Sample classes by inverse CDF of their probabilities, skipping classes with no images.
    let probs: Vec<f64> = class_probabilities(spec, counts).iter().zip(&members).map(|(p, m)| if m.is_empty() { 0.0 } else { *p }).collect();
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

/// LDAM-DRW's deferred re-weighting: per-class weights (1-beta)/(1-beta^n_j), normalised so
/// they sum to the number of classes (Cao et al. 2019).
pub fn drw_weights(counts: &[usize], beta: f64) -> Vec<f64> {
    let w: Vec<f64> = counts.iter().map(|&n| effective_weight(beta, n)).collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total * counts.len() as f64).collect()
}

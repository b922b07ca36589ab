//! A built-in, deterministic, CIFAR-shaped long-tailed dataset (no files): for the quick start
//! and for tests.
//!
//! Each class has a 3x32x32 template made of
//! - a mixture of a few *shared* smooth colour textures (every class draws on the same pool,
//!   so classes overlap in appearance and the tail is confusable with the head), and
//! - a class-specific oriented grating (orientation and frequency vary between classes by
//!   small steps, so neighbouring classes look alike).
//!
//! Each image takes its class template with a random cyclic shift (up to 4 pixels), a random
//! signal contrast, a random admixture of another class's template, per-channel colour jitter
//! (gain and offset) and strong Gaussian pixel noise. A small network needs many images per
//! class to average the noise away, which is exactly what tail classes lack.
//!
//! Train classes keep `int(max_per_class * (1/gamma)^(i/(C-1)))` images (the exp profile of
//! `longtail`, or step); the test set is balanced (`test_per_class`). `subset_seed` seeds the
//! generator. Every image has its own ChaCha stream derived from (seed, split, class, index),
//! so generation is parallel and the result is byte-identical for identical settings on every
//! machine: sines come from `portable` (IEEE basic operations only, never the system libm,
//! whose last bits vary with the CPU), and the pixel noise is a sum of twelve uniforms (an
//! Irwin-Hall approximation of a Gaussian) instead of a sampler that calls `exp`/`ln`. A test
//! pins the bytes of a set by their SHA-256.
use super::{cifar::PIXELS, longtail, ImageSet, LtData};
use crate::data::spec::DatasetSpec;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Bumped whenever the generator's output changes (part of the data identity).
pub const GENERATOR_VERSION: &str = "synthetic/v3";

/// Number of shared smooth textures all classes mix from.
const SHARED_TEXTURES: usize = 4;
/// Pixel noise standard deviation, in units of the [0, 1] intensity range.
const NOISE_STD: f32 = 0.2;
/// Largest cyclic shift of an image, in pixels.
const MAX_SHIFT: i64 = 4;

/// The identity string of a synthetic spec (generator version and all its parameters).
pub fn identity(spec: &DatasetSpec) -> String {
    format!(
        "{GENERATOR_VERSION} classes={} max_per_class={} imbalance={} profile={} test_per_class={} seed={}",
        spec.classes,
        spec.max_per_class,
        spec.imbalance,
        super::profile_name(spec.profile),
        spec.test_per_class,
        spec.subset_seed
    )
}

/// Train images per class.
pub fn train_counts(spec: &DatasetSpec) -> Result<Vec<usize>> {
    if spec.classes < 2 || spec.max_per_class == 0 || spec.test_per_class == 0 {
        bail!(
            "synthetic dataset needs classes >= 2, max_per_class >= 1 and test_per_class >= 1 (got {}, {}, {})",
            spec.classes,
            spec.max_per_class,
            spec.test_per_class
        );
    }
    let counts = longtail::class_counts(spec.profile, spec.max_per_class, spec.classes, spec.imbalance)?;
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        bail!(
            "synthetic class {c} would get no training image (max_per_class {} is too small for imbalance {})",
            spec.max_per_class,
            spec.imbalance
        );
    }
    Ok(counts)
}

/// Generate the dataset a synthetic spec describes.
pub fn generate(spec: &DatasetSpec) -> Result<LtData> {
    let counts = train_counts(spec)?;
    let templates = class_templates(spec.classes, spec.subset_seed);
    let train = render_split(&templates, &counts, spec.subset_seed, 0);
    let test = render_split(&templates, &vec![spec.test_per_class; spec.classes], spec.subset_seed, 1);
    let (mean, std) = channel_stats(&train.0);
    Ok(LtData {
        train: ImageSet::from_pixels(&train.0, train.1),
        test: ImageSet::from_pixels(&test.0, test.1),
        num_classes: spec.classes,
        class_counts: counts,
        mean,
        std,
        identity: identity(spec),
    })
}

/// A deterministic RNG for one purpose, derived from the seed and up to three coordinates.
fn rng_for(seed: u64, a: u64, b: u64, c: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ c.wrapping_add(1));
    r
}

/// A smooth random colour field: a sum of a few low-frequency plane waves per channel.
fn smooth_texture(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut t = vec![0f32; PIXELS];
    for ch in 0..3 {
        for _ in 0..5 {
            let (fx, fy) = (rng.gen_range(-3i32..=3) as f32, rng.gen_range(-3i32..=3) as f32);
            let phase: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
            let amp: f32 = rng.gen_range(0.3..1.0);
            for y in 0..32 {
                for x in 0..32 {
                    let arg = std::f32::consts::TAU * (fx * x as f32 + fy * y as f32) / 32.0 + phase;
                    t[ch * 1024 + y * 32 + x] += amp * sin(arg);
                }
            }
        }
    }
    let max = t.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    t.iter_mut().for_each(|v| *v /= max);
    t
}

/// Class templates in [-1, 1]-ish units (added to mid-grey at render time).
fn class_templates(classes: usize, seed: u64) -> Vec<Vec<f32>> {
    let shared: Vec<Vec<f32>> =
        (0..SHARED_TEXTURES).map(|k| smooth_texture(&mut rng_for(seed, 1, k as u64, 0))).collect();
    (0..classes)
        .map(|c| {
            let mut rng = rng_for(seed, 2, c as u64, 0);
            let weights: Vec<f32> = (0..SHARED_TEXTURES).map(|_| rng.gen_range(0.0f32..1.0)).map(|w| w * w).collect();
            let wsum: f32 = weights.iter().sum::<f32>().max(1e-6);
            // Neighbouring classes get neighbouring orientations and frequencies.
            let theta = std::f32::consts::PI * (c as f32 + rng.gen_range(-0.2..0.2)) / classes as f32;
            let freq = 2.0 + 3.0 * ((c * 3) % classes) as f32 / classes as f32;
            let tint: [f32; 3] = [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)];
            let mut t = vec![0f32; PIXELS];
            for (ch, tint) in tint.iter().enumerate() {
                for y in 0..32 {
                    for x in 0..32 {
                        let i = ch * 1024 + y * 32 + x;
                        let tex: f32 = shared.iter().zip(&weights).map(|(s, w)| s[i] * w).sum::<f32>() / wsum;
                        let u = (x as f32 * cos(theta) + y as f32 * sin(theta)) / 32.0;
                        let grating = sin(std::f32::consts::TAU * freq * u);
                        t[i] = 0.5 * tex + 0.35 * grating * (0.6 + 0.4 * tint);
                    }
                }
            }
            t
        })
        .collect()
}

/// Render `counts[c]` images of each class c, class by class: `(CHW pixels, labels)`.
fn render_split(templates: &[Vec<f32>], counts: &[usize], seed: u64, split: u64) -> (Vec<u8>, Vec<i64>) {
    let jobs: Vec<(usize, usize)> = counts.iter().enumerate().flat_map(|(c, &n)| (0..n).map(move |k| (c, k))).collect();
    let mut pixels = vec![0u8; jobs.len() * PIXELS];
    pixels.par_chunks_mut(PIXELS).zip(jobs.par_iter()).for_each(|(out, &(c, k))| {
        let mut rng = rng_for(seed, 3 + split, c as u64, k as u64);
        render_image(templates, c, &mut rng, out);
    });
    (pixels, jobs.iter().map(|&(c, _)| c as i64).collect())
}

fn render_image(templates: &[Vec<f32>], class: usize, rng: &mut ChaCha8Rng, out: &mut [u8]) {
    let (dx, dy) = (rng.gen_range(-MAX_SHIFT..=MAX_SHIFT), rng.gen_range(-MAX_SHIFT..=MAX_SHIFT));
    let contrast: f32 = rng.gen_range(0.6..1.0);
    let other = rng.gen_range(0..templates.len());
    let mix: f32 = rng.gen_range(0.0..0.3);
    let gain: [f32; 3] = [rng.gen_range(0.7..1.3), rng.gen_range(0.7..1.3), rng.gen_range(0.7..1.3)];
    let offset: [f32; 3] = [rng.gen_range(-0.12..0.12), rng.gen_range(-0.12..0.12), rng.gen_range(-0.12..0.12)];
    let (own, alien) = (&templates[class], &templates[other]);
    for ch in 0..3 {
        for y in 0..32i64 {
            for x in 0..32i64 {
                let src = ch * 1024 + (((y + dy).rem_euclid(32)) * 32 + (x + dx).rem_euclid(32)) as usize;
                let i = ch * 1024 + (y * 32 + x) as usize;
                let signal = contrast * ((1.0 - mix) * own[src] + mix * alien[i]);
                let v = 0.5 + gain[ch] * 0.4 * signal + offset[ch] + NOISE_STD * unit_noise(rng);
                out[i] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
}

/// `sin` of an f32 through the portable f64 sine (same bits on every machine).
fn sin(x: f32) -> f32 {
    crate::portable::sin(x as f64) as f32
}

fn cos(x: f32) -> f32 {
    crate::portable::cos(x as f64) as f32
}

/// Zero-mean, unit-variance noise: the sum of twelve uniforms on [0, 1) minus 6 (Irwin-Hall),
/// exact float arithmetic only.
fn unit_noise(rng: &mut ChaCha8Rng) -> f32 {
    (0..12).map(|_| rng.gen::<f32>()).sum::<f32>() - 6.0
}

/// Per-channel mean and standard deviation of CHW uint8 images, in [0, 1] units.
fn channel_stats(pixels: &[u8]) -> ([f64; 3], [f64; 3]) {
    let mut sum = [0f64; 3];
    let mut sq = [0f64; 3];
    for img in pixels.chunks_exact(PIXELS) {
        for ch in 0..3 {
            for &p in &img[ch * 1024..(ch + 1) * 1024] {
                let v = p as f64 / 255.0;
                sum[ch] += v;
                sq[ch] += v * v;
            }
        }
    }
    let n = (pixels.len() / 3).max(1) as f64;
    let mean = [sum[0] / n, sum[1] / n, sum[2] / n];
    let std = [0, 1, 2].map(|c| (sq[c] / n - mean[c] * mean[c]).max(1e-12).sqrt());
    (mean, std)
}

//! JPEG images of the large-scale sets: decoding and the standard ImageNet-style transforms.
//!
//! Training (Kang et al. 2020, gcl-notes.md §5): random-resized-crop 224 (scale (0.08, 1),
//! ratio (3/4, 4/3), torchvision's sampling with 10 tries and a centre-crop fallback),
//! horizontal flip with probability 1/2, colour jitter (brightness, contrast, saturation 0.4,
//! in a random order as torchvision's `ColorJitter`). Evaluation: resize the shorter side to
//! 256, centre crop 224. Both end with ImageNet mean/std normalisation, channel-first.
//!
//! Resampling is Pillow's antialiased bilinear filter (what torchvision applies to PIL images):
//! a triangle kernel widened by the downscale factor, separable, horizontal pass first. We keep
//! intermediate values in f32 where Pillow rounds to u8 after each pass and after each jitter
//! step. Against torchvision 0.26 + Pillow 13 on the evaluation transform of 16 generated
//! JPEGs the largest difference was 2/255 (mean 0.3/255), JPEG decoder differences included.
//!
//! [`loader`] runs these transforms in parallel and batches the results into tensors.
use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::Rng;

pub mod loader;

/// Side of the square network input.
pub const CROP: usize = 224;
/// Shorter side after the evaluation resize.
pub const EVAL_RESIZE: usize = 256;
/// ImageNet channel statistics (torchvision's constants).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Colour-jitter strength for brightness, contrast and saturation (Kang et al. 2020).
pub const JITTER: f32 = 0.4;
/// Floats in one transformed sample, `3 * 224 * 224`.
pub const SAMPLE_LEN: usize = 3 * CROP * CROP;

/// A decoded image, 8-bit RGB, interleaved, row-major.
#[derive(Clone, Debug)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Decode a JPEG (or any format the `image` crate is built with, e.g. PNG) to RGB.
/// Grey and CMYK JPEGs are converted to RGB.
pub fn decode(bytes: &[u8]) -> Result<Rgb8> {
    let img = image::load_from_memory(bytes).context("cannot decode image")?.into_rgb8();
    let (width, height) = (img.width() as usize, img.height() as usize);
    Ok(Rgb8 { width, height, data: img.into_raw() })
}

/// A crop rectangle in pixels of the source image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and ratio (3/4, 4/3):
/// up to 10 draws of (area fraction, log-uniform aspect ratio); the first that fits is placed
/// uniformly; otherwise the largest centred crop whose ratio is clamped to the range.
pub fn random_resized_crop_box(height: usize, width: usize, rng: &mut impl Rng) -> CropBox {
    const SCALE: (f64, f64) = (0.08, 1.0);
    const RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);
    let area = (height * width) as f64;
    // `portable` rather than libm: the crop boxes are then the same on every machine.
    let (log_lo, log_hi) = (crate::portable::ln(RATIO.0), crate::portable::ln(RATIO.1));
    for _ in 0..10 {
        let target_area = area * rng.gen_range(SCALE.0..SCALE.1);
        let aspect = crate::portable::exp(rng.gen_range(log_lo..log_hi));
        let w = (target_area * aspect).sqrt().round() as usize;
        let h = (target_area / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.gen_range(0..=height - h);
            let left = rng.gen_range(0..=width - w);
            return CropBox { top, left, height: h, width: w };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < RATIO.0 {
        (width, round_half_even(width as f64 / RATIO.0))
    } else if in_ratio > RATIO.1 {
        (round_half_even(height as f64 * RATIO.1), height)
    } else {
        (width, height)
    };
    CropBox { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w }
}

/// Python's `round` (ties to even), which torchvision's crop arithmetic uses.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - x.signum() } else { r };
    r as usize
}

/// Size after torchvision's `Resize(256)`: shorter side 256, longer side scaled and truncated.
pub fn eval_resized_size(height: usize, width: usize) -> (usize, usize) {
    let (short, long) = (height.min(width), height.max(width));
    let new_long = (EVAL_RESIZE as f64 * long as f64 / short as f64) as usize;
    if height <= width {
        (EVAL_RESIZE, new_long)
    } else {
        (new_long, EVAL_RESIZE)
    }
}

/// Pillow's resampling weights along one axis: for output pixels `out_start..out_start+out_len`
/// of a resize of `in_size` source pixels to `out_size`, the first source pixel and the
/// normalised triangle-filter weights (stride `ksize`).
struct AxisWeights {
    first: Vec<usize>,
    count: Vec<usize>,
    ksize: usize,
    weights: Vec<f32>,
}

fn axis_weights(in_size: usize, out_size: usize, out_start: usize, out_len: usize) -> AxisWeights {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0, widened when downscaling (antialias)
    let ksize = support.ceil() as usize * 2 + 1;
    let mut first = Vec::with_capacity(out_len);
    let mut count = Vec::with_capacity(out_len);
    let mut weights = vec![0f32; out_len * ksize];
    for (o, xx) in (out_start..out_start + out_len).enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        // Pillow truncates toward zero before clamping.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let k = &mut weights[o * ksize..(o + 1) * ksize];
        let n = (xmax - xmin).min(ksize);
        let mut total = 0.0f64;
        for (x, kw) in k.iter_mut().enumerate().take(n) {
            let d = ((x + xmin) as f64 - center + 0.5) / filterscale;
            let w = (1.0 - d.abs()).max(0.0);
            *kw = w as f32;
            total += w;
        }
        if total != 0.0 {
            k[..n].iter_mut().for_each(|w| *w = (*w as f64 / total) as f32);
        }
        first.push(xmin);
        count.push(n);
    }
    AxisWeights { first, count, ksize, weights }
}

/// Resample the `crop` of `img` to `out_w x out_h` and write the window
/// `[win_top, win_top+224) x [win_left, win_left+224)` of the result into `out` as planar
/// RGB in [0, 1] (`out.len() == SAMPLE_LEN`), mirrored left-right when `flip`.
fn resample_into(
    img: &Rgb8,
    crop: CropBox,
    (out_h, out_w): (usize, usize),
    (win_top, win_left): (usize, usize),
    flip: bool,
    out: &mut [f32],
) {
    let wx = axis_weights(crop.width, out_w, win_left, CROP);
    let wy = axis_weights(crop.height, out_h, win_top, CROP);
    // Only the source rows that some output row reads.
    let row_lo = wy.first[0];
    let row_hi = (0..CROP).map(|o| wy.first[o] + wy.count[o]).max().unwrap_or(row_lo);
    // Horizontal pass: rows row_lo..row_hi of the crop -> [rows][224][3].
    let stride = img.width * 3;
    let mut horiz = vec![0f32; (row_hi - row_lo) * CROP * 3];
    for (r, hrow) in horiz.chunks_exact_mut(CROP * 3).enumerate() {
        let y = crop.top + row_lo + r;
        let src = &img.data[y * stride + crop.left * 3..y * stride + (crop.left + crop.width) * 3];
        for o in 0..CROP {
            let k = &wx.weights[o * wx.ksize..o * wx.ksize + wx.count[o]];
            let base = wx.first[o] * 3;
            let (mut r0, mut g0, mut b0) = (0f32, 0f32, 0f32);
            for (i, &w) in k.iter().enumerate() {
                let p = base + i * 3;
                r0 += w * src[p] as f32;
                g0 += w * src[p + 1] as f32;
                b0 += w * src[p + 2] as f32;
            }
            hrow[o * 3] = r0;
            hrow[o * 3 + 1] = g0;
            hrow[o * 3 + 2] = b0;
        }
    }
    // Vertical pass, straight into the planar output; 1/255 folded into the weights.
    let plane = CROP * CROP;
    let mut acc = vec![0f32; CROP * 3];
    for oy in 0..CROP {
        acc.iter_mut().for_each(|a| *a = 0.0);
        let k = &wy.weights[oy * wy.ksize..oy * wy.ksize + wy.count[oy]];
        for (i, &w) in k.iter().enumerate() {
            let row = &horiz[(wy.first[oy] - row_lo + i) * CROP * 3..][..CROP * 3];
            let w = w / 255.0;
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += w * v);
        }
        for ox in 0..CROP {
            let dst = oy * CROP + if flip { CROP - 1 - ox } else { ox };
            for c in 0..3 {
                out[c * plane + dst] = acc[ox * 3 + c].clamp(0.0, 1.0);
            }
        }
    }
}

/// The three colour-jitter operations (torchvision's `ColorJitter`, hue 0).
#[derive(Clone, Copy, Debug)]
enum Jitter {
    Brightness(f32),
    Contrast(f32),
    Saturation(f32),
}

/// Draw factors uniformly in `[1-0.4, 1+0.4]` and a random order, as `ColorJitter.get_params`.
fn draw_jitter(rng: &mut impl Rng) -> [Jitter; 3] {
    let mut order = [0usize, 1, 2];
    order.shuffle(rng);
    let b = rng.gen_range(1.0 - JITTER..1.0 + JITTER);
    let c = rng.gen_range(1.0 - JITTER..1.0 + JITTER);
    let s = rng.gen_range(1.0 - JITTER..1.0 + JITTER);
    order.map(|i| match i {
        0 => Jitter::Brightness(b),
        1 => Jitter::Contrast(c),
        _ => Jitter::Saturation(s),
    })
}

/// ITU-R 601 luma, the grey that torchvision blends with.
#[inline]
fn gray(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Apply one jitter step in place to a planar [3][224][224] image in [0, 1].
fn apply_jitter(op: Jitter, img: &mut [f32]) {
    let plane = CROP * CROP;
    match op {
        Jitter::Brightness(f) => img.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0)),
        Jitter::Contrast(f) => {
            let (r, rest) = img.split_at(plane);
            let (g, b) = rest.split_at(plane);
            let mean = (0..plane).map(|i| gray(r[i], g[i], b[i]) as f64).sum::<f64>() / plane as f64;
            let offset = (1.0 - f) * mean as f32;
            img.iter_mut().for_each(|v| *v = (f * *v + offset).clamp(0.0, 1.0));
        }
        Jitter::Saturation(f) => {
            let (r, rest) = img.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            for i in 0..plane {
                let grey = (1.0 - f) * gray(r[i], g[i], b[i]);
                r[i] = (f * r[i] + grey).clamp(0.0, 1.0);
                g[i] = (f * g[i] + grey).clamp(0.0, 1.0);
                b[i] = (f * b[i] + grey).clamp(0.0, 1.0);
            }
        }
    }
}

/// `(x - mean) / std` per channel, in place.
fn normalize(img: &mut [f32]) {
    for (c, plane) in img.chunks_exact_mut(CROP * CROP).enumerate() {
        let (m, inv) = (IMAGENET_MEAN[c], 1.0 / IMAGENET_STD[c]);
        plane.iter_mut().for_each(|v| *v = (*v - m) * inv);
    }
}

/// Training transform into `out` (`SAMPLE_LEN` floats, [3][224][224], normalised); colour
/// jitter only when `jitter` (no draw is spent on it otherwise).
pub fn train_transform(img: &Rgb8, rng: &mut impl Rng, jitter: bool, out: &mut [f32]) {
    let crop = random_resized_crop_box(img.height, img.width, rng);
    let flip = rng.gen_bool(0.5);
    resample_into(img, crop, (CROP, CROP), (0, 0), flip, out);
    if jitter {
        for op in draw_jitter(rng) {
            apply_jitter(op, out);
        }
    }
    normalize(out);
}

/// Evaluation transform into `out`: resize shorter side to 256, centre crop 224, normalise.
/// Images smaller than 224 after the resize cannot occur (the shorter side becomes 256).
pub fn eval_transform(img: &Rgb8, out: &mut [f32]) {
    let (h, w) = eval_resized_size(img.height, img.width);
    // torchvision's CenterCrop: int(round((size - 224) / 2)).
    let top = round_half_even((h - CROP) as f64 / 2.0);
    let left = round_half_even((w - CROP) as f64 / 2.0);
    let full = CropBox { top: 0, left: 0, height: img.height, width: img.width };
    resample_into(img, full, (h, w), (top, left), false, out);
    normalize(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn round_half_even_matches_python() {
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(2.4), 2);
        assert_eq!(round_half_even(2.6), 3);
    }

    #[test]
    fn crop_box_always_inside_and_fallback_is_centred() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for (h, w) in [(375, 500), (500, 375), (10, 1000), (224, 224), (1, 1)] {
            for _ in 0..200 {
                let b = random_resized_crop_box(h, w, &mut rng);
                assert!(b.height > 0 && b.width > 0 && b.top + b.height <= h && b.left + b.width <= w, "{b:?}");
            }
        }
        // A 10x1000 strip cannot fit any drawn crop (area fraction <= 1, ratio <= 4/3):
        // the fallback is the centred 10 x round(10*4/3) box.
        let b = random_resized_crop_box(10, 1000, &mut rng);
        assert_eq!(b, CropBox { top: 0, left: (1000 - 13) / 2, height: 10, width: 13 });
    }

    #[test]
    fn weights_sum_to_one_and_identity_is_exact() {
        let w = axis_weights(300, 224, 0, 224);
        for o in 0..224 {
            let s: f32 = w.weights[o * w.ksize..o * w.ksize + w.count[o]].iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
        let id = axis_weights(224, 224, 0, 224);
        for o in 0..224 {
            assert_eq!(id.first[o], o);
            assert_eq!(id.weights[o * id.ksize], 1.0);
        }
    }
}

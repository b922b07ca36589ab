//! `gcl-repro bench loader`: images/s of [`ImageLoader`] against torchvision's `DataLoader`
//! doing the same transforms on the same files with the same number of workers, measured in
//! one call on one machine (the reference runs `scripts/bench_loader_torchvision.py`).
use crate::data::images::loader::{epoch_seed, ImageLoader, LoaderOptions};
use crate::data::listfile::ListDataset;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Settings of one loader benchmark.
#[derive(Clone, Debug)]
pub struct LoaderBench {
    pub root: PathBuf,
    pub list: PathBuf,
    /// Timed batches (one extra warm-up batch is run first on both sides and not timed).
    pub batches: usize,
    pub batch_size: usize,
    /// Decoding threads for ours, DataLoader worker processes for torchvision.
    pub workers: usize,
    /// Training transforms (random-resized-crop, flip, jitter) or evaluation ones.
    pub train: bool,
    /// Rounds, each timing ours then torchvision; the report gives every round's ratio and
    /// the median, which resists load from other processes on a shared machine.
    pub repeats: usize,
    /// Interpreter for the torchvision reference; `None`: `crate::bench::find_python`.
    pub python: Option<PathBuf>,
    /// The reference script; `None`: `scripts/bench_loader_torchvision.py` of this crate.
    pub script: Option<PathBuf>,
}

/// One measured side.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub images: usize,
    pub seconds: f64,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.images as f64 / self.seconds
    }
}

/// Write `n` random JPEGs of about 500x375 (some portrait) into `dir` and a list file
/// `dir/bench_list.txt` naming them with 10 labels; returns the list's path. The content is
/// smooth colour fields plus noise, so it compresses like a photo rather than like pure noise.
pub fn generate_images(dir: &Path, n: usize, seed: u64) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bar = progress(n as u64, "writing JPEGs");
    (0..n).into_par_iter().try_for_each(|i| -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        let (long, short) = (rng.gen_range(450..=550u32), rng.gen_range(330..=420u32));
        let (w, h) = if i % 4 == 3 { (short, long) } else { (long, short) };
        let img = synthetic_photo(w, h, &mut rng);
        let path = dir.join(format!("img_{i:06}.jpg"));
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90);
        enc.encode_image(&img).with_context(|| format!("cannot write {}", path.display()))?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let list = dir.join("bench_list.txt");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&list)?);
    for i in 0..n {
        writeln!(out, "img_{i:06}.jpg {}", i % 10)?;
    }
    out.flush()?;
    Ok(list)
}

/// A smooth random colour field (a few sinusoids per channel) plus pixel noise.
pub fn synthetic_photo(w: u32, h: u32, rng: &mut impl Rng) -> image::RgbImage {
    let waves: Vec<[f32; 4]> = (0..9)
        .map(|_| {
            [rng.gen_range(0.002..0.05), rng.gen_range(0.002..0.05), rng.gen_range(0.0..6.3), rng.gen_range(20.0..60.0)]
        })
        .collect();
    let mut img = image::RgbImage::new(w, h);
    for (x, y, px) in img.enumerate_pixels_mut() {
        for c in 0..3 {
            let v: f32 = waves[c * 3..c * 3 + 3]
                .iter()
                .map(|[fx, fy, ph, amp]| amp * (fx * x as f32 + fy * y as f32 + ph).sin())
                .sum();
            px[c] = (128.0 + v + rng.gen_range(-12.0..12.0)).clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// The timed index list: `total` samples cycling over the dataset, shuffled when training.
fn bench_indices(len: usize, total: usize, train: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..total).map(|i| i % len).collect();
    if train {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
    }
    idx
}

/// Images/s of our loader: one warm-up batch, then `batches` timed ones.
pub fn measure_ours(b: &LoaderBench) -> Result<Rate> {
    let dataset = Arc::new(ListDataset::from_file(&b.list, None)?);
    let opts = LoaderOptions {
        batch_size: b.batch_size,
        threads: b.workers,
        prefetch: 2,
        skip_bad: false,
        color_jitter: true,
    };
    let loader = ImageLoader::new(dataset.clone(), b.root.clone(), opts)?;
    let indices = bench_indices(dataset.len(), (b.batches + 1) * b.batch_size, b.train);
    let mut epoch = loader.epoch(indices, b.train, epoch_seed(0, 0));
    let (warm, _) = epoch.next().context("no batch")??;
    anyhow::ensure!(warm.size() == [b.batch_size as i64, 3, 224, 224], "unexpected batch shape {:?}", warm.size());
    let bar = progress(b.batches as u64, "gcl-repro loader");
    let start = Instant::now();
    let mut images = 0;
    for batch in epoch {
        let (x, _) = batch?;
        images += x.size()[0] as usize;
        bar.inc(1);
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(Rate { images, seconds })
}

/// Images/s of torchvision, by running the reference script and reading its `RESULT` line.
pub fn measure_torchvision(b: &LoaderBench) -> Result<Rate> {
    let python = crate::bench::find_python(b.python.clone());
    let script = b
        .script
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_loader_torchvision.py"));
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(["--root".as_ref(), b.root.as_os_str(), "--list".as_ref(), b.list.as_os_str()])
        .args(["--batches", &b.batches.to_string(), "--batch-size", &b.batch_size.to_string()])
        .args(["--workers", &b.workers.to_string(), "--mode", if b.train { "train" } else { "eval" }])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {} {}", python.display(), script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the torchvision reference failed ({}); it needs torchvision==0.26.0 and pillow in {}:\n{stdout}",
            out.status,
            python.display()
        );
    }
    parse_result_line(&stdout).with_context(|| {
        format!("no `RESULT images=N seconds=S` line in the output of {}:\n{stdout}", script.display())
    })
}

fn parse_result_line(stdout: &str) -> Option<Rate> {
    let line = stdout.lines().rev().find(|l| l.starts_with("RESULT "))?;
    let field = |name: &str| line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
    Some(Rate { images: field("images")?.parse().ok()?, seconds: field("seconds")?.parse().ok()? })
}

/// Run both sides `repeats` times, alternating, and return the report text.
pub fn run(b: &LoaderBench) -> Result<String> {
    let mode = if b.train {
        "train (random-resized-crop 224, flip, colour jitter 0.4)"
    } else {
        "eval (resize 256, centre crop 224)"
    };
    let mut text = format!(
        "machine: {}\nimages: {} (root {}), transforms: {mode}, batch {}, {} workers, {} timed batches per round\n",
        crate::device::cpu_name(),
        b.list.display(),
        b.root.display(),
        b.batch_size,
        b.workers,
        b.batches,
    );
    let mut ratios = Vec::new();
    for round in 1..=b.repeats.max(1) {
        let ours = measure_ours(b)?;
        let theirs = measure_torchvision(b)?;
        let ratio = ours.per_second() / theirs.per_second();
        text += &format!(
            "round {round}: gcl-repro loader {:>7.1} images/s ({} in {:.2} s), torchvision DataLoader {:>7.1} images/s ({} in {:.2} s), ratio {ratio:.2}x\n",
            ours.per_second(),
            ours.images,
            ours.seconds,
            theirs.per_second(),
            theirs.images,
            theirs.seconds,
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    text +=
        &format!("ratio (ours / torchvision), median of {} rounds: {:.2}x\n", ratios.len(), ratios[ratios.len() / 2]);
    Ok(text)
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}").unwrap().progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    #[test]
    fn result_line_is_parsed() {
        let r = super::parse_result_line("warming up\nRESULT images=640 seconds=3.2 images_per_s=200\n").unwrap();
        assert_eq!(r.images, 640);
        assert!((r.per_second() - 200.0).abs() < 1e-9);
    }
}

//! A parallel, prefetching image loader with bounded memory.
//!
//! One producer thread walks the epoch's index list batch by batch; each batch's images are
//! read, decoded and transformed on a rayon pool, written straight into the batch tensor, and
//! sent through a bounded channel that holds at most `prefetch` finished batches. The consumer
//! therefore never sees more than `prefetch + 1` batches in memory, and batches arrive in
//! index-list order.
//!
//! Determinism: sample `p` of an epoch draws its augmentation from an RNG seeded with
//! `sample_seed(seed, p)`, so the output depends only on (dataset, indices, seed) and never on
//! thread timing. Use [`epoch_seed`] to derive a per-epoch seed from the run seed.
use super::{decode, eval_transform, train_transform, CROP, SAMPLE_LEN};
use crate::data::listfile::ListDataset;
use anyhow::{anyhow, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tch::{Device, Kind, Tensor};

/// How the loader works; the defaults suit a training run on all cores.
#[derive(Clone, Debug)]
pub struct LoaderOptions {
    pub batch_size: usize,
    /// Decoding threads (a dedicated rayon pool); 0 means one per core.
    pub threads: usize,
    /// Finished batches held ahead of the consumer (K). At least 1.
    pub prefetch: usize,
    /// Missing or undecodable images: `false` stops the epoch with an error naming the image
    /// and its list line; `true` logs a warning, drops the sample from its batch and counts it.
    pub skip_bad: bool,
    /// Colour jitter in the training transform (`dataset.color_jitter`).
    pub color_jitter: bool,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions { batch_size: 128, threads: 0, prefetch: 2, skip_bad: false, color_jitter: true }
    }
}

/// A sample that was skipped (only with `skip_bad`): its dataset index and the reason.
#[derive(Clone, Debug)]
pub struct SkippedSample {
    pub index: usize,
    pub reason: String,
}

/// Loads batches of a [`ListDataset`] whose paths are relative to `root`.
pub struct ImageLoader {
    dataset: Arc<ListDataset>,
    root: PathBuf,
    opts: LoaderOptions,
    pool: Arc<rayon::ThreadPool>,
}

/// Seed of one epoch's augmentation, from the run seed and the epoch number.
pub fn epoch_seed(run_seed: u64, epoch: u64) -> u64 {
    splitmix64(run_seed ^ splitmix64(epoch.wrapping_add(0x5EED)))
}

/// Seed of the augmentation of the sample at `position` in an epoch's index list.
pub fn sample_seed(seed: u64, position: usize) -> u64 {
    splitmix64(seed ^ splitmix64(position as u64))
}

/// SplitMix64 finaliser: decorrelates nearby integers (seeds, positions).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ImageLoader {
    pub fn new(dataset: Arc<ListDataset>, root: PathBuf, opts: LoaderOptions) -> Result<ImageLoader> {
        anyhow::ensure!(opts.batch_size > 0, "loader batch size must be positive");
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            opts.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("gcl-decode-{i}"))
            .build()
            .context("cannot start the image decoding threads")?;
        Ok(ImageLoader { dataset, root, opts, pool: Arc::new(pool) })
    }

    pub fn dataset(&self) -> &ListDataset {
        &self.dataset
    }

    /// Batches of `indices` (dataset indices, in sampler order) as `(images f32 [B,3,224,224],
    /// labels i64 [B])`, with training augmentation when `train`, else the evaluation
    /// transform. The last batch may be smaller; with `skip_bad` batches lose their bad samples.
    pub fn epoch(&self, indices: Vec<usize>, train: bool, seed: u64) -> Epoch {
        let (tx, rx) = sync_channel(self.opts.prefetch.max(1));
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let job = BatchJob {
            dataset: self.dataset.clone(),
            root: self.root.clone(),
            skip_bad: self.opts.skip_bad,
            color_jitter: self.opts.color_jitter,
            train,
            seed,
            skipped: skipped.clone(),
        };
        let pool = self.pool.clone();
        let batch_size = self.opts.batch_size;
        let handle = std::thread::Builder::new()
            .name("gcl-loader".into())
            .spawn(move || {
                for (b, chunk) in indices.chunks(batch_size).enumerate() {
                    let batch = pool.install(|| job.build(b * batch_size, chunk));
                    let failed = batch.is_err();
                    match batch {
                        Ok(None) => continue, // every sample of the batch was skipped
                        Ok(Some(pair)) => {
                            if tx.send(Ok(pair)).is_err() {
                                return; // the consumer stopped early
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                    if failed {
                        return;
                    }
                }
            })
            .expect("cannot spawn the loader thread");
        Epoch { rx: Some(rx), handle: Some(handle), skipped }
    }
}

/// Everything the producer thread needs to build batches.
struct BatchJob {
    dataset: Arc<ListDataset>,
    root: PathBuf,
    skip_bad: bool,
    color_jitter: bool,
    train: bool,
    seed: u64,
    skipped: Arc<Mutex<Vec<SkippedSample>>>,
}

impl BatchJob {
    /// Build the batch of `chunk`, whose first sample sits at `start` in the epoch. `None`
    /// when every sample was skipped.
    fn build(&self, start: usize, chunk: &[usize]) -> Result<Option<(Tensor, Tensor)>> {
        if let Some(&bad) = chunk.iter().find(|&&i| i >= self.dataset.len()) {
            return Err(anyhow!(
                "loader index {bad} is out of range: {} has {} entries",
                self.dataset.list_path.display(),
                self.dataset.len()
            ));
        }
        let n = chunk.len();
        let images = Tensor::empty([n as i64, 3, CROP as i64, CROP as i64], (Kind::Float, Device::Cpu));
        // SAFETY: `images` is a freshly allocated, contiguous CPU float tensor of exactly
        // n * SAMPLE_LEN elements, owned here and not aliased until this function returns.
        let buf: &mut [f32] = unsafe { std::slice::from_raw_parts_mut(images.data_ptr() as *mut f32, n * SAMPLE_LEN) };
        let results: Vec<Result<()>> = buf
            .par_chunks_mut(SAMPLE_LEN)
            .zip(chunk.par_iter())
            .enumerate()
            .map(|(k, (out, &index))| self.load_sample(index, start + k, out))
            .collect();
        let mut keep = Vec::with_capacity(n);
        for (k, result) in results.into_iter().enumerate() {
            match result {
                Ok(()) => keep.push(k),
                Err(e) if self.skip_bad => {
                    let reason = format!("{e:#}");
                    tracing::warn!("skipping a bad image: {reason}");
                    self.skipped
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(SkippedSample { index: chunk[k], reason });
                }
                Err(e) => return Err(e.context("set the loader's skip_bad option to skip unreadable images")),
            }
        }
        if keep.is_empty() {
            return Ok(None);
        }
        // Compact the good samples to the front (order preserved), then view the first ones.
        for (dst, &src) in keep.iter().enumerate() {
            if dst != src {
                buf.copy_within(src * SAMPLE_LEN..(src + 1) * SAMPLE_LEN, dst * SAMPLE_LEN);
            }
        }
        let labels: Vec<i64> = keep.iter().map(|&k| self.dataset.entries[chunk[k]].1).collect();
        let images = if keep.len() == n { images } else { images.narrow(0, 0, keep.len() as i64).contiguous() };
        Ok(Some((images, Tensor::from_slice(&labels))))
    }

    /// Read, decode and transform one image into `out`.
    fn load_sample(&self, index: usize, position: usize, out: &mut [f32]) -> Result<()> {
        let path = self.root.join(&self.dataset.entries[index].0);
        let whence = || format!("image {} ({})", path.display(), self.dataset.locate(index));
        let bytes = std::fs::read(&path).with_context(|| format!("{}: cannot read the file", whence()))?;
        let img = decode(&bytes).with_context(whence)?;
        if self.train {
            let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(self.seed, position));
            train_transform(&img, &mut rng, self.color_jitter, out);
        } else {
            eval_transform(&img, out);
        }
        Ok(())
    }
}

/// The batches of one epoch, in order. Dropping it early stops the producer.
pub struct Epoch {
    rx: Option<Receiver<Result<(Tensor, Tensor)>>>,
    handle: Option<JoinHandle<()>>,
    skipped: Arc<Mutex<Vec<SkippedSample>>>,
}

impl Epoch {
    /// Number of samples skipped so far (only non-zero with `skip_bad`).
    pub fn skipped_count(&self) -> usize {
        self.skipped.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// The samples skipped so far, with reasons.
    pub fn skipped(&self) -> Vec<SkippedSample> {
        self.skipped.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Iterator for Epoch {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.as_ref()?.recv() {
            Ok(item) => Some(item),
            // Channel closed: the producer finished, or died; a panic must not pass for the
            // end of the epoch.
            Err(_) => {
                self.rx = None;
                match self.handle.take().map(|h| h.join()) {
                    Some(Err(_)) => Some(Err(anyhow!("the image loader thread panicked"))),
                    _ => None,
                }
            }
        }
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        // Close the channel first so a producer blocked on `send` returns, then wait for it.
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

//! gcl-repro: reproduce "Long-tailed Visual Recognition via Gaussian Clouded Logit Adjustment"
//! (Li, Cheung, Lu; CVPR 2022) from declarative TOML manifests.
//!
//! Module map (one concept each):
//! - `config`: the settings of one run (a method is a combination of settings);
//! - `data`: datasets, long-tailed subsets and the per-epoch sampling orders (`data::samplers`);
//! - `models`: backbones and classifier heads; `losses`: GCL and the baseline losses;
//! - `training`: the two-stage recipe, checkpoints, evaluation; `metrics`: stored results;
//! - `manifest`: paper tables as TOML (validation, expansion into runs); `pipeline`: the run
//!   graph every command reads (`graph`), its plan and Slurm scripts (`plan`), its execution
//!   (`runner`); `cache`: content-hashed run store;
//! - `explain`: a cell's resolved settings against the released recipe, with its keys;
//! - `numerics`: the pinned CPU numeric path (kernel level, threads) of a run;
//! - `portable`: ln/exp/pow/sin from IEEE basic operations (same bits on every machine);
//! - `atomic`: whole-file writes (temporary name, fsync, rename); `human`: durations and counts
//!   as printed;
//! - `report`: tables, figures (`report::plot`) and t-SNE maps (`report::tsne`) from the cache,
//!   and `report::compare` (two sets of runs cell by cell); `stats`: means, the Student-t
//!   interval of a cell over its seeds, t-tests, Student's t;
//! - `device`, `doctor`, `bench`: hardware, toolchain checks, and the benchmarks (`bench::step`,
//!   `bench::images`, `bench::tsne`, and `bench::fidelity`, the end-to-end cross-check against an
//!   independent PyTorch run).
pub mod atomic;
pub mod bench;
pub mod cache;
pub mod config;
pub mod data;
pub mod device;
pub mod doctor;
pub mod explain;
pub mod human;
pub mod losses;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod numerics;
pub mod pipeline;
pub mod portable;
mod registry;
pub mod report;
pub mod stats;
pub mod training;

/// Bumped whenever training semantics change, so cached results of older engines are not reused.
/// 2: BatchNorm scale starts at 1 (was tch's uniform [0, 1)); the focal factor is detached as in
/// the released `focal_loss`; partial overrides merge onto the stage's own defaults; stage 2
/// follows stage 1's cloud schedule; baselines follow their own released recipes.
/// 3: every constant of the loss, sampler, schedule and mixup computed with `portable` math
/// (bit-identical on every machine); synthetic set v3; stage 2 stores its final weights.
/// 4: losses and stage-2 methods are tagged enums, each owning its settings (keys hold only the
/// chosen variant's fields); a `reinit` stage 2 trains and stores its re-initialised classifier
/// (engine 3 trained none); stage 2 stores LWS scales only for the methods that have them.
/// Every other run's weights are bit-identical to engine 3's.
/// 5: one random stream per purpose (`training::Stream`): the sampler's order and mixup's lambda
/// no longer read the same ChaCha stream from the same seed; BBN's reversed sampler and host-side
/// augmentation have their own streams too. Sampling, mixup draws and hence every run's weights
/// change; the recipes do not.
/// 6: on CPU the convolutions run channels-last (NHWC), which oneDNN convolves without
/// reordering every tensor (the ResNet-32 step ~20% faster here); the sums differ in rounding
/// from engine 5's NCHW convolutions, so every CPU run's weights change in the last bits and
/// then by chance. The static step (`training::static_step`) is bit-identical to the eager one.
/// The golden run of `tests/numerics.rs` pins the numerics of this version.
pub const ENGINE_VERSION: u32 = 6;

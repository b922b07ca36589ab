//! gcl-repro: reproduce "Long-tailed Visual Recognition via Gaussian Clouded Logit Adjustment"
//! (Li, Cheung, Lu; CVPR 2022) from declarative TOML manifests.
//!
//! Module map (one concept each):
//! - settings live beside what they configure (`data::spec`, `models::spec`, `losses`,
//!   `data::samplers`, `training::rebalance`, `numerics`); `training::spec::RunSpec` assembles
//!   them into the settings of one run (a method is a combination of settings);
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
pub mod data;
pub mod device;
pub mod distributed;
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
/// What each version changed is in `CHANGELOG.md`; the golden run of `tests/numerics.rs` pins the
/// numerics of this one.
pub const ENGINE_VERSION: u32 = 6;

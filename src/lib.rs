//! gcl-repro: reproduce "Long-tailed Visual Recognition via Gaussian Clouded Logit Adjustment"
//! (Li, Cheung, Lu; CVPR 2022) from declarative TOML manifests.
//!
//! Module map (one concept each):
//! - `config`: the settings of one run (a method is a combination of settings);
//! - `data`: datasets and long-tailed subsets; `samplers`: per-epoch sampling orders;
//! - `models`: backbones and classifier heads; `losses`: GCL and the baseline losses;
//! - `training`: the two-stage recipe, checkpoints, evaluation; `metrics`: stored results;
//! - `manifest`: paper tables as TOML (validation, expansion into runs); `plan`: the run graph
//!   and Slurm scripts; `cache`: content-hashed run store; `runner`: executes what is missing;
//! - `device`, `doctor`, `bench`: hardware, toolchain checks and benchmarks.
pub mod bench;
pub mod cache;
pub mod config;
pub mod data;
pub mod device;
pub mod doctor;
pub mod losses;
pub mod manifest;
pub mod metrics;
pub mod models;
pub mod plan;
pub mod plot;
pub mod runner;
pub mod report;
pub mod samplers;
pub mod training;
pub mod tsne;

/// Bumped whenever training semantics change, so cached results of older engines are not reused.
pub const ENGINE_VERSION: u32 = 1;

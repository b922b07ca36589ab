//! gcl-repro: reproduce "Long-tailed Visual Recognition via Gaussian Clouded Logit Adjustment"
//! (Li, Cheung, Lu; CVPR 2022) from declarative TOML manifests.
//!
//! Module map (one concept each): `config` (the settings of one run), `data` (datasets and
//! long-tailed subsets), `device`, `doctor`, `metrics` (evaluation and stored results).
pub mod cache;
pub mod config;
pub mod data;
pub mod device;
pub mod doctor;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod tsne;

/// Bumped whenever training semantics change, so cached results of older engines are not reused.
pub const ENGINE_VERSION: u32 = 1;

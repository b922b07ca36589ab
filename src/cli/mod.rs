//! The command line's parts (binary-only code), in cargo's shape: one file per subcommand, each
//! with its arguments (`Args`) and its `exec`; the groups `data`, `cache` and `bench` one file
//! each. What they share is here: the [`Context`] resolved once from the global options, the
//! `--scale`, `--seeds` and `--set` arguments, the paper's tables and the default report folder.
pub mod bench;
pub mod cache;
pub mod compare;
pub mod data;
pub mod doctor;
pub mod eval;
pub mod explain;
pub mod plan;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod validate;
pub mod worker;

use anyhow::{Context as _, Result};
use clap::builder::TypedValueParser as _;
use gcl_repro::device::DeviceChoice;
use gcl_repro::manifest::{Overrides, Setting};
use gcl_repro::training::spec::Scale;
use std::path::PathBuf;

/// The global options every subcommand may use, resolved once in `main`.
pub struct Context {
    /// `--device` as written (`auto` until a command that trains or evaluates resolves it).
    pub device: DeviceChoice,
    /// The run cache (`--cache-dir`, `$GCL_CACHE_DIR`).
    pub cache_dir: PathBuf,
    /// Where datasets live (`--data-root`, `$GCL_DATA_ROOT`).
    pub data_root: PathBuf,
}

/// `--scale full|smoke`, for every command that expands manifests into runs.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ScaleArgs {
    /// Which runs: the manifests' full scale, or smoke scale (the pipeline on CPU in minutes;
    /// its numbers are labelled and kept apart).
    #[arg(
        long,
        default_value = "full",
        value_parser = clap::builder::PossibleValuesParser::new(["full", "smoke"]).try_map(|s| parse_scale(&s))
    )]
    pub scale: Scale,
}

/// `full` or `smoke` (the names `training::spec::Scale` has in manifests and keys).
fn parse_scale(s: &str) -> std::result::Result<Scale, String> {
    data::parse_snake(s).map_err(|_| format!("`{s}`: expected `full` or `smoke`"))
}

/// `--seeds N` and `--set KEY=VALUE`, shared by every command that expands manifests into runs.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct OverrideArgs {
    /// Seeds per cell for every manifest, at either scale: the first N of the manifest's list,
    /// or N consecutive seeds from 123 (default: each manifest's `seeds`, 3 unless set; at smoke
    /// scale its `smoke_seeds`, 1 unless set). Pass the same N to `run` and `report`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub seeds: Option<u16>,
    /// Change a setting of every cell (repeatable), after everything the manifest sets and at
    /// both scales: KEY as `explain` prints it, VALUE in TOML (a bare word is a string), e.g.
    /// --set stage1.epochs=50 --set stage1.loss.noise_mul=0.5. It changes only the cells that
    /// have the setting (a stage-2 setting the cells with a stage 2, a loss setting the cells
    /// whose loss has it). Pass the same flags to `run` and `report`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Setting>,
}

impl OverrideArgs {
    pub fn get(&self) -> Overrides {
        Overrides { seeds: self.seeds.map(usize::from), set: self.set.clone() }
    }
}

/// The paper's tables, each a manifest `experiments/tableN.toml`.
pub const PAPER_TABLES: std::ops::RangeInclusive<u32> = 1..=5;

/// The manifest of paper table `n`.
pub fn table_manifest(n: u32) -> PathBuf {
    PathBuf::from(format!("experiments/table{n}.toml"))
}

/// Where `report` and `reproduce` write when no `--out` is given: smoke-scale numbers go to
/// their own folder, never mixed with full-scale ones.
pub fn default_report_dir(scale: Scale) -> PathBuf {
    match scale {
        Scale::Full => PathBuf::from("results"),
        Scale::Smoke => PathBuf::from("results/smoke"),
    }
}

/// Every manifest of `experiments/` (what `report` and `cache gc` default to).
pub fn experiment_manifests() -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("experiments")
        .context("no experiments/ directory here: run from the repository root or name manifests")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != "paper-tables.toml")
        })
        .collect();
    v.sort();
    Ok(v)
}

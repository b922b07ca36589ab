//! `gcl-repro report`: tables, figures and REPORT.md from the cache.
use super::experiments::{experiment_manifests, ScaleArg, SeedsArg};
use anyhow::Result;
use gcl_repro::config::Scale;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Manifests to report on (default: experiments/*.toml except paper-tables.toml).
    manifests: Vec<PathBuf>,
    /// Output directory (default: results/ at full scale, results/smoke/ at smoke scale).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Which runs to report: smoke-scale numbers go to their own directory, never mixed with full ones.
    #[arg(long, value_enum, default_value = "full")]
    scale: ScaleArg,
    #[command(flatten)]
    seeds: SeedsArg,
}

pub fn run(args: ReportArgs, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let scale: Scale = args.scale.into();
    let manifests = if args.manifests.is_empty() { experiment_manifests()? } else { args.manifests };
    let out = args.out.unwrap_or_else(|| match scale {
        Scale::Full => PathBuf::from("results"),
        Scale::Smoke => PathBuf::from("results/smoke"),
    });
    let summary = gcl_repro::report::build_report(&manifests, scale, args.seeds.count(), &cache_dir, &data_root, &out)?;
    print!("{}", summary.render());
    Ok(())
}

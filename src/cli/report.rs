//! `gcl-repro report [MANIFESTS]`: tables, figures and REPORT.md from the cached runs.
use super::{default_report_dir, experiment_manifests, Context, OverrideArgs, ScaleArgs};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Manifests to report on (default: experiments/*.toml except paper-tables.toml).
    manifests: Vec<PathBuf>,
    /// Output directory (default: results/ at full scale, results/smoke/ at smoke scale).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    scale: ScaleArgs,
    #[command(flatten)]
    overrides: OverrideArgs,
}

pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let scale = args.scale.scale;
    let manifests = if args.manifests.is_empty() { experiment_manifests()? } else { args.manifests };
    let out = args.out.unwrap_or_else(|| default_report_dir(scale));
    let overrides = args.overrides.get();
    let summary = gcl_repro::report::build_report(&manifests, scale, &overrides, &ctx.cache_dir, &ctx.data_root, &out)?;
    print!("{}", summary.render());
    Ok(())
}

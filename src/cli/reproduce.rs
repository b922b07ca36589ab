//! `gcl-repro reproduce`: run the paper's tables (and figures), then write the report.
use super::{default_report_dir, table_manifest, Context, OverrideArgs, ScaleArgs, PAPER_TABLES};
use anyhow::{bail, Result};
use gcl_repro::pipeline::runner;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Paper tables to reproduce, e.g. `1,3-5` (experiments/tableN.toml); default: all of them.
    #[arg(long)]
    pub tables: Option<String>,
    /// Leave out the figures manifest (experiments/figures.toml).
    #[arg(long)]
    pub no_figures: bool,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Runs at once per device, as separate processes.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Report directory (default: results/, or results/smoke/ at smoke scale).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Wind down MINUTES after the start (fractions allowed): no run starts after it, and the runs
    /// in progress stop at the end of their current epoch, checkpointed (they resume on the next
    /// `run`). That epoch finishes after the deadline: leave one epoch's time to spare. The report
    /// is written of what finished; exits 0 with a line counting the runs finished, wound down
    /// and never started.
    #[arg(long, value_name = "MINUTES")]
    pub deadline: Option<f64>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// `1,3-5` -> [1, 3, 4, 5]; only the paper's tables ([`PAPER_TABLES`]).
pub fn parse_tables(spec: &str) -> Result<Vec<u32>> {
    let (first, last) = (*PAPER_TABLES.start(), *PAPER_TABLES.end());
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let parse = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--tables: `{part}` is not a table number or range (e.g. 1,3-5)"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a < first || b > last || a > b {
            bail!("--tables: `{part}` is outside the paper's tables {first}-{last}");
        }
        out.extend(a..=b);
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        bail!("--tables: no table given (e.g. --tables 1,3-5)");
    }
    Ok(out)
}

/// Run the chosen tables' manifests (what is missing), then write the report.
pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let deadline = args.deadline.map(runner::Deadline::in_minutes).transpose()?;
    let tables = match &args.tables {
        Some(spec) => parse_tables(spec)?,
        None => PAPER_TABLES.collect(),
    };
    let mut manifests: Vec<PathBuf> = tables.into_iter().map(table_manifest).collect();
    if !args.no_figures {
        manifests.push(PathBuf::from("experiments/figures.toml"));
    }
    for m in &manifests {
        if !m.is_file() {
            bail!("{} not found: run `gcl-repro reproduce` from the repository root", m.display());
        }
    }
    if !args.overrides.set.is_empty() && args.out.is_none() {
        bail!("--set changes the paper's settings, so its report does not belong in results/: name a report directory with --out DIR");
    }
    let scale = args.scale.scale;
    let run_args = super::run::Args {
        manifests: manifests.clone(),
        scale: args.scale,
        jobs: args.jobs,
        devices: vec![],
        data_parallel: false,
        only: vec![],
        force: false,
        deadline: None,
        overrides: args.overrides.clone(),
    };
    // Keep going to the report even when some runs fail or lack data (or the deadline stopped
    // them): the report says which.
    let run_result = super::run::train(run_args, ctx, deadline);
    let out = args.out.unwrap_or_else(|| default_report_dir(scale));
    let overrides = args.overrides.get();
    let summary = gcl_repro::report::build_report(&manifests, scale, &overrides, &ctx.cache_dir, &ctx.data_root, &out)?;
    print!("{}", summary.render());
    run_result
}

#[cfg(test)]
mod tests {
    use super::parse_tables;

    #[test]
    fn table_ranges() {
        assert_eq!(parse_tables("1,3-5").unwrap(), vec![1, 3, 4, 5]);
        assert_eq!(parse_tables("2, 2,1").unwrap(), vec![1, 2]);
        assert!(parse_tables("0-2").unwrap_err().to_string().contains("outside the paper's tables 1-5"));
        assert!(parse_tables("x").unwrap_err().to_string().contains("not a table number"));
        assert!(parse_tables("").is_err());
    }
}

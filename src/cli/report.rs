//! `gcl-repro report`: tables, figures and REPORT.md from the cache; `gcl-repro compare`.
use super::experiments::{experiment_manifests, OverrideArgs, ScaleArg};
use anyhow::Result;
use gcl_repro::config::Scale;
use gcl_repro::report::compare;
use std::path::{Path, PathBuf};

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
    overrides: OverrideArgs,
}

pub fn run(args: ReportArgs, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let scale: Scale = args.scale.into();
    let manifests = if args.manifests.is_empty() { experiment_manifests()? } else { args.manifests };
    let out = args.out.unwrap_or_else(|| match scale {
        Scale::Full => PathBuf::from("results"),
        Scale::Smoke => PathBuf::from("results/smoke"),
    });
    let summary =
        gcl_repro::report::build_report(&manifests, scale, &args.overrides.get(), &cache_dir, &data_root, &out)?;
    print!("{}", summary.render());
    Ok(())
}

#[derive(clap::Args)]
pub struct CompareArgs {
    /// A run cache (a directory with runs/), an archive of `cache export`, a report directory
    /// (with runs.csv) or a manifest (.toml: its runs in --cache-dir at --scale).
    a: PathBuf,
    /// The same kinds as A (a report directory compares only with another report directory).
    b: PathBuf,
    /// Settings set aside when matching cells, comma-separated: a setting path as `explain`
    /// prints it, or a part of one (`cpu` covers cpu.isa and cpu.threads; also `engine`,
    /// `device`, `stage2.sampler`, ...). The seed is always set aside.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    ignore: Vec<String>,
    /// Which runs of a manifest side.
    #[arg(long, value_enum, default_value = "full")]
    scale: ScaleArg,
    /// Also write the table as CSV to FILE; `--csv -` prints the CSV instead of the Markdown.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

/// `compare A B`: the Markdown table on stdout (notes on stderr); exits 0 whatever differs.
pub fn compare(args: CompareArgs, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let scope = compare::ManifestScope { scale: args.scale.into(), cache_dir, data_root };
    let (a, b) = (compare::load(&args.a, &scope)?, compare::load(&args.b, &scope)?);
    for note in a.notes.iter().chain(&b.notes) {
        eprintln!("note: {note}");
    }
    let ignore: Vec<String> = args.ignore.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let result = compare::compare(&a, &b, &ignore)?;
    match &args.csv {
        Some(path) if path == Path::new("-") => print!("{}", compare::csv_text(&result)?),
        Some(path) => {
            gcl_repro::atomic::write(path, compare::csv_text(&result)?)?;
            print!("{}", compare::markdown(&result));
        }
        None => print!("{}", compare::markdown(&result)),
    }
    Ok(())
}

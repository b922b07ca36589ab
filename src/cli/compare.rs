//! `gcl-repro compare A B`: two sets of runs cell by cell.
use super::{Context, ScaleArgs};
use anyhow::Result;
use gcl_repro::report::compare;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    scale: ScaleArgs,
    /// Also write the table as CSV to FILE; `--csv -` prints the CSV instead of the Markdown.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

/// The Markdown table on stdout (notes on stderr); exits 0 whatever differs.
pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let scope = compare::ManifestScope {
        scale: args.scale.scale,
        cache_dir: ctx.cache_dir.clone(),
        data_root: ctx.data_root.clone(),
    };
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

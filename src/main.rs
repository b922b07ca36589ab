//! The `gcl-repro` command line: the global options, resolved once into a `cli::Context`, and
//! one subcommand per task, each in its own file of `src/cli/` (its arguments and its `exec`).
mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gcl_repro::device::DeviceChoice;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "gcl-repro",
    version,
    about = "Reproduce GCL (CVPR 2022) long-tailed recognition results from TOML manifests"
)]
struct Cli {
    /// Compute device: auto (CUDA when present), cpu, cuda, cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    device: DeviceChoice,
    /// Where datasets live (CIFAR binaries, list files, images).
    #[arg(long, global = true, env = "GCL_DATA_ROOT", default_value = "./data")]
    data_root: PathBuf,
    /// The run cache (shared between machines on a cluster).
    #[arg(long, global = true, env = "GCL_CACHE_DIR", default_value = "results/cache")]
    cache_dir: PathBuf,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the toolchain (libtorch, CUDA) and list the datasets found under the data root.
    Doctor,
    /// Datasets: inspect the long-tailed split, download CIFAR, write the prepared form.
    #[command(subcommand)]
    Data(cli::data::Command),
    /// Check manifests: unknown keys, bad values, dangling references (with file:line:col).
    Validate(cli::validate::Args),
    /// Print a cell's fully resolved settings for both stages, marking (*) every value that
    /// differs from the released GCL recipe, with its cache key(s). Every cell when CELL is omitted.
    Explain(cli::explain::Args),
    /// Show the run graph of manifests (what is cached, what would run, estimated cost);
    /// optionally write Slurm job scripts for it. Nothing is run.
    Plan(cli::plan::Args),
    /// Evaluate a checkpoint (PyTorch state_dict or run weights) in a cell's network on its test
    /// split: top-1, top-5, many/medium/few and per-class accuracy. Nothing is trained.
    Eval(cli::eval::Args),
    /// Train what the manifests need and is not cached yet.
    Run(cli::run::Args),
    /// Look after the run cache: ls, show, verify, gc.
    #[command(subcommand)]
    Cache(cli::cache::Command),
    /// Tables, figures and REPORT.md from the cached runs (nothing is trained).
    Report(cli::report::Args),
    /// Two sets of runs (caches, `cache export` archives, report directories or manifests) cell
    /// by cell: both means, the difference, Welch's t-test, the settings that differ and whether
    /// the final weights are identical. Markdown on stdout, CSV with --csv.
    Compare(cli::compare::Args),
    /// Run the paper's tables (and figures) and write the report, in one command.
    Reproduce(cli::reproduce::Args),
    /// Benchmarks (timings against a reference measured in the same run).
    #[command(subcommand)]
    Bench(cli::bench::Command),
    /// Train one planned run from its job file (started by `run --jobs` and Slurm tasks).
    #[command(hide = true)]
    Worker(cli::worker::Args),
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GCL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("gcl_repro={level}")));
    // Colour only for a person at a terminal: logs and pipes get plain `ERROR`, never `\e[31m`.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .init();
}

fn main() {
    if std::env::var_os("GCL_NO_MALLOPT").is_none() {
        gcl_repro::memory::keep_freed_memory();
    }
    // First thing, so that a SIGUSR1 sent to a starting `run` winds it down instead of killing it.
    gcl_repro::pipeline::runner::install_wind_down_signal();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    if let Err(err) = run(cli) {
        // One line: the error and its causes, no backtrace for user mistakes.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let ctx = cli::Context { device: cli.device, cache_dir: cli.cache_dir, data_root: cli.data_root };
    match cli.command {
        Command::Doctor => cli::doctor::exec(&ctx),
        Command::Data(cmd) => cli::data::exec(cmd, &ctx),
        Command::Validate(args) => cli::validate::exec(args),
        Command::Explain(args) => cli::explain::exec(args, &ctx),
        Command::Plan(args) => cli::plan::exec(args, &ctx),
        Command::Eval(args) => cli::eval::exec(args, &ctx),
        Command::Run(args) => cli::run::exec(args, &ctx),
        Command::Cache(cmd) => cli::cache::exec(cmd, &ctx),
        Command::Report(args) => cli::report::exec(args, &ctx),
        Command::Compare(args) => cli::compare::exec(args, &ctx),
        Command::Reproduce(args) => cli::reproduce::exec(args, &ctx),
        Command::Bench(cmd) => cli::bench::exec(cmd, &ctx),
        Command::Worker(args) => cli::worker::exec(args, &ctx),
    }
}

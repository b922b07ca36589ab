//! The `gcl-repro` command line: global options, and one subcommand per task. The argument
//! structs and handlers of each group live in `src/cli/`.
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
    Data(cli::data::DataCommand),
    /// Check manifests: unknown keys, bad values, dangling references (with file:line:col).
    Validate {
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
    /// Print a cell's fully resolved settings for both stages, marking (*) every value that
    /// differs from the released GCL recipe, with its cache key(s). Every cell when CELL is omitted.
    Explain(cli::experiments::ExplainArgs),
    /// Show the run graph of manifests (what is cached, what would run, estimated cost);
    /// optionally write Slurm job scripts for it. Nothing is run.
    Plan(cli::experiments::PlanArgs),
    /// Evaluate a checkpoint (PyTorch state_dict or run weights) in a cell's network on its test
    /// split: top-1, top-5, many/medium/few and per-class accuracy. Nothing is trained.
    Eval(cli::experiments::EvalArgs),
    /// Train what the manifests need and is not cached yet.
    Run(cli::experiments::RunArgs),
    /// Look after the run cache: ls, show, verify, gc.
    #[command(subcommand)]
    Cache(cli::experiments::CacheCommand),
    /// Tables, figures and REPORT.md from the cached runs (nothing is trained).
    Report(cli::report::ReportArgs),
    /// Two sets of runs (caches, `cache export` archives, report directories or manifests) cell
    /// by cell: both means, the difference, Welch's t-test, the settings that differ and whether
    /// the final weights are identical. Markdown on stdout, CSV with --csv.
    Compare(cli::report::CompareArgs),
    /// Run the paper's tables (and figures) and write the report, in one command.
    Reproduce(cli::experiments::ReproduceArgs),
    /// Benchmarks (timings against a reference measured in the same run).
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// Train one planned run from its job file (started by `run --jobs` and Slurm tasks).
    #[command(hide = true)]
    Worker(cli::experiments::WorkerArgs),
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
    match cli.command {
        Command::Doctor => {
            let _ = cli.device.resolve()?;
            let (text, ok) = gcl_repro::doctor::report(&[cli.data_root]);
            print!("{text}");
            if !ok {
                anyhow::bail!("the toolchain is not usable (see above)");
            }
            Ok(())
        }
        Command::Data(cmd) => cli::data::run(cmd, &cli.data_root),
        Command::Validate { manifests } => {
            let (text, ok) = gcl_repro::manifest::validate_files(&manifests);
            print!("{text}");
            if !ok {
                anyhow::bail!("invalid manifest(s), see above");
            }
            Ok(())
        }
        Command::Explain(args) => cli::experiments::explain(args, cli.data_root),
        Command::Plan(args) => cli::experiments::plan(args, cli.device, cli.cache_dir, cli.data_root),
        Command::Eval(args) => cli::experiments::eval(args, cli.device, cli.data_root),
        Command::Run(args) => cli::experiments::run(args, cli.device, cli.cache_dir, cli.data_root),
        Command::Cache(cmd) => cli::experiments::cache(cmd, cli.cache_dir, cli.data_root),
        Command::Report(args) => cli::report::run(args, cli.cache_dir, cli.data_root),
        Command::Compare(args) => cli::report::compare(args, cli.cache_dir, cli.data_root),
        Command::Reproduce(args) => cli::experiments::reproduce(args, cli.device, cli.cache_dir, cli.data_root),
        Command::Bench(cmd) => cli::bench::run(cmd, cli.device, &cli.data_root),
        Command::Worker(args) => cli::experiments::worker(args, cli.device, cli.cache_dir, cli.data_root),
    }
}

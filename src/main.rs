//! The `gcl-repro` command line.
use anyhow::Result;
use clap::{Parser, Subcommand};
use gcl_repro::device::DeviceChoice;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "gcl-repro", version, about = "Reproduce GCL (CVPR 2022) long-tailed recognition results from TOML manifests")]
struct Cli {
    /// Compute device: auto (CUDA when present), cpu, cuda, cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    device: DeviceChoice,
    /// Where datasets live (CIFAR binaries, list files, images).
    #[arg(long, global = true, env = "GCL_DATA_ROOT", default_value = "./data")]
    data_root: PathBuf,
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
    /// Benchmarks (timings against a reference measured in the same run).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Images/s of the JPEG loader against torchvision's DataLoader on the same files.
    Loader(BenchLoaderArgs),
}

#[derive(clap::Args)]
struct BenchLoaderArgs {
    /// Image root (list paths are relative to it).
    #[arg(long)]
    root: PathBuf,
    /// List file (`path label` per line); default with --generate: ROOT/bench_list.txt.
    #[arg(long)]
    list: Option<PathBuf>,
    /// First write N random ~500x375 JPEGs and their list file into ROOT.
    #[arg(long, value_name = "N")]
    generate: Option<usize>,
    /// Timed batches (after one untimed warm-up batch).
    #[arg(long, default_value_t = 20)]
    batches: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Decoding threads (ours) and DataLoader workers (torchvision); default: all cores.
    #[arg(long)]
    workers: Option<usize>,
    /// Time the evaluation transforms instead of the training ones.
    #[arg(long)]
    eval: bool,
    /// Alternating rounds (ours, torchvision); the median ratio is reported.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Python with torchvision for the reference (default $VIRTUAL_ENV/bin/python, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GCL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("gcl_repro={level},gcl_repro_cli={level}")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).without_time().init();
}

fn main() {
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
        Command::Bench(BenchCommand::Loader(a)) => {
            use gcl_repro::data::images::bench;
            let list = match (a.generate, a.list) {
                (Some(n), list) => {
                    let written = bench::generate_images(&a.root, n, 0)?;
                    list.unwrap_or(written)
                }
                (None, Some(list)) => list,
                (None, None) => anyhow::bail!("bench loader needs --list FILE, or --generate N to write a benchmark set"),
            };
            let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
            let spec = bench::LoaderBench {
                root: a.root,
                list,
                batches: a.batches,
                batch_size: a.batch_size,
                workers,
                train: !a.eval,
                repeats: a.repeats,
                python: a.python,
                script: None,
            };
            print!("{}", bench::run(&spec)?);
            Ok(())
        }
    }
}

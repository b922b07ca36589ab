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
    /// Timing benchmarks against reference implementations (not tests).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Our Barnes-Hut t-SNE against scikit-learn's TSNE on the same synthetic data.
    Tsne {
        /// Number of points (10 Gaussian clusters).
        #[arg(long, default_value_t = 10_000)]
        points: usize,
        /// Dimension of the points.
        #[arg(long, default_value_t = 64)]
        dim: usize,
        /// Threads for both implementations (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Python with scikit-learn (default: $VIRTUAL_ENV/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// The scikit-learn side of the benchmark.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_tsne_sklearn.py"))]
        script: PathBuf,
    },
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
        Command::Bench { what: BenchWhat::Tsne { points, dim, threads, python, script } } => {
            let python = python.unwrap_or_else(|| match std::env::var_os("VIRTUAL_ENV") {
                Some(v) => PathBuf::from(v).join("bin/python"),
                None => PathBuf::from("python3"),
            });
            let result = gcl_repro::tsne::bench_against_sklearn(points, dim, threads, &python, &script)?;
            println!("{result}");
            Ok(())
        }
    }
}

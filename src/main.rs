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
    }
}

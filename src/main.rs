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
    /// Check manifests: unknown keys, bad values, dangling references (with file:line:col).
    Validate {
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
    /// Show the run graph of manifests (what is cached, what would run, estimated cost);
    /// optionally write Slurm job scripts for it. Nothing is run.
    Plan(PlanArgs),
}

#[derive(clap::Args)]
struct PlanArgs {
    #[arg(required = true)]
    manifests: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "full")]
    scale: ScaleArg,
    /// Write job scripts: `--emit slurm DIR`.
    #[arg(long, num_args = 2, value_names = ["KIND", "DIR"])]
    emit: Option<Vec<String>>,
    /// Command of one Slurm task; placeholders {exe} {manifest} {key} {stage} {scale}
    /// {cache_dir} {data_root}. Default: `{exe} run {manifest} --only {key} ...`.
    #[arg(long, env = "GCL_SLURM_COMMAND")]
    slurm_command: Option<String>,
    /// Extra `#SBATCH` option for both job scripts (repeatable), e.g. --sbatch=--gres=gpu:1.
    #[arg(long = "sbatch", allow_hyphen_values = true)]
    sbatch: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScaleArg {
    Full,
    Smoke,
}

impl From<ScaleArg> for gcl_repro::config::Scale {
    fn from(s: ScaleArg) -> Self {
        match s {
            ScaleArg::Full => gcl_repro::config::Scale::Full,
            ScaleArg::Smoke => gcl_repro::config::Scale::Smoke,
        }
    }
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
        Command::Validate { manifests } => {
            let (text, ok) = gcl_repro::manifest::validate_files(&manifests);
            print!("{text}");
            if !ok {
                anyhow::bail!("invalid manifest(s), see above");
            }
            Ok(())
        }
        Command::Plan(args) => {
            let emit = match args.emit.as_deref() {
                None => None,
                Some([kind, dir]) if kind == "slurm" => Some(PathBuf::from(dir)),
                Some([kind, _]) => anyhow::bail!("unknown --emit kind `{kind}`; expected `--emit slurm DIR`"),
                Some(_) => unreachable!("clap takes two values"),
            };
            let options = gcl_repro::plan::PlanOptions {
                scale: args.scale.into(),
                cache_dir: cli.cache_dir,
                data_root: cli.data_root,
            };
            let plan = gcl_repro::plan::build(&args.manifests, &options)?;
            print!("{}", plan.render());
            if let Some(dir) = emit {
                let slurm = gcl_repro::plan::SlurmOptions { command: args.slurm_command, sbatch: args.sbatch };
                let written = gcl_repro::plan::emit_slurm(&plan, &options, &slurm, &dir)?;
                println!("wrote {} (submit with: bash {})", written.join(", "), dir.join("submit.sh").display());
            }
            Ok(())
        }
    }
}

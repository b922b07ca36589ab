//! `gcl-repro plan MANIFESTS`: the run graph (what is cached, what would run, the estimated
//! cost), and with `--emit slurm DIR` its job scripts. Nothing is run.
use super::{Context, OverrideArgs, ScaleArgs};
use anyhow::Result;
use gcl_repro::pipeline::plan;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    manifests: Vec<PathBuf>,
    #[command(flatten)]
    scale: ScaleArgs,
    /// Write job scripts: `--emit slurm DIR`.
    #[arg(long, num_args = 2, value_names = ["KIND", "DIR"])]
    emit: Option<Vec<String>>,
    /// Command of one Slurm task; placeholders {exe} {job} {key} {manifest} {stage} {scale}
    /// {cache_dir} {data_root} {seeds} (`--seeds N` when given, else nothing) {flags} (all of
    /// this plan's `--seeds` and `--set`): the last two for a command that re-expands the
    /// manifest, `run {manifest} --only {key} {flags}`. Default: `{exe} worker
    /// {job} ...` ({job}: the run's resolved settings, written into its partial directory).
    #[arg(long, env = "GCL_SLURM_COMMAND")]
    slurm_command: Option<String>,
    /// Extra `#SBATCH` option for both job scripts (repeatable), e.g. --sbatch=--gres=gpu:1.
    #[arg(long = "sbatch", allow_hyphen_values = true)]
    sbatch: Vec<String>,
    #[command(flatten)]
    overrides: OverrideArgs,
}

pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let emit = match args.emit.as_deref() {
        None => None,
        Some([kind, dir]) if kind == "slurm" => Some(PathBuf::from(dir)),
        Some([kind, _]) => anyhow::bail!("unknown --emit kind `{kind}`; expected `--emit slurm DIR`"),
        Some(_) => unreachable!("clap takes two values"),
    };
    let options = plan::PlanOptions {
        scale: args.scale.scale,
        cache_dir: ctx.cache_dir.clone(),
        data_root: ctx.data_root.clone(),
        overrides: args.overrides.get(),
        device_name: gcl_repro::device::device_name(ctx.device.resolve()?),
    };
    let plan = plan::build(&args.manifests, &options)?;
    print!("{}", plan.render());
    if let Some(dir) = emit {
        let slurm = plan::SlurmOptions { command: args.slurm_command, sbatch: args.sbatch };
        let written = plan::emit_slurm(&plan, &options, &slurm, &dir)?;
        println!("wrote {} (submit with: bash {})", written.join(", "), dir.join("submit.sh").display());
    }
    Ok(())
}

//! `gcl-repro run MANIFESTS`: train what the manifests need and the cache lacks.
use super::{Context, OverrideArgs, ScaleArgs};
use anyhow::{bail, Result};
use gcl_repro::device::DeviceChoice;
use gcl_repro::pipeline::{runner, RunGraph};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    pub manifests: Vec<PathBuf>,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Runs at once per device, as separate processes.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Several devices, comma-separated (e.g. cuda:0,cuda:1); overrides --device.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<DeviceChoice>,
    /// Train each run data-parallel over the --devices, one rank per device (`cpu,cpu`: two
    /// ranks on the CPU): the same as `--set data_parallel.ranks=N` for N devices (pass that to
    /// `report`), with rank r on the r-th device.
    #[arg(long, requires = "devices")]
    pub data_parallel: bool,
    /// Only these runs: a key or a unique key prefix (repeatable). A stage-2 run brings its stage-1 run.
    #[arg(long)]
    pub only: Vec<String>,
    /// Train again even if cached (replaces the cached result).
    #[arg(long)]
    pub force: bool,
    /// Wind down MINUTES after the start (fractions allowed): no run starts after it, and the runs
    /// in progress stop at the end of their current epoch, checkpointed (they resume on the next
    /// `run`). That epoch finishes after the deadline: leave one epoch's time to spare. Exits 0
    /// with a line counting the runs finished, wound down and never started.
    #[arg(long, value_name = "MINUTES")]
    pub deadline: Option<f64>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let deadline = args.deadline.map(runner::Deadline::in_minutes).transpose()?;
    train(args, ctx, deadline)
}

/// Train the runs `args` names under `deadline` (also `reproduce`'s first half); exits 130 when
/// interrupted, fails naming the failed and skipped runs.
pub fn train(args: Args, ctx: &Context, deadline: Option<runner::Deadline>) -> Result<()> {
    let mut overrides = args.overrides.get();
    let mut rank_devices = Vec::new();
    if args.data_parallel {
        if args.devices.len() < 2 {
            bail!("--data-parallel trains each run over the --devices, one rank per device: name two or more (e.g. --devices cuda:0,cuda:1, or cpu,cpu)");
        }
        let ranks = format!("data_parallel.ranks={}", args.devices.len());
        overrides.set.push(ranks.parse().map_err(|e: String| anyhow::anyhow!(e))?);
        rank_devices = args.devices.iter().map(|d| d.resolve()).collect::<Result<Vec<_>>>()?;
    }
    let graph = RunGraph::build(&args.manifests, args.scale.scale, &overrides, &ctx.data_root)?;
    let jobs = graph.select(&args.only)?;
    // Runs whose data is not here are reported as skipped, so the others still run.
    let unavailable: Vec<(String, String)> = if args.only.is_empty() {
        graph.unavailable.iter().map(|u| (u.label.clone(), u.reason.clone())).collect()
    } else {
        vec![]
    };
    // A data-parallel run holds every device at once: one run at a time, its ranks placed by
    // `rank_devices`.
    let devices = if args.devices.is_empty() { vec![ctx.device] } else { args.devices.clone() };
    let mut devices = devices.into_iter().map(|d| d.resolve()).collect::<Result<Vec<_>>>()?;
    if args.data_parallel {
        devices.truncate(1);
    }
    let opts = runner::Options {
        cache_dir: ctx.cache_dir.clone(),
        data_root: ctx.data_root.clone(),
        devices,
        jobs_per_device: args.jobs,
        force: args.force,
        deadline,
        rank_devices,
    };
    let stop = runner::install_stop_handler();
    let t = std::time::Instant::now();
    let mut summary = runner::execute(&jobs, &opts, &stop, &runner::Bars::default())?;
    summary.skipped.extend(unavailable);
    eprint!("{summary}");
    eprintln!("finished in {}", gcl_repro::human::duration(t.elapsed().as_secs_f64()));
    if summary.interrupted {
        std::process::exit(130);
    }
    if !summary.ok() {
        let done = summary.trained.len() + summary.cached.len();
        let rest = if done > 0 { format!("; the other {done} are cached") } else { String::new() };
        bail!("{} run(s) failed, {} skipped (see above){rest}", summary.failed.len(), summary.skipped.len());
    }
    Ok(())
}

//! The hidden `gcl-repro worker JOB`: one run planned by another process (`run --jobs N`, a run
//! at another CPU level, or a Slurm task), read from its job file (`pipeline::worker`).
use super::Context;
use anyhow::Result;
use gcl_repro::pipeline::runner;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The job file (`worker.json` in the run's partial directory).
    pub job: PathBuf,
    /// The parent's deadline: seconds since 1970 (a run wound down or not started by it exits
    /// with status 75).
    #[arg(long = "deadline-at")]
    pub deadline_at: Option<f64>,
}

pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let deadline = args.deadline_at.map(runner::Deadline::from_unix_seconds).transpose()?;
    let opts = runner::Options {
        cache_dir: ctx.cache_dir.clone(),
        data_root: ctx.data_root.clone(),
        devices: vec![ctx.device.resolve()?],
        jobs_per_device: 1,
        force: false,
        deadline,
        rank_devices: runner::rank_devices_from_env()?,
    };
    let stop = runner::install_stop_handler();
    match runner::run_worker(&args.job, &opts, &stop)? {
        runner::Outcome::WoundDown | runner::Outcome::NotStarted => std::process::exit(runner::WOUND_DOWN_EXIT),
        _ if stop.load(std::sync::atomic::Ordering::SeqCst) => std::process::exit(130),
        _ => Ok(()),
    }
}

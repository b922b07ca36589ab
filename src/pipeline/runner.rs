//! Executes runs: what is missing from the cache, in dependency order (stage 1 before the
//! stage-2 runs built on it), each under a lock so that concurrent runners never train the
//! same run twice, with an overall progress bar and a summary at the end.
//!
//! `--jobs N` runs N runs at once per device as separate processes (`gcl-repro run --only KEY`
//! children); with one job everything runs in this process.
//!
//! A [`Deadline`] (`--deadline MINUTES`) changes nothing before it comes. When it comes, this
//! process and every worker (each gets the same absolute time and arms its own) call
//! [`training::wind_down`]: a run in progress stops after the epoch it is in, checkpointed, and
//! stays in the cache's partial directory (it resumes on the next `run`, like after Ctrl-C); no
//! new run starts. The epoch in progress finishes *after* the deadline, so a caller with a hard
//! limit passes a deadline that leaves one epoch (plus start-up and the report) to spare.
use super::graph::{RunNode, Stage};
use crate::cache::{Cache, RunState};
use crate::data::Data;
use crate::device::device_label;
use crate::metrics::RunResult;
use crate::training::{self, Progress, RunEnv, TrainError};
use anyhow::{Context as _, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tch::Device;

pub struct Options {
    pub cache_dir: PathBuf,
    pub data_root: PathBuf,
    pub devices: Vec<Device>,
    pub jobs_per_device: usize,
    pub force: bool,
    /// Re-invocation of this binary for child processes (`--jobs` > 1): the manifest arguments.
    pub child_args: Vec<String>,
    /// When to wind down (passed on to the workers as an absolute time).
    pub deadline: Option<Deadline>,
}

/// The hidden `run` flag that hands a worker its parent's deadline, as seconds since the Unix
/// epoch.
pub const DEADLINE_AT_FLAG: &str = "--deadline-at";

/// Exit status of a worker whose run was wound down or not started by the deadline (its parent
/// reads the cache to tell which).
pub const WOUND_DOWN_EXIT: i32 = 75;

/// An absolute time at which every training winds down ([`training::wind_down`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deadline {
    at: SystemTime,
}

impl Deadline {
    /// `minutes` from now (`--deadline`); 0 is a deadline that has already come.
    pub fn in_minutes(minutes: f64) -> Result<Self> {
        anyhow::ensure!(minutes.is_finite() && minutes >= 0.0, "--deadline: {minutes} is not a number of minutes (0 or more)");
        Ok(Deadline { at: SystemTime::now() + Duration::from_secs_f64(minutes * 60.0) })
    }

    /// The deadline a parent passed (`--deadline-at`, seconds since the Unix epoch).
    pub fn from_unix_seconds(secs: f64) -> Result<Self> {
        anyhow::ensure!(secs.is_finite() && secs >= 0.0, "{DEADLINE_AT_FLAG}: {secs} is not a time (seconds since 1970)");
        Ok(Deadline { at: UNIX_EPOCH + Duration::from_secs_f64(secs) })
    }

    pub fn unix_seconds(&self) -> f64 {
        self.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    }

    /// Time left (zero once it has come).
    pub fn left(&self) -> Duration {
        self.at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
    }

    /// Wind down at the deadline: at once if it has come, else from a timer thread.
    pub fn arm(self) {
        let announce = || tracing::warn!("deadline reached: the runs in progress stop after their current epoch (checkpointed), no new run starts");
        if self.left().is_zero() {
            training::wind_down();
            announce();
            return;
        }
        std::thread::spawn(move || {
            // Short sleeps against the wall clock, so a long sleep never overshoots it.
            loop {
                let left = self.left();
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(500)));
            }
            training::wind_down();
            announce();
        });
    }
}

#[derive(Debug, Default)]
pub struct Summary {
    pub trained: Vec<String>,
    pub cached: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
    pub interrupted: bool,
    /// Stopped by the deadline after an epoch; they resume from their partial directory.
    pub wound_down: Vec<String>,
    /// Not started because the deadline had come.
    pub not_started: Vec<String>,
    /// The deadline came while this call ran.
    pub deadline_reached: bool,
}

impl Summary {
    pub fn print(&self) {
        eprintln!(
            "runs: {} trained, {} cached, {} failed, {} skipped{}",
            self.trained.len(),
            self.cached.len(),
            self.failed.len(),
            self.skipped.len(),
            if self.interrupted { " (interrupted: partial runs resume on the next `run`)" } else { "" }
        );
        for (label, why) in &self.failed {
            eprintln!("  failed  {label}: {why}");
        }
        for (label, why) in &self.skipped {
            eprintln!("  skipped {label}: {why}");
        }
        if self.deadline_reached {
            let finished = self.trained.len() + self.cached.len();
            let all = finished + self.failed.len() + self.skipped.len() + self.wound_down.len() + self.not_started.len();
            eprintln!(
                "deadline reached: {finished} of {all} runs finished ({} trained now, {} cached), {} wound down (partial: they resume on the next `run`), {} never started",
                self.trained.len(),
                self.cached.len(),
                self.wound_down.len(),
                self.not_started.len()
            );
            for label in &self.wound_down {
                eprintln!("  wound down {label}");
            }
        }
    }

    /// No failure, nothing skipped, not interrupted. Runs the deadline wound down or kept from
    /// starting are no failure: they resume (or start) on the next `run`.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.interrupted
    }
}

/// Run every job that is not cached. Stage-2 jobs wait for their parent; a failed parent
/// skips its children (with the reason in the summary).
pub fn execute(jobs: &[&RunNode], opts: &Options, stop: &Arc<AtomicBool>) -> Result<Summary> {
    let cache = Cache::open(&opts.cache_dir)?;
    if opts.force {
        for j in jobs {
            cache.remove(&j.key)?;
        }
    }
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(jobs.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("runs [{bar:30}] {pos}/{len} {msg} elapsed {elapsed} ETA {eta}").unwrap().progress_chars("=> "),
    );
    let mut summary = Summary::default();
    let mut failed_keys: HashSet<String> = HashSet::new();
    let mut pending: Vec<&RunNode> = jobs.to_vec();
    let slots = opts.devices.len() * opts.jobs_per_device.max(1);
    let mut running: Vec<(std::process::Child, &RunNode, Instant)> = Vec::new();
    let mut data_cache: HashMap<String, Arc<Data>> = HashMap::new();
    let status = |s: &Summary, running: usize| {
        format!("done {} · running {} · cached {} · failed {}", s.trained.len(), running, s.cached.len(), s.failed.len())
    };
    if let Some(d) = opts.deadline {
        d.arm();
    }
    while !pending.is_empty() || !running.is_empty() {
        if training::winding_down() {
            // The deadline has come: start nothing more; the workers running wind down themselves.
            summary.deadline_reached = true;
            for job in pending.drain(..) {
                if cache.state(&job.key) == RunState::Cached {
                    summary.cached.push(job.label());
                } else {
                    summary.not_started.push(job.label());
                }
                overall.inc(1);
            }
        }
        if stop.load(Ordering::SeqCst) {
            summary.interrupted = true;
            for (mut child, _, _) in running.drain(..) {
                // Children got the same SIGINT from the terminal; wait for their clean stop.
                let _ = child.wait();
            }
            break;
        }
        // Reap finished children.
        let mut i = 0;
        while i < running.len() {
            if let Some(st) = running[i].0.try_wait()? {
                let (_, job, _) = running.remove(i);
                if st.success() && cache.state(&job.key) == RunState::Cached {
                    summary.trained.push(job.label());
                } else if st.code() == Some(WOUND_DOWN_EXIT) {
                    failed_keys.insert(job.key.clone());
                    if cache.state(&job.key) == RunState::Partial {
                        summary.wound_down.push(job.label());
                    } else {
                        summary.not_started.push(job.label());
                    }
                } else {
                    failed_keys.insert(job.key.clone());
                    summary.failed.push((job.label(), format!("worker exited with {st}; see its log in {}", cache.partial_dir(&job.key).display())));
                }
                overall.inc(1);
            } else {
                i += 1;
            }
        }
        overall.set_message(status(&summary, running.len()));
        // Pick the next job whose parent is done.
        let mut progressed = false;
        let mut next = 0;
        while next < pending.len() {
            if training::winding_down() {
                break; // the top of the loop counts what is left as not started
            }
            if slots == 1 && !running.is_empty() {
                break; // one run at a time: wait for the child (a run at another CPU level)
            }
            let job = pending[next];
            if let Some(p) = job.parent() {
                if failed_keys.contains(p) {
                    pending.remove(next);
                    failed_keys.insert(job.key.clone());
                    summary.skipped.push((job.label(), format!("its stage-1 run {} failed", &p[..12])));
                    overall.inc(1);
                    progressed = true;
                    continue;
                }
                if cache.state(p) != RunState::Cached {
                    next += 1;
                    continue;
                }
            }
            if cache.state(&job.key) == RunState::Cached {
                pending.remove(next);
                summary.cached.push(job.label());
                overall.inc(1);
                progressed = true;
                continue;
            }
            if slots > 1 {
                if running.len() >= slots {
                    break;
                }
                // A child process per run; the lock inside the child keeps runners apart.
                let device = opts.devices[running.len() % opts.devices.len()];
                let child = spawn_child(opts, job, device)?;
                pending.remove(next);
                running.push((child, job, Instant::now()));
                progressed = true;
                continue;
            }
            // A CPU run that pins another kernel level than this process holds trains in a child
            // process (a process has one level, fixed at its first tensor operation).
            let device = opts.devices[0];
            if device == Device::Cpu {
                match crate::numerics::claim(job.spec.cpu.isa) {
                    Ok(true) => {}
                    Ok(false) => {
                        let child = spawn_child(opts, job, device)?;
                        pending.remove(next);
                        running.push((child, job, Instant::now()));
                        progressed = true;
                        continue;
                    }
                    Err(e) => {
                        pending.remove(next);
                        failed_keys.insert(job.key.clone());
                        summary.failed.push((format!("{} ({})", job.label(), job.short()), format!("{e:#}")));
                        overall.inc(1);
                        progressed = true;
                        continue;
                    }
                }
            }
            let Some(lock) = cache.try_lock(&job.key)? else {
                next += 1; // another process trains it; come back later
                continue;
            };
            pending.remove(next);
            progressed = true;
            if cache.state(&job.key) == RunState::Cached {
                summary.cached.push(job.label());
                overall.inc(1);
                continue;
            }
            let outcome = run_one(job, &cache, opts, opts.devices[0], &multi, stop, &mut data_cache);
            drop(lock);
            match outcome {
                Ok(_) => summary.trained.push(job.label()),
                Err(e) if matches!(e.downcast_ref::<TrainError>(), Some(TrainError::Interrupted)) => {
                    summary.interrupted = true;
                    overall.abandon();
                    return Ok(summary);
                }
                Err(e) if matches!(e.downcast_ref::<TrainError>(), Some(TrainError::WoundDown { .. })) => {
                    // Like Ctrl-C, the partial run stays and resumes; the loop starts nothing more.
                    failed_keys.insert(job.key.clone());
                    summary.wound_down.push(job.label());
                }
                Err(e) => {
                    failed_keys.insert(job.key.clone());
                    tracing::error!("{} ({}) failed: {e:#}", job.label(), job.short());
                    summary.failed.push((format!("{} ({})", job.label(), job.short()), format!("{e:#}")));
                }
            }
            overall.inc(1);
            overall.set_message(status(&summary, running.len()));
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    overall.finish_and_clear();
    summary.deadline_reached |= training::winding_down();
    Ok(summary)
}

fn spawn_child(opts: &Options, job: &RunNode, device: Device) -> Result<std::process::Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .args(&opts.child_args)
        .args(["--only", &job.key, "--jobs", "1", "--device", &device_label(device)])
        .arg("--cache-dir")
        .arg(&opts.cache_dir)
        .arg("--data-root")
        .arg(&opts.data_root)
        .args(opts.deadline.map(|d| [DEADLINE_AT_FLAG.to_string(), format!("{:.3}", d.unix_seconds())]).into_iter().flatten())
        .arg("--quiet")
        .env(crate::numerics::CHILD_ENV, "1")
        .stdin(std::process::Stdio::null());
    if device.is_cuda() && opts.jobs_per_device > 1 && std::env::var_os(crate::device::MEMORY_SHARE_ENV).is_none() {
        // Each worker on a shared GPU gets an equal part of its memory (device::memory_share).
        cmd.env(crate::device::MEMORY_SHARE_ENV, crate::device::memory_share(opts.jobs_per_device).to_string());
    }
    cmd.spawn().context("starting a worker process")
}

/// Train one job in this process and publish it in the cache.
fn run_one(
    job: &RunNode,
    cache: &Cache,
    opts: &Options,
    device: Device,
    multi: &MultiProgress,
    stop: &Arc<AtomicBool>,
    data_cache: &mut HashMap<String, Arc<Data>>,
) -> Result<RunResult> {
    training::check_spec(&job.spec)?;
    crate::numerics::set_threads(job.spec.cpu.threads);
    let data = match data_cache.get(&job.data_identity) {
        Some(d) => d.clone(),
        None => {
            let d = Arc::new(crate::data::load_any(&job.spec.dataset, &opts.data_root)?);
            data_cache.insert(job.data_identity.clone(), d.clone());
            d
        }
    };
    let observer = Progress::new(format!("{} [{}]", job.label(), job.short()), Some(multi));
    let ctx = RunEnv { device, dir: cache.partial_dir(&job.key), stop, observer: &observer };
    // `model.pretrained` is a path under the data root (the key holds it as written).
    let mut spec = job.spec.clone();
    if let Some(p) = &spec.model.pretrained {
        spec.model.pretrained = Some(opts.data_root.join(p).to_string_lossy().into_owned());
    }
    let mut result = match &job.stage {
        Stage::Two { parent } => training::run_stage2(&spec, &data, &job.key, parent, &cache.run_dir(parent), &ctx)?,
        Stage::One => training::run_stage1(&spec, &data, &job.key, &ctx)?,
    };
    result.provenance.device = device_label(device);
    result.provenance.device_name = device_name(device);
    result.provenance.cuda = tch::Cuda::is_available().then(|| "available".to_string());
    let spec_toml = toml::to_string(&job.spec).context("serialising the resolved spec")?;
    cache.commit(&job.key, &result, &spec_toml, &job.key_material())?;
    Ok(result)
}

pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => crate::doctor::gpu_name(i),
        _ => crate::device::cpu_name(),
    }
}

/// Install a Ctrl-C handler that asks running training to stop after the current step.
pub fn install_stop_handler() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // a second Ctrl-C: stop now
        }
        eprintln!("\nstopping after the current step (Ctrl-C again to quit at once)...");
    });
    stop
}

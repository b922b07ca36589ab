//! Executes runs: what is missing from the cache, in dependency order (stage 1 before the
//! stage-2 runs built on it), each under a lock so that concurrent runners never train the
//! same run twice, with an overall progress bar and a summary at the end.
//!
//! The [`Scheduler`] (`schedule.rs`) decides what runs next; this module executes it: in this
//! process, or with `--jobs N` as N worker processes per device, each handed its resolved run
//! through `worker.rs` (`gcl-repro worker FILE`). Progress goes to a [`RunObserver`].
//!
//! A [`Deadline`] (`--deadline MINUTES`) changes nothing before it comes. When it comes, this
//! process and every worker (each gets the same absolute time and arms its own) call
//! [`training::wind_down`]: a run in progress stops after the epoch it is in, checkpointed, and
//! stays in the cache's partial directory (it resumes on the next `run`, like after Ctrl-C); no
//! new run starts. The epoch in progress finishes *after* the deadline, so a caller with a hard
//! limit passes a deadline that leaves one epoch (plus start-up and the report) to spare.
use super::graph::{RunNode, RunStage};
use super::schedule::{Decision, Scheduler};
use super::worker;
use crate::cache::{Cache, RunState};
use crate::data::Data;
use crate::device::{device_label, device_name};
use crate::metrics::RunResult;
use crate::training::{self, Progress, RunEnv, TrainError};
use anyhow::{Context as _, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tch::Device;

pub struct Options {
    pub cache_dir: PathBuf,
    pub data_root: PathBuf,
    pub devices: Vec<Device>,
    pub jobs_per_device: usize,
    pub force: bool,
    /// When to wind down (passed on to the workers as an absolute time).
    pub deadline: Option<Deadline>,
    /// `run --data-parallel`: the device of each rank of a data-parallel run (passed on to its
    /// workers in [`RANK_DEVICES_ENV`]); empty: `launch::device_of_rank`.
    pub rank_devices: Vec<Device>,
}

/// The environment variable that hands a data-parallel worker its ranks' devices
/// (comma-separated, as `--devices` takes them).
pub const RANK_DEVICES_ENV: &str = "GCL_RANK_DEVICES";

/// The ranks' devices a parent runner passed on ([`RANK_DEVICES_ENV`]).
pub fn rank_devices_from_env() -> Result<Vec<Device>> {
    let Ok(list) = std::env::var(RANK_DEVICES_ENV) else { return Ok(Vec::new()) };
    list.split(',')
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<crate::device::DeviceChoice>().map_err(|e| anyhow::anyhow!("{RANK_DEVICES_ENV}: {e}"))?.resolve()
        })
        .collect()
}

/// The hidden flag of the `worker` command that hands a worker its parent's deadline, as
/// seconds since the Unix epoch.
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
        anyhow::ensure!(
            minutes.is_finite() && minutes >= 0.0,
            "--deadline: {minutes} is not a number of minutes (0 or more)"
        );
        Ok(Deadline { at: SystemTime::now() + Duration::from_secs_f64(minutes * 60.0) })
    }

    /// The deadline a parent passed (`--deadline-at`, seconds since the Unix epoch).
    pub fn from_unix_seconds(secs: f64) -> Result<Self> {
        anyhow::ensure!(
            secs.is_finite() && secs >= 0.0,
            "{DEADLINE_AT_FLAG}: {secs} is not a time (seconds since 1970)"
        );
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
        let announce = || {
            tracing::warn!("deadline reached: the runs in progress stop after their current epoch (checkpointed), no new run starts")
        };
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

/// The end-of-run lines (the command prints them).
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "runs: {} trained, {} cached, {} failed, {} skipped{}",
            self.trained.len(),
            self.cached.len(),
            self.failed.len(),
            self.skipped.len(),
            if self.interrupted { " (interrupted: partial runs resume on the next `run`)" } else { "" }
        )?;
        for (label, why) in &self.failed {
            writeln!(f, "  failed  {label}: {why}")?;
        }
        for (label, why) in &self.skipped {
            writeln!(f, "  skipped {label}: {why}")?;
        }
        if self.deadline_reached {
            let finished = self.trained.len() + self.cached.len();
            let all =
                finished + self.failed.len() + self.skipped.len() + self.wound_down.len() + self.not_started.len();
            writeln!(
                f,
                "deadline reached: {finished} of {all} runs finished ({} trained now, {} cached), {} wound down (partial: they resume on the next `run`), {} never started",
                self.trained.len(),
                self.cached.len(),
                self.wound_down.len(),
                self.not_started.len()
            )?;
            for label in &self.wound_down {
                writeln!(f, "  wound down {label}")?;
            }
        }
        Ok(())
    }
}

impl Summary {
    /// No failure, nothing skipped, not interrupted. Runs the deadline wound down or kept from
    /// starting are no failure: they resume (or start) on the next `run`.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.interrupted
    }

    /// Record what became of a run, and tell the observer.
    fn record(&mut self, observer: &dyn RunObserver, job: &RunNode, outcome: Outcome) {
        let label = job.label();
        match &outcome {
            Outcome::Trained => self.trained.push(label),
            Outcome::Cached => self.cached.push(label),
            Outcome::Failed(why) => self.failed.push((format!("{label} ({})", job.short()), why.clone())),
            Outcome::Skipped(why) => self.skipped.push((label, why.clone())),
            Outcome::WoundDown => self.wound_down.push(label),
            Outcome::NotStarted => self.not_started.push(label),
        }
        observer.finished(job, &outcome, self);
    }
}

/// What became of one run.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Trained,
    Cached,
    Failed(String),
    Skipped(String),
    /// Stopped by the deadline after an epoch (it resumes from its partial directory).
    WoundDown,
    /// Not started: the deadline had come.
    NotStarted,
}

/// What the runner reports while it works: the overall progress and each run's training
/// (a terminal's bars, or nothing).
pub trait RunObserver {
    /// `runs` runs are planned.
    fn begin(&self, _runs: usize) {}
    /// A run starts training in this process or in a worker.
    fn started(&self, _job: &RunNode) {}
    /// A run ended (`summary` holds everything so far).
    fn finished(&self, _job: &RunNode, _outcome: &Outcome, _summary: &Summary) {}
    /// The call ends.
    fn end(&self) {}
    /// The observer of one training in this process.
    fn training<'a>(&'a self, _job: &RunNode) -> Box<dyn training::Observer + 'a> {
        Box::new(training::Silent)
    }
}

/// No output (tests; workers, whose parent shows the progress).
pub struct Quiet;

impl RunObserver for Quiet {}

/// The terminal's view: an overall bar (runs done, running, cached, failed, ETA) above one
/// bar per training.
pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: std::cell::Cell<usize>,
}

impl Default for Bars {
    fn default() -> Self {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("runs [{bar:30}] {pos}/{len} {msg} elapsed {elapsed} ETA {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        Bars { multi, overall, running: std::cell::Cell::new(0) }
    }
}

impl RunObserver for Bars {
    fn begin(&self, runs: usize) {
        self.overall.set_length(runs as u64);
    }

    fn started(&self, _job: &RunNode) {
        self.running.set(self.running.get() + 1);
    }

    fn finished(&self, _job: &RunNode, outcome: &Outcome, s: &Summary) {
        if matches!(outcome, Outcome::Trained | Outcome::Failed(_) | Outcome::WoundDown) {
            self.running.set(self.running.get().saturating_sub(1));
        }
        self.overall.inc(1);
        let running = self.running.get();
        self.overall.set_message(format!(
            "done {} · running {running} · cached {} · failed {}",
            s.trained.len(),
            s.cached.len(),
            s.failed.len()
        ));
    }

    fn end(&self) {
        self.overall.finish_and_clear();
    }

    fn training<'a>(&'a self, job: &RunNode) -> Box<dyn training::Observer + 'a> {
        Box::new(Progress::new(format!("{} [{}]", job.label(), job.short()), Some(&self.multi)))
    }
}

/// Where a run trains: in this process, or in a worker process (`gcl-repro worker`).
enum Placement {
    Here,
    Worker(Device),
}

/// Run every job that is not cached: the [`Scheduler`] decides what comes next, this loop
/// places each started run in this process or in a worker and reaps the workers.
pub fn execute(
    jobs: &[&RunNode],
    opts: &Options,
    stop: &Arc<AtomicBool>,
    observer: &dyn RunObserver,
) -> Result<Summary> {
    let cache = Cache::open(&opts.cache_dir)?;
    if opts.force {
        for j in jobs {
            cache.remove(&j.key)?;
        }
    }
    observer.begin(jobs.len());
    if let Some(d) = opts.deadline {
        d.arm();
    }
    let mut ex = Execution {
        cache: &cache,
        opts,
        stop,
        observer,
        scheduler: Scheduler::new(jobs),
        slots: opts.devices.len() * opts.jobs_per_device.max(1),
        workers: Vec::new(),
        data_cache: HashMap::new(),
        summary: Summary::default(),
    };
    while !ex.scheduler.is_done() || !ex.workers.is_empty() {
        if training::winding_down() {
            ex.drain_not_started();
        }
        if stop.load(Ordering::SeqCst) {
            ex.summary.interrupted = true;
            for (mut child, _) in ex.workers.drain(..) {
                // Children got the same SIGINT from the terminal; wait for their clean stop.
                let _ = child.wait();
            }
            break;
        }
        let reaped = reap(&mut ex.workers, &cache, &mut ex.scheduler, &mut ex.summary, observer)?;
        let progressed = match ex.start_ready()? {
            Pass::Interrupted => {
                ex.summary.interrupted = true;
                observer.end();
                return Ok(ex.summary);
            }
            Pass::Idle => reaped,
            Pass::Progressed => true,
            Pass::Blocked => false,
        };
        if !progressed {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    observer.end();
    ex.summary.deadline_reached |= training::winding_down();
    Ok(ex.summary)
}

/// The state of one [`execute`]: the queue, the workers running and what has been recorded.
struct Execution<'a> {
    cache: &'a Cache,
    opts: &'a Options,
    stop: &'a Arc<AtomicBool>,
    observer: &'a dyn RunObserver,
    scheduler: Scheduler<'a>,
    /// Runs that may train at once (devices x jobs per device).
    slots: usize,
    workers: Vec<(std::process::Child, &'a RunNode)>,
    /// Datasets loaded by runs trained in this process, by identity.
    data_cache: HashMap<String, Rc<Data>>,
    summary: Summary,
}

/// What one pass over the runs ready to start did.
enum Pass {
    /// Nothing was ready.
    Idle,
    /// Runs were started, trained, found cached or skipped.
    Progressed,
    /// A run is locked by another process: it went back to the queue, to be tried again later.
    Blocked,
    /// Ctrl-C stopped the run trained here.
    Interrupted,
}

impl<'a> Execution<'a> {
    /// The deadline (or SIGUSR1) has come: start nothing more; the workers running wind down
    /// themselves.
    fn drain_not_started(&mut self) {
        self.summary.deadline_reached = true;
        for job in self.scheduler.drain() {
            let outcome =
                if self.cache.state(&job.key) == RunState::Cached { Outcome::Cached } else { Outcome::NotStarted };
            self.summary.record(self.observer, job, outcome);
        }
    }

    /// Starts (or records) every run the scheduler hands out until it says wait.
    fn start_ready(&mut self) -> Result<Pass> {
        let mut pass = Pass::Idle;
        loop {
            // One run at a time when there is one slot (a worker at another CPU level included).
            let free = if self.slots == 1 { self.workers.is_empty() } else { self.workers.len() < self.slots };
            let cache = self.cache;
            let job = match self.scheduler.next(&|key: &str| cache.state(key), free && !training::winding_down()) {
                Decision::Start(job) => job,
                Decision::Cached(job) => {
                    self.summary.record(self.observer, job, Outcome::Cached);
                    pass = Pass::Progressed;
                    continue;
                }
                Decision::Skip(job, why) => {
                    self.summary.record(self.observer, job, Outcome::Skipped(why));
                    pass = Pass::Progressed;
                    continue;
                }
                Decision::Wait | Decision::Done => return Ok(pass),
            };
            pass = Pass::Progressed;
            match place(job, self.opts, self.slots, self.workers.len()) {
                Err(e) => {
                    self.scheduler.failed(&job.key);
                    self.summary.record(self.observer, job, Outcome::Failed(format!("{e:#}")));
                }
                Ok(Placement::Worker(device)) => {
                    self.observer.started(job);
                    self.workers.push((spawn_worker(self.opts, self.cache, job, device)?, job));
                }
                Ok(Placement::Here) => match self.train_here(job)? {
                    Pass::Progressed => {}
                    other => return Ok(other),
                },
            }
        }
    }

    /// Trains `job` in this process, holding its lock; `Blocked` when another process holds it.
    fn train_here(&mut self, job: &'a RunNode) -> Result<Pass> {
        let Some(lock) = self.cache.try_lock(&job.key)? else {
            self.scheduler.requeue(job); // another process trains it; come back later
            return Ok(Pass::Blocked);
        };
        if self.cache.state(&job.key) == RunState::Cached {
            self.summary.record(self.observer, job, Outcome::Cached);
            return Ok(Pass::Progressed);
        }
        self.observer.started(job);
        let training = self.observer.training(job);
        let device = self.opts.devices[0];
        let result = run_one(job, self.cache, self.opts, device, self.stop, &mut self.data_cache, training.as_ref());
        drop(training);
        drop(lock);
        let outcome = match result {
            Ok(_) => Outcome::Trained,
            Err(e) => match e.downcast_ref::<TrainError>() {
                Some(TrainError::Interrupted) => return Ok(Pass::Interrupted),
                // Like Ctrl-C, the partial run stays and resumes; nothing more starts: the runs
                // built on it are drained as not started, not skipped.
                Some(TrainError::WoundDown { .. }) => Outcome::WoundDown,
                _ => {
                    self.scheduler.failed(&job.key);
                    tracing::error!("{} ({}) failed: {e:#}", job.label(), job.short());
                    Outcome::Failed(format!("{e:#}"))
                }
            },
        };
        self.summary.record(self.observer, job, outcome);
        Ok(Pass::Progressed)
    }
}

/// Where a started run trains: with several slots always in a worker (round-robin over the
/// devices); with one, here, unless it is a CPU run pinned to another kernel level than this
/// process holds (a process has one level, fixed at its first tensor operation).
fn place(job: &RunNode, opts: &Options, slots: usize, running: usize) -> Result<Placement> {
    if slots > 1 {
        return Ok(Placement::Worker(opts.devices[running % opts.devices.len()]));
    }
    let device = opts.devices[0];
    if !job.spec.data_parallel.is_single() {
        // Its ranks are processes of their own (`launch`), this one stays out of the group.
        return Ok(Placement::Worker(device));
    }
    if device == Device::Cpu && !crate::numerics::claim(job.spec.cpu.isa)? {
        return Ok(Placement::Worker(device));
    }
    Ok(Placement::Here)
}

/// Collect the workers that ended; whether any did.
fn reap<'a>(
    workers: &mut Vec<(std::process::Child, &'a RunNode)>,
    cache: &Cache,
    scheduler: &mut Scheduler<'a>,
    summary: &mut Summary,
    observer: &dyn RunObserver,
) -> Result<bool> {
    let mut any = false;
    let mut i = 0;
    while i < workers.len() {
        let Some(status) = workers[i].0.try_wait()? else {
            i += 1;
            continue;
        };
        let (_, job) = workers.remove(i);
        any = true;
        let outcome = if status.success() && cache.state(&job.key) == RunState::Cached {
            Outcome::Trained
        } else if status.code() == Some(WOUND_DOWN_EXIT) {
            if cache.state(&job.key) == RunState::Partial {
                Outcome::WoundDown
            } else {
                Outcome::NotStarted
            }
        } else {
            Outcome::Failed(format!(
                "worker exited with {status}; see its log in {}",
                cache.partial_dir(&job.key).display()
            ))
        };
        match outcome {
            Outcome::Failed(_) => scheduler.failed(&job.key),
            // A worker wound down (its deadline or a SIGUSR1 to the group): so does this process,
            // and the runs built on it are drained as not started, not skipped.
            Outcome::WoundDown | Outcome::NotStarted => training::wind_down(),
            _ => {}
        }
        summary.record(observer, job, outcome);
    }
    Ok(any)
}

/// Start a worker for `job`: its resolved run goes into its partial directory (the worker's
/// only input besides where the cache and the data are), then `gcl-repro worker FILE`.
fn spawn_worker(opts: &Options, cache: &Cache, job: &RunNode, device: Device) -> Result<std::process::Child> {
    let job_file = worker::write_job(cache, job)?;
    let mut cmd = worker_command(opts, &job_file, device)?;
    if device.is_cuda() && opts.jobs_per_device > 1 && std::env::var_os(crate::device::MEMORY_SHARE_ENV).is_none() {
        // Each worker on a shared GPU gets an equal part of its memory (device::memory_share).
        cmd.env(crate::device::MEMORY_SHARE_ENV, crate::device::memory_share(opts.jobs_per_device).to_string());
    }
    cmd.spawn().context("starting a worker process")
}

/// `gcl-repro worker JOB_FILE` on `device`, with this process's cache, data and deadline.
fn worker_command(opts: &Options, job_file: &Path, device: Device) -> Result<std::process::Command> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("worker")
        .arg(job_file)
        .args(["--device", &device_label(device)])
        .arg("--cache-dir")
        .arg(&opts.cache_dir)
        .arg("--data-root")
        .arg(&opts.data_root)
        .args(
            opts.deadline
                .map(|d| [DEADLINE_AT_FLAG.to_string(), format!("{:.3}", d.unix_seconds())])
                .into_iter()
                .flatten(),
        )
        .arg("--quiet")
        .env(crate::numerics::CHILD_ENV, "1")
        .stdin(std::process::Stdio::null());
    if !opts.rank_devices.is_empty() {
        cmd.env(RANK_DEVICES_ENV, opts.rank_devices.iter().map(|d| device_label(*d)).collect::<Vec<_>>().join(","));
    }
    Ok(cmd)
}

/// `gcl-repro worker FILE`: train the run of a job file in this process (locked, so two workers
/// never train one run) and publish it. The outcome decides the exit status: 0 trained or
/// cached, [`WOUND_DOWN_EXIT`] wound down or not started, an error otherwise.
pub fn run_worker(job_file: &Path, opts: &Options, stop: &Arc<AtomicBool>) -> Result<Outcome> {
    let job = worker::read_job(job_file)?;
    let cache = Cache::open(&opts.cache_dir)?;
    if let Some(d) = opts.deadline {
        d.arm();
    }
    if training::winding_down() {
        return Ok(Outcome::NotStarted);
    }
    // A worker is a fresh process: it holds no kernel level yet, so the run's level must be its.
    anyhow::ensure!(
        crate::numerics::claim(job.spec.cpu.isa)?,
        "{}: this worker already holds another CPU kernel level than the run's {:?}",
        job_file.display(),
        job.spec.cpu.isa
    );
    if !job.spec.data_parallel.is_single() {
        return run_rank(job_file, &job, &cache, opts, stop);
    }
    let lock = loop {
        if cache.state(&job.key) == RunState::Cached {
            return Ok(Outcome::Cached);
        }
        match cache.try_lock(&job.key)? {
            Some(lock) => break lock,
            None => std::thread::sleep(Duration::from_millis(500)), // another runner has it
        }
    };
    if cache.state(&job.key) == RunState::Cached {
        return Ok(Outcome::Cached);
    }
    let result = run_one(&job, &cache, opts, opts.devices[0], stop, &mut HashMap::new(), &training::Silent);
    drop(lock);
    outcome_of(result)
}

fn outcome_of(result: Result<RunResult>) -> Result<Outcome> {
    match result {
        Ok(_) => Ok(Outcome::Trained),
        Err(e) if matches!(e.downcast_ref::<TrainError>(), Some(TrainError::WoundDown { .. })) => {
            Ok(Outcome::WoundDown)
        }
        Err(e) => Err(e),
    }
}

/// One rank of a data-parallel run (`distributed`, `training::ranks`). Without a rendezvous in
/// its environment this worker is rank 0 of a run on this host and starts the other ranks
/// (`launch`). Every rank joins the group; rank 0 alone locks the run, decides (cached or to
/// train) for all, trains and publishes it; the others train beside it and write nothing.
fn run_rank(job_file: &Path, job: &RunNode, cache: &Cache, opts: &Options, stop: &Arc<AtomicBool>) -> Result<Outcome> {
    let device = opts.devices[0];
    let (rendezvous, siblings) = match crate::distributed::Rendezvous::from_env()? {
        Some(r) => (r, None),
        None => {
            let world = job.spec.data_parallel.ranks;
            let (r, s) = super::launch::start_siblings(world, device, &opts.rank_devices, |d| {
                worker_command(opts, job_file, d).expect("the worker command was built before")
            })?;
            (r, Some(s))
        }
    };
    anyhow::ensure!(
        rendezvous.world == job.spec.data_parallel.ranks,
        "{}: WORLD_SIZE is {} but the run has data_parallel.ranks = {}",
        job_file.display(),
        rendezvous.world,
        job.spec.data_parallel.ranks
    );
    let sync = job.spec.data_parallel.batchnorm == crate::distributed::BatchNormSync::Sync;
    let trained = crate::distributed::Group::join(&rendezvous, sync)
        .and_then(crate::distributed::install)
        .and_then(|group| train_as_rank(job, cache, opts, stop, group));
    match (trained, siblings) {
        (Ok(outcome), Some(s)) => s.wait().map(|()| outcome),
        (Err(e), Some(s)) => {
            s.kill();
            Err(e)
        }
        (result, None) => result,
    }
}

/// Rank 0 decides for every rank whether the run is still to train (another runner may have
/// finished it); then all train it.
fn train_as_rank(
    job: &RunNode,
    cache: &Cache,
    opts: &Options,
    stop: &Arc<AtomicBool>,
    group: &crate::distributed::Group,
) -> Result<Outcome> {
    let mut lock = None;
    let mut cached = [0.0];
    if group.rank == 0 {
        lock = Some(loop {
            match cache.try_lock(&job.key)? {
                Some(lock) => break lock,
                None => std::thread::sleep(Duration::from_millis(500)),
            }
        });
        cached[0] = f64::from(u8::from(cache.state(&job.key) == RunState::Cached));
    }
    group.sum(&mut cached)?;
    if cached[0] > 0.0 {
        return Ok(Outcome::Cached);
    }
    let result = run_one(job, cache, opts, opts.devices[0], stop, &mut HashMap::new(), &training::Silent);
    drop(lock);
    outcome_of(result)
}

/// Train one job in this process and publish it in the cache.
fn run_one(
    job: &RunNode,
    cache: &Cache,
    opts: &Options,
    device: Device,
    stop: &Arc<AtomicBool>,
    data_cache: &mut HashMap<String, Rc<Data>>,
    observer: &dyn training::Observer,
) -> Result<RunResult> {
    training::check_spec(&job.spec)?;
    crate::numerics::set_threads(job.spec.cpu.threads);
    let data = match data_cache.get(&job.data_identity) {
        Some(d) => d.clone(),
        None => {
            let d = Rc::new(crate::data::load_any(&job.spec.dataset, &opts.data_root)?);
            data_cache.insert(job.data_identity.clone(), d.clone());
            d
        }
    };
    let spec_toml = toml::to_string(&job.spec).context("serialising the resolved spec")?;
    // A data-parallel run's rank 0 writes the cache; the other ranks only read it (resume).
    let writes = training::ranks::Ranks::of_process().writes();
    if writes {
        cache.begin(&job.key, &spec_toml, &job.key_material())?;
    }
    let ctx = RunEnv { device, dir: cache.partial_dir(&job.key), stop, observer };
    // `model.pretrained` is a path under the data root (the key holds it as written).
    let mut spec = job.spec.clone();
    if let Some(p) = &spec.model.pretrained {
        spec.model.pretrained = Some(opts.data_root.join(p).to_string_lossy().into_owned());
    }
    let mut result = match &job.stage {
        RunStage::Two { parent } => training::run_stage2(&spec, &data, &job.key, parent, &cache.run_dir(parent), &ctx)?,
        RunStage::One => training::run_stage1(&spec, &data, &job.key, &ctx)?,
    };
    result.provenance.device = device_label(device);
    result.provenance.device_name = device_name(device);
    result.provenance.cuda = tch::Cuda::is_available().then(|| "available".to_string());
    if writes {
        let _ = std::fs::remove_file(cache.partial_dir(&job.key).join(worker::JOB_FILE));
        cache.commit(&job.key, &result, &spec_toml, &job.key_material())?;
    }
    Ok(result)
}

/// SIGUSR1 winds this process down like a deadline that has come ([`training::wind_down`]): the
/// run in progress stops after its current epoch, checkpointed, and nothing new starts. It is
/// what a preemptible scheduler sends before it takes the machine (Slurm's `--signal=USR1@300`)
/// and what `scripts/campaign.sh save` sends; a worker gets it with its process group. `main`
/// installs it before anything else.
pub fn install_wind_down_signal() {
    extern "C" fn on_usr1(_: libc::c_int) {
        // An atomic store: safe in a signal handler.
        training::wind_down();
    }
    // SAFETY: the handler only stores to an atomic; `signal` is called before any other thread
    // could race on the disposition.
    unsafe {
        libc::signal(libc::SIGUSR1, on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t);
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
        tracing::warn!("stopping after the current step (Ctrl-C again to quit at once)...");
    });
    stop
}

//! Manifests and runs: `validate`, `plan`, `run`, `cache`, `reproduce`.
use anyhow::{bail, Context, Result};
use gcl_repro::cache::{commands, Cache};
use gcl_repro::config::Scale;
use gcl_repro::device::DeviceChoice;
use gcl_repro::manifest;
use gcl_repro::runner::{self, Job};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct PlanArgs {
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
pub enum ScaleArg {
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


pub fn plan(args: PlanArgs, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
        let emit = match args.emit.as_deref() {
            None => None,
            Some([kind, dir]) if kind == "slurm" => Some(PathBuf::from(dir)),
            Some([kind, _]) => anyhow::bail!("unknown --emit kind `{kind}`; expected `--emit slurm DIR`"),
            Some(_) => unreachable!("clap takes two values"),
        };
        let options = gcl_repro::plan::PlanOptions {
            scale: args.scale.into(),
            cache_dir,
            data_root,
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

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(required = true)]
    pub manifests: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "full")]
    pub scale: ScaleArg,
    /// Runs at once per device, as separate processes.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Several devices, comma-separated (e.g. cuda:0,cuda:1); overrides --device.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<DeviceChoice>,
    /// Only these runs: a key or a unique key prefix (repeatable). A stage-2 run brings its stage-1 run.
    #[arg(long)]
    pub only: Vec<String>,
    /// Train again even if cached (replaces the cached result).
    #[arg(long)]
    pub force: bool,
}

/// The jobs of manifests at a scale: stage-1 runs once each, then stage-2 runs.
pub fn manifest_jobs(paths: &[PathBuf], scale: Scale, data_root: &Path) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for path in paths {
        let m = manifest::load(path)?;
        for cell in manifest::expand(&m, scale, data_root)? {
            for run in &cell.runs {
                let identity = gcl_repro::data::identity(&run.spec.dataset, data_root)
                    .with_context(|| format!("{}: cell {}", path.display(), cell.id()))?;
                let label = format!("{}:{}/s{}", m.name, cell.id(), run.seed);
                let js = Job::from_spec(&run.spec, &identity, &label);
                debug_assert_eq!(js[0].key, run.stage1_key);
                jobs.extend(js);
            }
        }
    }
    // Stage-1 runs first: stage-2 runs wait for them anyway.
    jobs.sort_by_key(|j| j.stage);
    Ok(runner::dedup(jobs))
}

/// Keep the jobs named by --only (key prefixes), plus the stage-1 parents of chosen stage-2 runs.
fn select(jobs: Vec<Job>, only: &[String]) -> Result<Vec<Job>> {
    if only.is_empty() {
        return Ok(jobs);
    }
    let mut keep: HashSet<String> = HashSet::new();
    for prefix in only {
        let hits: Vec<&Job> = jobs.iter().filter(|j| j.key.starts_with(prefix.as_str())).collect();
        match hits.len() {
            0 => bail!("--only {prefix}: no run of these manifests has such a key (see `gcl-repro plan`)"),
            1 => {
                keep.insert(hits[0].key.clone());
                if let Some(p) = &hits[0].parent {
                    keep.insert(p.clone());
                }
            }
            n => bail!("--only {prefix}: {n} runs match; give more characters of the key"),
        }
    }
    Ok(jobs.into_iter().filter(|j| keep.contains(&j.key)).collect())
}

pub fn run(args: RunArgs, device: DeviceChoice, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let jobs = select(manifest_jobs(&args.manifests, args.scale.into(), &data_root)?, &args.only)?;
    let devices = if args.devices.is_empty() { vec![device] } else { args.devices.clone() };
    let devices = devices.into_iter().map(|d| d.resolve()).collect::<Result<Vec<_>>>()?;
    let mut child_args: Vec<String> = args.manifests.iter().map(|p| p.display().to_string()).collect();
    child_args.extend(["--scale".to_string(), if matches!(args.scale, ScaleArg::Smoke) { "smoke" } else { "full" }.to_string()]);
    let opts = runner::Options { cache_dir, data_root, devices, jobs_per_device: args.jobs, force: args.force, child_args };
    let stop = runner::install_stop_handler();
    let t = std::time::Instant::now();
    let summary = runner::execute(&jobs, &opts, &stop)?;
    summary.print();
    eprintln!("finished in {:.1} s", t.elapsed().as_secs_f64());
    if summary.interrupted {
        std::process::exit(130);
    }
    if !summary.ok() {
        bail!("{} run(s) failed, {} skipped (see above); the others are cached", summary.failed.len(), summary.skipped.len());
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// List cached runs with their settings and headline metrics.
    Ls,
    /// Show one run: metrics, provenance, resolved settings.
    Show { key: String },
    /// Check every stored file against its recorded SHA-256.
    Verify,
    /// Remove runs that no manifest refers to (at full or smoke scale).
    Gc {
        /// Manifests whose runs are kept (default: experiments/*.toml).
        manifests: Vec<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn experiment_manifests() -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("experiments")
        .context("no experiments/ directory here: run from the repository root or name manifests")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != "paper-tables.toml"))
        .collect();
    v.sort();
    Ok(v)
}

pub fn cache(cmd: CacheCommand, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let cache = Cache::open(&cache_dir)?;
    match cmd {
        CacheCommand::Ls => print!("{}", commands::ls(&cache)?),
        CacheCommand::Show { key } => print!("{}", commands::show(&cache, &key)?),
        CacheCommand::Verify => {
            let (text, ok) = commands::verify(&cache)?;
            print!("{text}");
            if !ok {
                bail!("the cache has corrupted runs (listed above)");
            }
        }
        CacheCommand::Gc { manifests, dry_run } => {
            let manifests = if manifests.is_empty() { experiment_manifests()? } else { manifests };
            let mut keep = HashSet::new();
            for scale in [Scale::Full, Scale::Smoke] {
                for j in manifest_jobs(&manifests, scale, &data_root)? {
                    keep.insert(j.key);
                }
            }
            print!("{}", commands::gc(&cache, &keep, dry_run)?);
        }
    }
    Ok(())
}

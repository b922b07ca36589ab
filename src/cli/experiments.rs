//! Manifests and runs: `validate`, `plan`, `run`, `cache`, `reproduce`.
use anyhow::{bail, Context, Result};
use gcl_repro::cache::store::short_key;
use gcl_repro::cache::{commands, Cache};
use gcl_repro::config::Scale;
use gcl_repro::device::DeviceChoice;
use gcl_repro::manifest::{Overrides, Setting};
use gcl_repro::pipeline::{plan, runner, RunGraph};
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

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
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

/// `--seeds N` and `--set KEY=VALUE`, shared by every command that expands manifests into runs.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct OverrideArgs {
    /// Seeds per cell for every manifest, at either scale: the first N of the manifest's list,
    /// or N consecutive seeds from 123 (default: each manifest's `seeds`, 3 unless set; at smoke
    /// scale its `smoke_seeds`, 1 unless set). Pass the same N to `run` and `report`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub seeds: Option<u16>,
    /// Change a setting of every cell (repeatable), after everything the manifest sets and at
    /// both scales: KEY as `explain` prints it, VALUE in TOML (a bare word is a string), e.g.
    /// --set stage1.epochs=50 --set stage1.loss.noise_mul=0.5. It changes only the cells that
    /// have the setting (a stage-2 setting the cells with a stage 2, a loss setting the cells
    /// whose loss has it). Pass the same flags to `run` and `report`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Setting>,
}

impl OverrideArgs {
    pub fn get(&self) -> Overrides {
        Overrides { seeds: self.seeds.map(usize::from), set: self.set.clone() }
    }
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    manifest: PathBuf,
    /// A cell id, `row.column` (or just `row` in a one-column table); all cells when omitted.
    cell: Option<String>,
    #[arg(long, value_enum, default_value = "full")]
    scale: ScaleArg,
    #[command(flatten)]
    overrides: OverrideArgs,
}

pub fn explain(args: ExplainArgs, data_root: PathBuf) -> Result<()> {
    let graph =
        RunGraph::build(std::slice::from_ref(&args.manifest), args.scale.into(), &args.overrides.get(), &data_root)?;
    let em = &graph.manifests[0];
    match &args.cell {
        Some(id) => print!(
            "{}",
            gcl_repro::explain::explain_cell(&em.manifest, gcl_repro::explain::find_cell(&em.manifest, &em.cells, id)?)
        ),
        None => {
            let texts: Vec<String> =
                em.cells.iter().map(|c| gcl_repro::explain::explain_cell(&em.manifest, c)).collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct EvalArgs {
    manifest: PathBuf,
    /// The cell whose network and data the weights are evaluated with (`row.column`).
    cell: String,
    /// A PyTorch state_dict as safetensors (convert a .pth with scripts/torch_to_safetensors.py)
    /// or a run's model.safetensors.
    #[arg(long)]
    weights: PathBuf,
    /// Also write the evaluation (per class, confusion) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "full")]
    scale: ScaleArg,
}

/// `eval MANIFEST CELL --weights FILE`: our metrics of any checkpoint, no training.
pub fn eval(args: EvalArgs, device: DeviceChoice, data_root: PathBuf) -> Result<()> {
    let device = device.resolve()?;
    let graph =
        RunGraph::build(std::slice::from_ref(&args.manifest), args.scale.into(), &Overrides::default(), &data_root)?;
    let em = &graph.manifests[0];
    let cell = gcl_repro::explain::find_cell(&em.manifest, &em.cells, &args.cell)?;
    let run =
        cell.runs.first().with_context(|| format!("cell {} runs nothing (a quoted or excluded cell)", cell.id()))?;
    let data = gcl_repro::data::load_any(&run.spec.dataset, &data_root)?;
    let eval = gcl_repro::training::evaluate_weights(&run.spec, &data, &args.weights, device)?;
    let digest = gcl_repro::models::import::sha256_file(&args.weights)?;
    print!("{}", gcl_repro::metrics::describe_evaluation(&eval, data.class_counts()));
    println!(
        "weights {} (sha256 {}), cell {} of {}",
        args.weights.display(),
        &digest[..16],
        cell.id(),
        args.manifest.display()
    );
    if let Some(path) = &args.json {
        let value =
            serde_json::json!({ "weights": args.weights, "sha256": digest, "cell": cell.id(), "evaluation": eval });
        gcl_repro::atomic::write(path, serde_json::to_string_pretty(&value)?)?;
    }
    Ok(())
}

pub fn plan(args: PlanArgs, device: DeviceChoice, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let emit = match args.emit.as_deref() {
        None => None,
        Some([kind, dir]) if kind == "slurm" => Some(PathBuf::from(dir)),
        Some([kind, _]) => anyhow::bail!("unknown --emit kind `{kind}`; expected `--emit slurm DIR`"),
        Some(_) => unreachable!("clap takes two values"),
    };
    let options = plan::PlanOptions {
        scale: args.scale.into(),
        cache_dir,
        data_root,
        overrides: args.overrides.get(),
        device_name: gcl_repro::device::device_name(device.resolve()?),
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
    /// Wind down MINUTES after the start (fractions allowed): no run starts after it, and the runs
    /// in progress stop at the end of their current epoch, checkpointed (they resume on the next
    /// `run`). That epoch finishes after the deadline: leave one epoch's time to spare. Exits 0
    /// with a line counting the runs finished, wound down and never started.
    #[arg(long, value_name = "MINUTES")]
    pub deadline: Option<f64>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

pub fn run(args: RunArgs, device: DeviceChoice, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let deadline = args.deadline.map(runner::Deadline::in_minutes).transpose()?;
    run_inner(args, device, cache_dir, data_root, deadline)
}

/// The hidden `worker` command: one run planned by another process (`run --jobs N`, a run at
/// another CPU level, or a Slurm task), read from its job file (`pipeline::worker`).
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The job file (`worker.json` in the run's partial directory).
    pub job: PathBuf,
    /// The parent's deadline: seconds since 1970 (a run wound down or not started by it exits
    /// with status 75).
    #[arg(long = "deadline-at")]
    pub deadline_at: Option<f64>,
}

pub fn worker(args: WorkerArgs, device: DeviceChoice, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let deadline = args.deadline_at.map(runner::Deadline::from_unix_seconds).transpose()?;
    let opts = runner::Options {
        cache_dir,
        data_root,
        devices: vec![device.resolve()?],
        jobs_per_device: 1,
        force: false,
        deadline,
    };
    let stop = runner::install_stop_handler();
    match runner::run_worker(&args.job, &opts, &stop)? {
        runner::Outcome::WoundDown | runner::Outcome::NotStarted => std::process::exit(runner::WOUND_DOWN_EXIT),
        _ if stop.load(std::sync::atomic::Ordering::SeqCst) => std::process::exit(130),
        _ => Ok(()),
    }
}

fn run_inner(
    args: RunArgs,
    device: DeviceChoice,
    cache_dir: PathBuf,
    data_root: PathBuf,
    deadline: Option<runner::Deadline>,
) -> Result<()> {
    let graph = RunGraph::build(&args.manifests, args.scale.into(), &args.overrides.get(), &data_root)?;
    let jobs = graph.select(&args.only)?;
    // Runs whose data is not here are reported as skipped, so the others still run.
    let unavailable: Vec<(String, String)> = if args.only.is_empty() {
        graph.unavailable.iter().map(|u| (u.label.clone(), u.reason.clone())).collect()
    } else {
        vec![]
    };
    let devices = if args.devices.is_empty() { vec![device] } else { args.devices.clone() };
    let devices = devices.into_iter().map(|d| d.resolve()).collect::<Result<Vec<_>>>()?;
    let opts =
        runner::Options { cache_dir, data_root, devices, jobs_per_device: args.jobs, force: args.force, deadline };
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

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// List cached runs with their settings and headline metrics.
    Ls,
    /// Show one run: metrics, provenance, resolved settings.
    Show { key: String },
    /// Check every stored file against its recorded SHA-256.
    Verify,
    /// Write finished runs into one compressed archive (for another machine's cache):
    /// the runs of manifests (at --scale) and/or runs named by key (prefix). With --partial,
    /// runs in progress too (at their last complete epoch), to resume elsewhere.
    Export {
        /// Manifests (`*.toml`) and/or run keys or unique key prefixes.
        #[arg(required = true)]
        items: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        /// Leave out weights and embeddings (cached t-SNE maps are kept, so reports rebuild).
        #[arg(long)]
        without_weights: bool,
        /// Leave out embeddings and cached t-SNE maps, keep the weights (what a later stage and a
        /// table need; t-SNE figures of these runs then need the runs re-trained).
        #[arg(long, conflicts_with = "without_weights")]
        without_embeddings: bool,
        /// Also export the manifests' runs in progress (`partial/`: checkpoint, momentum, records,
        /// settings); `cache import` places them, and `run` resumes them from there.
        #[arg(long)]
        partial: bool,
        #[arg(long, value_enum, default_value = "full")]
        scale: ScaleArg,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Add the runs of an archive written by `cache export`, verified file by file; refuses
    /// (importing nothing) if a run differs from one cached under the same key.
    Import { archive: PathBuf },
    /// Remove runs that no manifest refers to (at full or smoke scale).
    Gc {
        /// Manifests whose runs are kept (default: experiments/*.toml).
        manifests: Vec<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also keep the runs of the first N seeds of every cell (runs trained with `--seeds N`
        /// beyond a manifest's own seeds are otherwise removed).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        seeds: Option<u16>,
    },
}

pub fn experiment_manifests() -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("experiments")
        .context("no experiments/ directory here: run from the repository root or name manifests")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != "paper-tables.toml")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The finished and (with `partial`) partial runs that `cache export ITEMS` names: every run of
/// each manifest, or one key (prefix).
fn export_keys(
    cache: &Cache,
    items: &[String],
    partial: bool,
    scale: ScaleArg,
    overrides: &OverrideArgs,
    data_root: &Path,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut keys, mut partial_keys) = (Vec::new(), Vec::new());
    for item in items {
        if item.ends_with(".toml") || Path::new(item).is_file() {
            let graph = RunGraph::build(&[PathBuf::from(item)], scale.into(), &overrides.get(), data_root)?;
            let mut missing = graph.unavailable.len();
            for node in &graph.nodes {
                match cache.state(&node.key) {
                    gcl_repro::cache::RunState::Cached => keys.push(node.key.clone()),
                    gcl_repro::cache::RunState::Partial if partial => partial_keys.push(node.key.clone()),
                    _ => missing += 1,
                }
            }
            if missing > 0 {
                let what = if partial { "neither finished nor partial" } else { "not finished" };
                eprintln!("note: {missing} run(s) of {item} are {what} in this cache and are not exported");
            }
        } else if partial && cache.partial_keys()?.iter().any(|k| k.starts_with(item.as_str())) {
            let hits: Vec<String> =
                cache.partial_keys()?.into_iter().filter(|k| k.starts_with(item.as_str())).collect();
            match hits.as_slice() {
                [one] => partial_keys.push(one.clone()),
                _ => bail!("{} partial runs have keys starting with `{item}`; give more characters", hits.len()),
            }
        } else {
            keys.push(cache.resolve_prefix(item)?);
        }
    }
    for v in [&mut keys, &mut partial_keys] {
        v.sort();
        v.dedup();
    }
    if keys.is_empty() && partial_keys.is_empty() {
        bail!(
            "nothing to export: no {}run matches {}",
            if partial { "finished or partial " } else { "finished " },
            items.join(" ")
        );
    }
    Ok((keys, partial_keys))
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
        CacheCommand::Export { items, out, without_weights, without_embeddings, partial, scale, overrides } => {
            let (keys, partial_keys) = export_keys(&cache, &items, partial, scale, &overrides, &data_root)?;
            let leave = gcl_repro::cache::transfer::Leave { weights: without_weights, embeddings: without_embeddings };
            println!("{}", gcl_repro::cache::transfer::export(&cache, &keys, &partial_keys, &out, leave)?);
        }
        CacheCommand::Import { archive } => {
            let r = gcl_repro::cache::transfer::import(&cache, &archive)?;
            print!("imported {} run(s), {} already present with identical files", r.added.len(), r.present.len());
            if !r.partial_added.is_empty() || !r.partial_present.is_empty() {
                let at: Vec<String> =
                    r.partial_added.iter().map(|(k, e)| format!("{} at epoch {e}", short_key(k))).collect();
                let at = if at.is_empty() { String::new() } else { format!(" ({})", at.join(", ")) };
                print!(
                    "; partial runs: {} placed{at}, {} already here",
                    r.partial_added.len(),
                    r.partial_present.len()
                );
            }
            println!();
        }
        CacheCommand::Gc { manifests, dry_run, seeds } => {
            let manifests = if manifests.is_empty() { experiment_manifests()? } else { manifests };
            let mut keep = HashSet::new();
            let counts = std::iter::once(None).chain(seeds.map(|n| Some(usize::from(n))));
            for (scale, count) in counts.flat_map(|c| [(Scale::Full, c), (Scale::Smoke, c)]) {
                let graph =
                    RunGraph::build(&manifests, scale, &count.map(Overrides::seeds).unwrap_or_default(), &data_root)?;
                // Without a cell's data its key is unknown, so its cached runs cannot be told
                // apart from garbage: refuse rather than delete them.
                if let Some(u) = graph.unavailable.first() {
                    bail!("cannot tell which runs {} refers to ({}); pass the --data-root that holds its data, or name only the manifests to keep", u.label, u.reason);
                }
                keep.extend(graph.keys());
            }
            print!("{}", commands::gc(&cache, &keep, dry_run)?);
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ReproduceArgs {
    /// Paper tables to reproduce, e.g. `1,3-5` (experiments/tableN.toml).
    #[arg(long, default_value = "1-5")]
    pub tables: String,
    /// Leave out the figures manifest (experiments/figures.toml).
    #[arg(long)]
    pub no_figures: bool,
    #[arg(long, value_enum, default_value = "full")]
    pub scale: ScaleArg,
    /// Runs at once per device, as separate processes.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Report directory (default: results/, or results/smoke/ at smoke scale).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Wind down MINUTES after the start (fractions allowed): no run starts after it, and the runs
    /// in progress stop at the end of their current epoch, checkpointed (they resume on the next
    /// `run`). That epoch finishes after the deadline: leave one epoch's time to spare. The report
    /// is written of what finished; exits 0 with a line counting the runs finished, wound down
    /// and never started.
    #[arg(long, value_name = "MINUTES")]
    pub deadline: Option<f64>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// `1,3-5` -> [1, 3, 4, 5]; only the paper's tables 1..=5.
pub fn parse_tables(spec: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let parse = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--tables: `{part}` is not a table number or range (e.g. 1,3-5)"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a < 1 || b > 5 || a > b {
            bail!("--tables: `{part}` is outside the paper's tables 1-5");
        }
        out.extend(a..=b);
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        bail!("--tables: no table given (e.g. --tables 1,3-5)");
    }
    Ok(out)
}

/// Run the chosen tables' manifests (what is missing), then write the report.
pub fn reproduce(args: ReproduceArgs, device: DeviceChoice, cache_dir: PathBuf, data_root: PathBuf) -> Result<()> {
    let deadline = args.deadline.map(runner::Deadline::in_minutes).transpose()?;
    let mut manifests: Vec<PathBuf> =
        parse_tables(&args.tables)?.iter().map(|n| PathBuf::from(format!("experiments/table{n}.toml"))).collect();
    if !args.no_figures {
        manifests.push(PathBuf::from("experiments/figures.toml"));
    }
    for m in &manifests {
        if !m.is_file() {
            bail!("{} not found: run `gcl-repro reproduce` from the repository root", m.display());
        }
    }
    let scale: Scale = args.scale.into();
    if !args.overrides.set.is_empty() && args.out.is_none() {
        bail!("--set changes the paper's settings, so its report does not belong in results/: name a report directory with --out DIR");
    }
    let run_args = RunArgs {
        manifests: manifests.clone(),
        scale: args.scale,
        jobs: args.jobs,
        devices: vec![],
        only: vec![],
        force: false,
        deadline: None,
        overrides: args.overrides.clone(),
    };
    // Keep going to the report even when some runs fail or lack data (or the deadline stopped
    // them): the report says which.
    let run_result = run_inner(run_args, device, cache_dir.clone(), data_root.clone(), deadline);
    let out = args.out.unwrap_or_else(|| match scale {
        Scale::Full => PathBuf::from("results"),
        Scale::Smoke => PathBuf::from("results/smoke"),
    });
    let summary =
        gcl_repro::report::build_report(&manifests, scale, &args.overrides.get(), &cache_dir, &data_root, &out)?;
    print!("{}", summary.render());
    run_result
}

#[cfg(test)]
mod tests {
    use super::parse_tables;

    #[test]
    fn table_ranges() {
        assert_eq!(parse_tables("1,3-5").unwrap(), vec![1, 3, 4, 5]);
        assert_eq!(parse_tables("2, 2,1").unwrap(), vec![1, 2]);
        assert!(parse_tables("0-2").unwrap_err().to_string().contains("outside the paper's tables"));
        assert!(parse_tables("x").unwrap_err().to_string().contains("not a table number"));
        assert!(parse_tables("").is_err());
    }
}

//! The plan of a run graph (`graph`): every distinct run once (stage-1 runs shared by the
//! stage-2 variants built on them) with its cache state and a rough cost. Nothing is run here.
//!
//! [`emit_slurm`] writes the graph as two Slurm array jobs, stage 2 depending on stage 1:
//!
//! ```text
//! DIR/keys1.txt, keys2.txt     one `KEY<TAB>MANIFEST` line per task (array index = line - 1)
//! DIR/stage1.sbatch, stage2.sbatch
//! DIR/submit.sh                sbatch stage 1, then stage 2 with --dependency=afterok:<stage 1>
//! DIR/logs/                    one log per task
//! ```
use super::graph::{RunGraph, RunNode};
use crate::cache::{Cache, RunState};
use crate::data::catalog::train_images;
use crate::manifest::Overrides;
use crate::models::spec::Arch;
use crate::training::spec::{RunSpec, Scale};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct PlanOptions {
    pub scale: Scale,
    pub cache_dir: PathBuf,
    pub data_root: PathBuf,
    /// `--seeds N` and `--set KEY=VALUE`, applied to every manifest.
    pub overrides: Overrides,
    /// The device this process would train on, as runs record it (`device::device_name`): the
    /// time estimate uses the throughput measured on it.
    pub device_name: String,
}

/// The run graph with each node's cache state and the throughput to estimate its cost from.
pub struct Plan {
    pub cache_dir: PathBuf,
    pub device_name: String,
    /// Training throughput measured by this cache's finished runs.
    pub throughput: Throughput,
    pub graph: RunGraph,
    /// The cache state of each node of `graph.nodes` (same order).
    pub states: Vec<RunState>,
    /// The epochs a partial node's checkpoint holds (same order; `None` unless partial).
    pub epochs_done: Vec<Option<usize>>,
}

/// Builds the run graph of the manifests and looks every run up in the cache (read only).
pub fn build(paths: &[PathBuf], opts: &PlanOptions) -> Result<Plan> {
    let graph = RunGraph::build(paths, opts.scale, &opts.overrides, &opts.data_root)?;
    Ok(Plan::of(graph, opts))
}

impl Plan {
    pub fn of(graph: RunGraph, opts: &PlanOptions) -> Plan {
        let cache = Cache { root: opts.cache_dir.clone() };
        let states: Vec<RunState> = graph.nodes.iter().map(|n| cache.state(&n.key)).collect();
        let epochs_done = graph
            .nodes
            .iter()
            .zip(&states)
            .map(|(n, s)| (*s == RunState::Partial).then(|| cache.partial_epochs(&n.key).ok()).flatten())
            .collect();
        Plan {
            cache_dir: opts.cache_dir.clone(),
            device_name: opts.device_name.clone(),
            throughput: Throughput::measure(&cache),
            graph,
            states,
            epochs_done,
        }
    }

    /// Each node with its cache state, in graph order.
    pub fn nodes(&self) -> impl Iterator<Item = (&RunNode, RunState)> {
        self.graph.nodes.iter().zip(self.states.iter().copied())
    }

    /// Where a node is used, as the plan prints it: `row.column`, with `@seed` when its manifest
    /// has several seeds and `name/` in front when several manifests are planned together.
    pub fn cells(&self, node: &RunNode) -> Vec<String> {
        let several = self.graph.manifests.len() > 1;
        node.uses
            .iter()
            .map(|u| {
                let several_seeds = self
                    .graph
                    .manifests
                    .iter()
                    .find(|m| m.manifest.name == u.manifest)
                    .is_some_and(|m| m.cells.iter().any(|c| c.runs.len() > 1));
                let mut label = u.cell.clone();
                if several_seeds {
                    label = format!("{label}@{}", u.seed);
                }
                if several {
                    label = format!("{}/{label}", u.manifest);
                }
                label
            })
            .collect()
    }
}

/// Images/s that finished runs of a cache reached, per (architecture, stage, device name):
/// epochs x train images / wall time (evaluation included), pooled over the runs.
#[derive(Debug, Default)]
pub struct Throughput {
    measured: HashMap<(Arch, u8, String), (f64, f64)>,
}

impl Throughput {
    pub fn measure(cache: &Cache) -> Throughput {
        let mut measured: HashMap<(Arch, u8, String), (f64, f64)> = HashMap::new();
        for key in cache.keys().unwrap_or_default() {
            let (Ok(Some(r)), Ok(text)) =
                (cache.result(&key), std::fs::read_to_string(cache.run_dir(&key).join(crate::cache::SPEC)))
            else {
                continue;
            };
            let Ok(spec) = toml::from_str::<RunSpec>(&text) else { continue };
            let images = r.train_class_counts.iter().sum::<usize>() as f64 * r.epochs.len() as f64;
            if images > 0.0 && r.provenance.wall_seconds > 0.0 {
                let e = measured.entry((spec.model.arch, r.stage, r.provenance.device_name.clone())).or_default();
                e.0 += images;
                e.1 += r.provenance.wall_seconds;
            }
        }
        Throughput { measured }
    }

    /// Images/s of `arch` at `stage` on `device_name`, if some finished run measured it.
    pub fn images_per_second(&self, arch: Arch, stage: u8, device_name: &str) -> Option<f64> {
        self.measured.get(&(arch, stage, device_name.to_string())).map(|(images, secs)| images / secs)
    }
}

impl Plan {
    /// Estimated seconds of a run on this plan's device: `None` without a measurement.
    fn seconds(&self, node: &RunNode) -> Option<f64> {
        let rate = self.throughput.images_per_second(node.spec.model.arch, node.stage_number(), &self.device_name)?;
        node.cost_images().map(|c| c as f64 / rate)
    }

    /// The table printed by `gcl-repro plan`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "plan at scale {}, cache {}", scale_name(self.graph.scale), self.cache_dir.display());
        for m in &self.graph.manifests {
            let _ = writeln!(out, "  {} ({}): {} cells", m.manifest.name, m.path.display(), m.cells.len());
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<15} {:<5} {:<7} {:>6} {:>8} {:>9} {:>8}  cells",
            "key", "stage", "state", "epochs", "images", "cost", "est."
        );
        for ((n, state), done) in self.nodes().zip(&self.epochs_done) {
            out.push_str(&self.render_row(n, state, *done));
        }
        out.push_str(&self.render_totals());
        if !self.graph.unavailable.is_empty() {
            let _ = writeln!(
                out,
                "not planned ({} run(s) whose data is not under the data root; pass --data-root):",
                self.graph.unavailable.len()
            );
            for u in &self.graph.unavailable {
                let _ = writeln!(out, "  {}: {}", u.label, u.reason);
            }
        }
        out
    }

    /// One run's line: a partial run shows how far its checkpoint is (`57/200`).
    fn render_row(&self, n: &RunNode, state: RunState, done: Option<usize>) -> String {
        let key = if n.parent().is_none() { n.short().to_string() } else { format!("└ {}", n.short()) };
        let epochs = match done {
            Some(d) => format!("{d}/{}", n.epochs()),
            None => n.epochs().to_string(),
        };
        let images = train_images(&n.spec.dataset).map(crate::human::count).unwrap_or_else(|| "?".into());
        let cost = n.cost_images().map(crate::human::count).unwrap_or_else(|| "?".into());
        let est = match (state, self.seconds(n)) {
            (RunState::Cached, _) => "-".to_string(),
            (_, Some(s)) => format!("~{}", crate::human::duration(s)),
            (_, None) => "no data".to_string(),
        };
        format!(
            "{key:<15} {:<5} {:<7} {epochs:>6} {images:>8} {cost:>9} {est:>8}  {}\n",
            n.stage_number(),
            state.label(),
            self.cells(n).join(", ")
        )
    }

    /// The counts by state and what is left to train, with a time estimate where this cache
    /// has measured the architecture on this device.
    fn render_totals(&self) -> String {
        let mut out = String::new();
        let count = |s: RunState| self.states.iter().filter(|x| **x == s).count();
        let nodes = &self.graph.nodes;
        let s1 = nodes.iter().filter(|n| n.parent().is_none()).count();
        let pending: Vec<&RunNode> = self.nodes().filter(|(_, s)| *s != RunState::Cached).map(|(n, _)| n).collect();
        let images = crate::human::count(pending.iter().filter_map(|n| n.cost_images()).sum());
        let secs = crate::human::duration(pending.iter().filter_map(|n| self.seconds(n)).sum());
        let unmeasured = pending.iter().filter(|n| self.seconds(n).is_none()).count();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} runs ({s1} stage 1, {} stage 2): {} cached, {} partial, {} to run",
            nodes.len(),
            nodes.len() - s1,
            count(RunState::Cached),
            count(RunState::Partial),
            count(RunState::Missing)
        );
        let device = &self.device_name;
        let how = "epochs x train images / the images/s of this cache's finished runs of the same architecture and stage on this device";
        let _ = match (pending.len(), unmeasured) {
            (0, _) => writeln!(out, "nothing left to train"),
            (_, 0) => writeln!(out, "left to train: {images} images, ~{secs} on {device} ({how})"),
            (n, u) if u == n => writeln!(
                out,
                "left to train: {images} images; no time estimate: this cache has no finished run of these architectures on {device} \
                 to measure from (train one, or time the step with `gcl-repro bench step`)"
            ),
            (_, u) => writeln!(
                out,
                "left to train: {images} images, ~{secs} on {device} for the runs with a measurement, plus {u} run(s) with none on this device ({how})"
            ),
        };
        out
    }
}

pub struct SlurmOptions {
    /// Task command template; `None`: run the key with this binary.
    pub command: Option<String>,
    /// Extra `#SBATCH` options for both scripts.
    pub sbatch: Vec<String>,
}

/// A task trains its run from the job file written beside its partial run (`pipeline::worker`):
/// the resolved settings, never a re-expansion of the manifest.
pub const DEFAULT_SLURM_COMMAND: &str = "{exe} worker {job} --cache-dir {cache_dir} --data-root {data_root}";

/// A string as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes the Slurm job scripts of the runs not yet cached; returns the names of the files
/// written. Paths inside the scripts are absolute, so they can be submitted from anywhere.
pub fn emit_slurm(plan: &Plan, opts: &PlanOptions, slurm: &SlurmOptions, dir: &Path) -> Result<Vec<String>> {
    let template = slurm.command.clone().unwrap_or_else(|| DEFAULT_SLURM_COMMAND.to_string());
    check_task_command(&template, opts)?;
    let cache = crate::cache::Cache::open(&opts.cache_dir)?;
    std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::path::absolute(dir)?;
    let name = plan.graph.manifests.iter().map(|m| m.manifest.name.as_str()).collect::<Vec<_>>().join("+");
    let mut written = Vec::new();
    let mut arrays = Vec::new();
    for stage in [1u8, 2] {
        let todo: Vec<&RunNode> =
            plan.nodes().filter(|(n, s)| n.stage_number() == stage && *s != RunState::Cached).map(|(n, _)| n).collect();
        for (ranks, group) in by_ranks(&todo) {
            let suffix = if ranks > 1 { format!("-ranks{ranks}") } else { String::new() };
            let keys_file = write_keys_file(&cache, &group, &dir, &format!("keys{stage}{suffix}.txt"))?;
            written.push(keys_file.clone());
            let script = format!("stage{stage}{suffix}.sbatch");
            if group.is_empty() {
                let _ = std::fs::remove_file(dir.join(&script));
                continue;
            }
            let array =
                ArrayJob { name: &name, scale: scale_name(opts.scale), stage, ranks, tasks: group.len(), dir: &dir };
            let command = task_command(&template, opts, &array)?;
            std::fs::write(dir.join(&script), array_script(&array, &keys_file, &slurm.sbatch, &command))?;
            written.push(script.clone());
            arrays.push((stage, script, group.len()));
        }
    }
    std::fs::write(dir.join("submit.sh"), submit_script(&dir, &arrays))?;
    written.push("submit.sh".into());
    Ok(written)
}

/// A stage's runs grouped by their number of ranks (one array job each: a data-parallel run's
/// task is `ranks` Slurm tasks), single-process runs first and always present.
fn by_ranks<'a>(todo: &[&'a RunNode]) -> Vec<(usize, Vec<&'a RunNode>)> {
    let mut groups: std::collections::BTreeMap<usize, Vec<&RunNode>> = [(1, Vec::new())].into();
    for n in todo {
        groups.entry(n.spec.data_parallel.ranks.max(1)).or_default().push(n);
    }
    groups.into_iter().collect()
}

/// A task command must tell its tasks apart, and one that finds its run by key re-expands its
/// manifest, so it needs this plan's command-line changes (a worker task reads the resolved run
/// from its job file).
fn check_task_command(template: &str, opts: &PlanOptions) -> Result<()> {
    if !template.contains("{key}") && !template.contains("{job}") {
        bail!("the Slurm task command `{template}` has no {{key}} or {{job}} placeholder, so every task would do the same thing");
    }
    let by_key = !template.contains("{job}");
    if by_key && !opts.overrides.set.is_empty() && !template.contains("{flags}") {
        bail!("the Slurm task command `{template}` finds its run by key but has no {{flags}} placeholder (this plan's --set), so its tasks would not find the runs the overrides make");
    }
    if by_key && opts.overrides.seeds.is_some() && !template.contains("{seeds}") && !template.contains("{flags}") {
        bail!("the Slurm task command `{template}` finds its run by key but has no {{seeds}} placeholder (`--seeds N`), so its tasks would not find the runs of the seeds this plan adds");
    }
    Ok(())
}

fn scale_name(scale: Scale) -> &'static str {
    match scale {
        Scale::Full => "full",
        Scale::Smoke => "smoke",
    }
}

/// `keys{stage}.txt` (`keys{stage}-ranks{N}.txt` for data-parallel runs): one line per task, `KEY<TAB>JOB FILE<TAB>MANIFEST`; writes each run's job
/// file into the cache on the way.
fn write_keys_file(cache: &crate::cache::Cache, todo: &[&RunNode], dir: &Path, keys_file: &str) -> Result<String> {
    let mut keys = String::new();
    for n in todo {
        let manifest = n.manifest.to_str().context("manifest paths must be UTF-8")?;
        let job = std::path::absolute(super::worker::write_job(cache, n)?)?;
        let job = job.to_str().context("cache paths must be UTF-8")?.to_string();
        if manifest.contains(['\t', '\n']) || job.contains(['\t', '\n']) {
            bail!("the manifest path {manifest:?} or the job path {job:?} contains a tab or newline");
        }
        let _ = writeln!(keys, "{}\t{job}\t{manifest}", n.key);
    }
    std::fs::write(dir.join(keys_file), keys)?;
    Ok(keys_file.to_string())
}

/// One stage's array job.
struct ArrayJob<'a> {
    /// The manifests' names joined by `+`.
    name: &'a str,
    scale: &'static str,
    stage: u8,
    /// Processes per run (`data_parallel.ranks`): Slurm tasks of one array task.
    ranks: usize,
    tasks: usize,
    /// The (absolute) folder of the scripts, the keys files and the logs.
    dir: &'a Path,
}

/// The task command with its placeholders filled; `$KEY`, `$JOB` and `$MANIFEST` come from the
/// task's line of the keys file.
fn task_command(template: &str, opts: &PlanOptions, array: &ArrayJob) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the gcl-repro executable")?;
    let cache_dir = std::path::absolute(&opts.cache_dir)?;
    let data_root = std::path::absolute(&opts.data_root)?;
    let seeds = opts.overrides.seeds.map(|n| format!("--seeds {n}")).unwrap_or_default();
    Ok(template
        .replace("{exe}", &shell_quote(&exe.to_string_lossy()))
        .replace("{cache_dir}", &shell_quote(&cache_dir.to_string_lossy()))
        .replace("{data_root}", &shell_quote(&data_root.to_string_lossy()))
        .replace("{scale}", array.scale)
        .replace("{stage}", &array.stage.to_string())
        .replace("{manifest}", "\"$MANIFEST\"")
        .replace("{job}", "\"$JOB\"")
        .replace("{key}", "\"$KEY\"")
        .replace("{seeds}", &seeds)
        .replace("{flags}", &opts.overrides.flags().join(" "))
        .trim_end()
        .to_string())
}

/// `stage{N}.sbatch`: an array job whose task i runs line i + 1 of the keys file.
fn array_script(a: &ArrayJob, keys_file: &str, sbatch: &[String], command: &str) -> String {
    let (stage, name, scale) = (a.stage, a.name, a.scale);
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# gcl-repro stage-{stage} runs of {name} at scale {scale}: one array task per line of {keys_file}."
    );
    let _ = writeln!(s, "#SBATCH --job-name=gcl-{name}-s{stage}");
    let _ = writeln!(s, "#SBATCH --array=0-{}", a.tasks - 1);
    let _ = writeln!(s, "#SBATCH --output={}/logs/stage{stage}-%A_%a.out", a.dir.display());
    if a.ranks > 1 {
        let _ = writeln!(s, "#SBATCH --ntasks={}", a.ranks);
    }
    for opt in sbatch {
        let _ = writeln!(s, "#SBATCH {opt}");
    }
    let _ = writeln!(s, "set -euo pipefail");
    let keys = shell_quote(&a.dir.join(keys_file).to_string_lossy());
    let _ = writeln!(s, "LINE=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {keys})");
    let _ = writeln!(s, "IFS=$'\\t' read -r KEY JOB MANIFEST <<< \"$LINE\"");
    let _ = writeln!(s, "echo \"task $SLURM_ARRAY_TASK_ID: stage {stage} run $KEY of $MANIFEST\"");
    if a.ranks > 1 {
        // One Slurm task per rank; each finds its rank in SLURM_PROCID / SLURM_NTASKS and meets
        // the others at the first node of the allocation (torch's env:// rendezvous).
        let _ = writeln!(s, "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)");
        let _ = writeln!(s, "export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))");
        let _ = writeln!(s, "srun --ntasks={} {command}", a.ranks);
    } else {
        let _ = writeln!(s, "{command}");
    }
    s
}

/// `submit.sh`: submits the stage arrays in order, each stage's after every array of the
/// previous stage succeeded.
fn submit_script(dir: &Path, arrays: &[(u8, String, usize)]) -> String {
    let mut sub = String::new();
    let _ = writeln!(sub, "#!/bin/bash");
    let _ =
        writeln!(sub, "# Submits the stage-1 array(s), then the stage-2 array(s), which start only once every stage-1");
    let _ = writeln!(sub, "# task has succeeded (afterok on an array job waits for all of its tasks).");
    let _ = writeln!(sub, "set -euo pipefail");
    let _ = writeln!(sub, "cd {}", shell_quote(&dir.to_string_lossy()));
    let _ = writeln!(sub, "DEP=()");
    let _ = writeln!(sub, "AFTER=afterok");
    if arrays.is_empty() {
        let _ = writeln!(sub, "echo 'nothing to run: every run is cached'");
    }
    let mut previous = 0;
    for (stage, script, n) in arrays {
        if *stage != previous && previous != 0 {
            let _ = writeln!(sub, "DEP=(--dependency=$AFTER)");
            let _ = writeln!(sub, "AFTER=afterok");
        }
        previous = *stage;
        let _ = writeln!(sub, "JOB=$(sbatch --parsable \"${{DEP[@]}}\" {script})");
        let _ = writeln!(sub, "JOB=${{JOB%%;*}}");
        let _ = writeln!(sub, "echo \"stage {stage}: job $JOB ({n} tasks, {script})\"");
        let _ = writeln!(sub, "AFTER=$AFTER:$JOB");
    }
    sub
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }
}

//! The run graph of one or more manifests: every distinct run once (stage-1 runs shared by the
//! stage-2 variants built on them), its cache state and a rough cost. Nothing is run here.
//!
//! [`emit_slurm`] writes the graph as two Slurm array jobs, stage 2 depending on stage 1:
//!
//! ```text
//! DIR/keys1.txt, keys2.txt     one `KEY<TAB>MANIFEST` line per task (array index = line - 1)
//! DIR/stage1.sbatch, stage2.sbatch
//! DIR/submit.sh                sbatch stage 1, then stage 2 with --dependency=afterok:<stage 1>
//! DIR/logs/                    one log per task
//! ```
use crate::cache::{Cache, RunState};
use crate::config::{Arch, DatasetName, DatasetSpec, Profile, RunSpec, Scale};
use crate::manifest;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct PlanOptions {
    pub scale: Scale,
    pub cache_dir: PathBuf,
    pub data_root: PathBuf,
    /// The device this process would train on, as runs record it (`runner::device_name`): the
    /// time estimate uses the throughput measured on it.
    pub device_name: String,
}

/// One distinct run of the graph.
#[derive(Clone, Debug)]
pub struct PlanNode {
    pub key: String,
    pub stage: u8,
    /// Stage 2: the stage-1 run it starts from.
    pub parent: Option<String>,
    /// The settings of the run (stage 1 alone for a stage-1 node).
    pub spec: RunSpec,
    /// The first manifest that uses the run (the one a Slurm task runs it from).
    pub manifest: PathBuf,
    /// The cells using it: `row.column` (with `@seed` when a manifest has several seeds, and
    /// `name/` in front when several manifests are planned together).
    pub cells: Vec<String>,
    pub state: RunState,
}

impl PlanNode {
    pub fn epochs(&self) -> usize {
        match (&self.spec.stage2, self.stage) {
            (Some(s2), 2) => s2.epochs,
            _ => self.spec.stage1.epochs,
        }
    }

    /// Training images seen: epochs x train-split size (None when the size is unknown).
    pub fn cost_images(&self) -> Option<usize> {
        train_images(&self.spec.dataset).map(|n| n * self.epochs())
    }
}

pub struct Plan {
    pub scale: Scale,
    pub cache_dir: PathBuf,
    pub device_name: String,
    /// Training throughput measured by this cache's finished runs.
    pub throughput: Throughput,
    /// (path, name, number of cells) of each manifest.
    pub manifests: Vec<(PathBuf, String, usize)>,
    /// Stage-1 nodes each followed by their stage-2 children, in order of first use.
    pub nodes: Vec<PlanNode>,
}

/// Loads and expands the manifests and looks every run up in the cache (read only).
pub fn build(paths: &[PathBuf], opts: &PlanOptions) -> Result<Plan> {
    let cache = Cache { root: opts.cache_dir.clone() };
    let several = paths.len() > 1;
    let mut manifests = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let mut nodes: HashMap<String, PlanNode> = HashMap::new();
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    for path in paths {
        let m = manifest::load(path)?;
        let abs = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
        let cells = manifest::expand(&m, opts.scale, &opts.data_root)?;
        manifests.push((path.clone(), m.name.clone(), cells.len()));
        let seeds = m.seeds.as_ref().map_or(1, |s| s.len());
        for cell in &cells {
            for run in &cell.runs {
                let mut label = cell.id();
                if seeds > 1 {
                    label = format!("{label}@{}", run.seed);
                }
                if several {
                    label = format!("{}/{label}", m.name);
                }
                let k1 = run.stage1_key.clone();
                let n1 = nodes.entry(k1.clone()).or_insert_with(|| {
                    order.push(k1.clone());
                    PlanNode {
                        key: k1.clone(),
                        stage: 1,
                        parent: None,
                        spec: run.spec.stage1_only(),
                        manifest: abs.clone(),
                        cells: vec![],
                        state: cache.state(&k1),
                    }
                });
                if !n1.cells.contains(&label) {
                    n1.cells.push(label.clone());
                }
                if let Some(k2) = &run.stage2_key {
                    let n2 = nodes.entry(k2.clone()).or_insert_with(|| {
                        children.entry(k1.clone()).or_default().push(k2.clone());
                        PlanNode {
                            key: k2.clone(),
                            stage: 2,
                            parent: Some(k1.clone()),
                            spec: run.spec.clone(),
                            manifest: abs.clone(),
                            cells: vec![],
                            state: cache.state(k2),
                        }
                    });
                    if !n2.cells.contains(&label) {
                        n2.cells.push(label);
                    }
                }
            }
        }
    }
    let mut ordered = Vec::new();
    for k1 in order {
        ordered.push(nodes[&k1].clone());
        for k2 in children.get(&k1).into_iter().flatten() {
            ordered.push(nodes[k2].clone());
        }
    }
    let throughput = Throughput::measure(&cache);
    Ok(Plan { scale: opts.scale, cache_dir: opts.cache_dir.clone(), device_name: opts.device_name.clone(), throughput, manifests, nodes: ordered })
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
            let (Ok(Some(r)), Ok(text)) = (cache.result(&key), std::fs::read_to_string(cache.run_dir(&key).join(crate::cache::SPEC))) else {
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

/// Train-split size of a dataset: the long-tailed CIFAR profile (Cao et al. 2019) computed
/// exactly, the list-file datasets' published sizes (their standard lists).
pub fn train_images(d: &DatasetSpec) -> Option<usize> {
    let (classes, n_max) = match d.name {
        DatasetName::Cifar10 => (10, 5000),
        DatasetName::Cifar100 => (100, 500),
        DatasetName::Synthetic => (d.classes, d.max_per_class),
        DatasetName::ImagenetLt => return Some(115_846),
        DatasetName::PlacesLt => return Some(62_500),
        DatasetName::Inat2018 => return Some(437_513),
    };
    if classes == 0 {
        return None;
    }
    let gamma = d.imbalance.max(1.0);
    let sizes = (0..classes).map(|i| match d.profile {
        Profile::Exp if classes > 1 => (n_max as f64 * (1.0 / gamma).powf(i as f64 / (classes - 1) as f64)) as usize,
        Profile::Exp => n_max,
        Profile::Step if i < classes / 2 => n_max,
        Profile::Step => (n_max as f64 / gamma) as usize,
    });
    Some(sizes.sum())
}

fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn human_seconds(s: f64) -> String {
    match s {
        s if s >= 86_400.0 => format!("{:.1}d", s / 86_400.0),
        s if s >= 3_600.0 => format!("{:.1}h", s / 3_600.0),
        s if s >= 60.0 => format!("{:.0}m", s / 60.0),
        s => format!("{:.0}s", s.ceil()),
    }
}

impl Plan {
    /// Estimated seconds of a run on this plan's device: `None` without a measurement.
    fn seconds(&self, node: &PlanNode) -> Option<f64> {
        let rate = self.throughput.images_per_second(node.spec.model.arch, node.stage, &self.device_name)?;
        node.cost_images().map(|c| c as f64 / rate)
    }

    /// The table printed by `gcl-repro plan`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let scale = match self.scale {
            Scale::Full => "full",
            Scale::Smoke => "smoke",
        };
        let _ = writeln!(out, "plan at scale {scale}, cache {}", self.cache_dir.display());
        for (path, name, cells) in &self.manifests {
            let _ = writeln!(out, "  {name} ({}): {cells} cells", path.display());
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<15} {:<5} {:<7} {:>6} {:>8} {:>9} {:>8}  cells", "key", "stage", "state", "epochs", "images", "cost", "est.");
        for n in &self.nodes {
            let key = if n.stage == 1 { n.key[..12].to_string() } else { format!("└ {}", &n.key[..12]) };
            let images = train_images(&n.spec.dataset).map(human_count).unwrap_or_else(|| "?".into());
            let cost = n.cost_images().map(human_count).unwrap_or_else(|| "?".into());
            let est = match (n.state, self.seconds(n)) {
                (RunState::Cached, _) => "-".to_string(),
                (_, Some(s)) => format!("~{}", human_seconds(s)),
                (_, None) => "no data".to_string(),
            };
            let _ = writeln!(
                out,
                "{key:<15} {:<5} {:<7} {:>6} {images:>8} {cost:>9} {est:>8}  {}",
                n.stage,
                n.state.label(),
                n.epochs(),
                n.cells.join(", ")
            );
        }
        let count = |s: RunState| self.nodes.iter().filter(|n| n.state == s).count();
        let (s1, s2) = (self.nodes.iter().filter(|n| n.stage == 1).count(), self.nodes.iter().filter(|n| n.stage == 2).count());
        let pending: Vec<&PlanNode> = self.nodes.iter().filter(|n| n.state != RunState::Cached).collect();
        let images: usize = pending.iter().filter_map(|n| n.cost_images()).sum();
        let secs: f64 = pending.iter().filter_map(|n| self.seconds(n)).sum();
        let unmeasured = pending.iter().filter(|n| self.seconds(n).is_none()).count();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} runs ({s1} stage 1, {s2} stage 2): {} cached, {} partial, {} to run",
            self.nodes.len(),
            count(RunState::Cached),
            count(RunState::Partial),
            count(RunState::Missing)
        );
        let device = &self.device_name;
        let how = "epochs x train images / the images/s of this cache's finished runs of the same architecture and stage on this device";
        let _ = match (pending.len(), unmeasured) {
            (0, _) => writeln!(out, "nothing left to train"),
            (_, 0) => writeln!(out, "left to train: {} images, ~{} on {device} ({how})", human_count(images), human_seconds(secs)),
            (n, u) if u == n => writeln!(
                out,
                "left to train: {} images; no time estimate: this cache has no finished run of these architectures on {device} \
                 to measure from (train one, or time the step with `gcl-repro bench step`)",
                human_count(images)
            ),
            (_, u) => writeln!(
                out,
                "left to train: {} images, ~{} on {device} for the runs with a measurement, plus {u} run(s) with none on this device ({how})",
                human_count(images),
                human_seconds(secs)
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

pub const DEFAULT_SLURM_COMMAND: &str =
    "{exe} run {manifest} --only {key} --scale {scale} --cache-dir {cache_dir} --data-root {data_root}";

/// A string as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes the Slurm job scripts of the runs not yet cached; returns the names of the files
/// written. Paths inside the scripts are absolute, so they can be submitted from anywhere.
pub fn emit_slurm(plan: &Plan, opts: &PlanOptions, slurm: &SlurmOptions, dir: &Path) -> Result<Vec<String>> {
    let template = slurm.command.clone().unwrap_or_else(|| DEFAULT_SLURM_COMMAND.to_string());
    if !template.contains("{key}") {
        bail!("the Slurm task command `{template}` has no {{key}} placeholder, so every task would do the same thing");
    }
    std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::path::absolute(dir)?;
    let exe = std::env::current_exe().context("cannot find the gcl-repro executable")?;
    let cache_dir = std::path::absolute(&opts.cache_dir)?;
    let data_root = std::path::absolute(&opts.data_root)?;
    let scale = match opts.scale {
        Scale::Full => "full",
        Scale::Smoke => "smoke",
    };
    let name = plan.manifests.iter().map(|m| m.1.as_str()).collect::<Vec<_>>().join("+");
    let mut written = Vec::new();
    let mut stages = Vec::new();
    for stage in [1u8, 2] {
        let todo: Vec<&PlanNode> = plan.nodes.iter().filter(|n| n.stage == stage && n.state != RunState::Cached).collect();
        let keys_file = format!("keys{stage}.txt");
        let mut keys = String::new();
        for n in &todo {
            let manifest = n.manifest.to_str().context("manifest paths must be UTF-8")?;
            if manifest.contains(['\t', '\n']) {
                bail!("the manifest path {manifest:?} contains a tab or newline");
            }
            let _ = writeln!(keys, "{}\t{manifest}", n.key);
        }
        std::fs::write(dir.join(&keys_file), keys)?;
        written.push(keys_file.clone());
        if todo.is_empty() {
            let _ = std::fs::remove_file(dir.join(format!("stage{stage}.sbatch")));
            continue;
        }
        let command = template
            .replace("{exe}", &shell_quote(&exe.to_string_lossy()))
            .replace("{cache_dir}", &shell_quote(&cache_dir.to_string_lossy()))
            .replace("{data_root}", &shell_quote(&data_root.to_string_lossy()))
            .replace("{scale}", scale)
            .replace("{stage}", &stage.to_string())
            .replace("{manifest}", "\"$MANIFEST\"")
            .replace("{key}", "\"$KEY\"");
        let mut s = String::new();
        let _ = writeln!(s, "#!/bin/bash");
        let _ = writeln!(s, "# gcl-repro stage-{stage} runs of {name} at scale {scale}: one array task per line of {keys_file}.");
        let _ = writeln!(s, "#SBATCH --job-name=gcl-{name}-s{stage}");
        let _ = writeln!(s, "#SBATCH --array=0-{}", todo.len() - 1);
        let _ = writeln!(s, "#SBATCH --output={}/logs/stage{stage}-%A_%a.out", dir.display());
        for opt in &slurm.sbatch {
            let _ = writeln!(s, "#SBATCH {opt}");
        }
        let _ = writeln!(s, "set -euo pipefail");
        let _ = writeln!(s, "LINE=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {})", shell_quote(&dir.join(&keys_file).to_string_lossy()));
        let _ = writeln!(s, "KEY=${{LINE%%$'\\t'*}}");
        let _ = writeln!(s, "MANIFEST=${{LINE#*$'\\t'}}");
        let _ = writeln!(s, "echo \"task $SLURM_ARRAY_TASK_ID: stage {stage} run $KEY of $MANIFEST\"");
        let _ = writeln!(s, "{command}");
        let script = format!("stage{stage}.sbatch");
        std::fs::write(dir.join(&script), s)?;
        written.push(script);
        stages.push((stage, todo.len()));
    }
    let mut sub = String::new();
    let _ = writeln!(sub, "#!/bin/bash");
    let _ = writeln!(sub, "# Submits the stage-1 array, then the stage-2 array, which starts only once every stage-1");
    let _ = writeln!(sub, "# task has succeeded (afterok on an array job waits for all of its tasks).");
    let _ = writeln!(sub, "set -euo pipefail");
    let _ = writeln!(sub, "cd {}", shell_quote(&dir.to_string_lossy()));
    let _ = writeln!(sub, "DEP=()");
    if stages.is_empty() {
        let _ = writeln!(sub, "echo 'nothing to run: every run is cached'");
    }
    for (stage, n) in &stages {
        let _ = writeln!(sub, "JOB=$(sbatch --parsable \"${{DEP[@]}}\" stage{stage}.sbatch)");
        let _ = writeln!(sub, "JOB=${{JOB%%;*}}");
        let _ = writeln!(sub, "echo \"stage {stage}: job $JOB ({n} tasks)\"");
        let _ = writeln!(sub, "DEP=(--dependency=afterok:$JOB)");
    }
    std::fs::write(dir.join("submit.sh"), sub)?;
    written.push("submit.sh".into());
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tailed_cifar_sizes_match_the_published_counts() {
        // CIFAR-10-LT gamma 100: 12,406 images; CIFAR-100-LT gamma 100: 10,847 (Cao et al. 2019).
        let c10 = DatasetSpec { imbalance: 100.0, ..DatasetSpec::default() };
        assert_eq!(train_images(&c10), Some(12_406));
        let c100 = DatasetSpec { name: DatasetName::Cifar100, imbalance: 100.0, ..DatasetSpec::default() };
        assert_eq!(train_images(&c100), Some(10_847));
        let balanced = DatasetSpec { imbalance: 1.0, ..DatasetSpec::default() };
        assert_eq!(train_images(&balanced), Some(50_000));
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }
}

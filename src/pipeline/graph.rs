//! The run graph: every distinct training that one or more manifests ask for at a scale, built
//! once and read by every command (`plan` and its Slurm scripts, `run`, `report`, `cache gc`,
//! `cache export`, `explain`), so what `plan` shows is what `run` runs.
//!
//! Nodes are keyed by their cache key: a stage-1 run shared by several stage-2 variants (or by
//! several cells, seeds or manifests) is one node, listed before the stage-2 nodes built on it.
//! A planned run whose data is not under the data root has no key; it is kept apart in
//! [`RunGraph::unavailable`] with the reason, never hashed into a placeholder key.
use crate::cache::key;
use crate::data::catalog::train_images;
use crate::data::DataIdentity;
use crate::manifest::{self, Manifest, Overrides, TableCell};
use crate::training::spec::{RunSpec, Scale};
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Which stage a run is: stage 1, or stage 2 on top of the stage-1 run `parent`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunStage {
    One,
    Two { parent: String },
}

/// One place a run is used: a cell of a manifest, for one seed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CellUse {
    pub manifest: String,
    pub cell: String,
    pub seed: u64,
}

impl CellUse {
    /// `manifest:row.column/sSEED` (run and log messages).
    pub fn label(&self) -> String {
        format!("{}:{}/s{}", self.manifest, self.cell, self.seed)
    }
}

/// One distinct training (also what a worker process receives, as `worker.json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunNode {
    pub key: String,
    pub stage: RunStage,
    /// The settings of the run (stage 1 alone for a stage-1 node).
    pub spec: RunSpec,
    /// The data identity that went into the key.
    pub data_identity: String,
    /// The first manifest that uses the run (absolute; a Slurm task runs the run from it).
    pub manifest: PathBuf,
    /// Every cell and seed that uses it, in order of first use.
    pub uses: Vec<CellUse>,
}

impl RunNode {
    /// 1 or 2.
    pub fn stage_number(&self) -> u8 {
        match self.stage {
            RunStage::One => 1,
            RunStage::Two { .. } => 2,
        }
    }

    pub fn parent(&self) -> Option<&str> {
        match &self.stage {
            RunStage::One => None,
            RunStage::Two { parent } => Some(parent),
        }
    }

    pub fn epochs(&self) -> usize {
        match (&self.spec.stage2, &self.stage) {
            (Some(s2), RunStage::Two { .. }) => s2.optim.epochs,
            _ => self.spec.stage1.optim.epochs,
        }
    }

    /// Training images seen: epochs x train-split size (None when the size is unknown).
    pub fn cost_images(&self) -> Option<usize> {
        train_images(&self.spec.dataset).map(|n| n * self.epochs())
    }

    /// What the key is computed from (stored beside the result as `key.json`).
    pub fn key_material(&self) -> serde_json::Value {
        match &self.stage {
            RunStage::Two { parent } => key::stage2_material(&self.spec, parent).expect("a stage-2 node has a stage 2"),
            RunStage::One => key::stage1_material(&self.spec, &self.data_identity),
        }
    }

    /// The first 12 characters of the key.
    pub fn short(&self) -> &str {
        &self.key[..12.min(self.key.len())]
    }

    /// The uses as `manifest:row.column/sSEED`, comma-separated (run and log messages).
    pub fn label(&self) -> String {
        self.uses.iter().map(CellUse::label).collect::<Vec<_>>().join(", ")
    }
}

/// One manifest with its cells expanded at the graph's scale.
pub struct ExpandedManifest {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub cells: Vec<TableCell>,
}

/// A planned run whose data is not here: where it is used and why it has no key.
#[derive(Clone, Debug)]
pub struct UnavailableRun {
    pub label: String,
    pub reason: String,
}

pub struct RunGraph {
    pub scale: Scale,
    pub manifests: Vec<ExpandedManifest>,
    /// Stage-1 nodes, each followed by the stage-2 nodes built on it, in order of first use.
    pub nodes: Vec<RunNode>,
    pub unavailable: Vec<UnavailableRun>,
}

impl RunGraph {
    /// Loads and expands the manifests; nothing is read from the cache and nothing is run.
    /// `overrides` (`--seeds N`, `--set KEY=VALUE`) change every manifest the same way.
    pub fn build(paths: &[PathBuf], scale: Scale, overrides: &Overrides, data_root: &Path) -> Result<RunGraph> {
        let mut manifests = Vec::new();
        for path in paths {
            let mut m = manifest::load(path)?;
            overrides.apply(&mut m)?;
            let cells = manifest::expand(&m, scale, data_root)?;
            manifests.push(ExpandedManifest { path: path.clone(), manifest: m, cells });
        }
        let mut graph = RunGraph { scale, manifests: Vec::new(), nodes: Vec::new(), unavailable: Vec::new() };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut children: HashMap<String, Vec<RunNode>> = HashMap::new();
        let mut stage1: Vec<RunNode> = Vec::new();
        for em in &manifests {
            let abs = std::path::absolute(&em.path).with_context(|| format!("cannot resolve {}", em.path.display()))?;
            for cell in &em.cells {
                for run in &cell.runs {
                    let used = CellUse { manifest: em.manifest.name.clone(), cell: cell.id(), seed: run.seed };
                    let (Some(keys), DataIdentity::Known(identity)) = (&run.keys, &run.data) else {
                        if let DataIdentity::Unavailable { reason, .. } = &run.data {
                            graph.unavailable.push(UnavailableRun {
                                label: used.label(),
                                reason: format!("data not available: {reason}"),
                            });
                        }
                        continue;
                    };
                    let node = |key: &str, stage: RunStage, spec: RunSpec| RunNode {
                        key: key.to_string(),
                        stage,
                        spec,
                        data_identity: identity.clone(),
                        manifest: abs.clone(),
                        uses: Vec::new(),
                    };
                    let i = *index.entry(keys.stage1.clone()).or_insert_with(|| {
                        stage1.push(node(&keys.stage1, RunStage::One, run.spec.stage1_only()));
                        stage1.len() - 1
                    });
                    add_use(&mut stage1[i].uses, &used);
                    if let Some(k2) = &keys.stage2 {
                        let siblings = children.entry(keys.stage1.clone()).or_default();
                        let j = match siblings.iter().position(|n| &n.key == k2) {
                            Some(j) => j,
                            None => {
                                siblings.push(node(
                                    k2,
                                    RunStage::Two { parent: keys.stage1.clone() },
                                    run.spec.clone(),
                                ));
                                siblings.len() - 1
                            }
                        };
                        add_use(&mut siblings[j].uses, &used);
                    }
                }
            }
        }
        for n1 in stage1 {
            let kids = children.remove(&n1.key).unwrap_or_default();
            graph.nodes.push(n1);
            graph.nodes.extend(kids);
        }
        graph.manifests = manifests;
        Ok(graph)
    }

    pub fn node(&self, key: &str) -> Option<&RunNode> {
        self.nodes.iter().find(|n| n.key == key)
    }

    /// Every key of the graph.
    pub fn keys(&self) -> HashSet<String> {
        self.nodes.iter().map(|n| n.key.clone()).collect()
    }

    /// The nodes named by `--only` (unique key prefixes), with the stage-1 parents of chosen
    /// stage-2 runs, in graph order; all nodes when `only` is empty.
    pub fn select(&self, only: &[String]) -> Result<Vec<&RunNode>> {
        if only.is_empty() {
            return Ok(self.nodes.iter().collect());
        }
        let mut keep: HashSet<&str> = HashSet::new();
        for prefix in only {
            let hits: Vec<&RunNode> = self.nodes.iter().filter(|n| n.key.starts_with(prefix.as_str())).collect();
            match hits.as_slice() {
                [] => bail!("--only {prefix}: no run of these manifests has such a key (see `gcl-repro plan`)"),
                [one] => {
                    keep.insert(&one.key);
                    keep.extend(one.parent());
                }
                many => bail!("--only {prefix}: {} runs match; give more characters of the key", many.len()),
            }
        }
        Ok(self.nodes.iter().filter(|n| keep.contains(n.key.as_str())).collect())
    }
}

fn add_use(uses: &mut Vec<CellUse>, used: &CellUse) {
    if !uses.contains(used) {
        uses.push(used.clone());
    }
}

//! From a manifest of the run graph and the cache to the report's inputs: each cell's planned
//! runs looked up by key, the stored results collected into [`CellInput`]s. Nothing is trained.
use super::{CellInput, InProgress, RunInput};
use crate::cache::{Cache, RunState};
use crate::data::DataIdentity;
use crate::manifest::{self, Manifest, PlannedRun, TableCell};
use crate::metrics::RunResult;
use crate::pipeline::graph::ExpandedManifest;
use crate::training::spec::Scale;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One manifest with its cells at a scale and what the cache holds for them.
pub struct GatheredManifest {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub scale: Scale,
    /// The expanded cells, in table order.
    pub cells: Vec<TableCell>,
    /// The report's view of `cells` (same order): the stored result of each planned run.
    pub inputs: Vec<CellInput>,
    /// Datasets whose identity could not be computed (e.g. missing files): their keys are
    /// placeholders, so their cells show as not run. One message per dataset.
    pub warnings: Vec<String>,
}

/// Look up the results of one manifest of a run graph built at `scale` (taken over, not copied).
pub fn gather(em: ExpandedManifest, scale: Scale, data_root: &Path, cache: &Cache) -> Result<GatheredManifest> {
    let ExpandedManifest { path, manifest: m, cells } = em;
    let mut warnings = Vec::new();
    for run in cells.iter().flat_map(|c| &c.runs) {
        if let DataIdentity::Unavailable { dataset, reason } = &run.data {
            // One line per missing data set, however many of its variants (imbalance, ...) fail.
            let line = format!(
                "{}: the data identity of {dataset:?} is unavailable under {} ({reason}); its cells show as not run (set --data-root)",
                path.display(),
                data_root.display()
            );
            if !warnings.contains(&line) {
                warnings.push(line);
            }
        }
    }
    let mut inputs = Vec::new();
    for cell in &cells {
        let row = m.rows.iter().find(|r| r.id == cell.row).expect("expanded cells name manifest rows");
        let column = m.columns.iter().find(|c| c.id == cell.column).expect("expanded cells name manifest columns");
        let mut runs = Vec::new();
        let mut training = Vec::new();
        for run in &cell.runs {
            let Some(key) = run.key() else { continue };
            if let Some(result) = stored(cache, key)? {
                runs.push(RunInput { seed: run.seed, key: key.to_string(), result });
            } else if let Some(p) = in_progress(cache, run) {
                training.push(p);
            }
        }
        inputs.push(CellInput {
            manifest: m.name.clone(),
            table_title: m.title.clone(),
            row: row.id.clone(),
            row_label: row.label.clone(),
            quoted: cell.quoted,
            column: column.id.clone(),
            column_label: column.label.clone(),
            published: cell.published,
            smoke: scale == Scale::Smoke,
            runs,
            expected_seeds: cell.runs.len(),
            tolerance: m.tolerance,
            training,
        });
    }
    Ok(GatheredManifest { path, manifest: m, scale, cells, inputs, warnings })
}

/// How far a run without a result has come: its stage-2 run's partial epoch, else its stage-1
/// run's (a stage-2 run waiting for a finished stage 1 has not started: `None`). A checkpoint
/// that cannot be read counts as epoch 0 here; `run` names it when it resumes.
fn in_progress(cache: &Cache, run: &PlannedRun) -> Option<InProgress> {
    let keys = run.keys.as_ref()?;
    let partial = |key: &str| (cache.state(key) == RunState::Partial).then(|| cache.partial_epochs(key).unwrap_or(0));
    // Stage 2's checkpoint when it has one, else stage 1's (each read once).
    let stage2 = keys.stage2.as_deref().zip(run.spec.stage2.as_ref());
    let (stage, epochs_done, epochs) = match stage2.and_then(|(k2, s2)| Some((partial(k2)?, s2.optim.epochs))) {
        Some((done, epochs)) => (2, done, epochs),
        None => (1, partial(&keys.stage1)?, run.spec.stage1.optim.epochs),
    };
    Some(InProgress { seed: run.seed, stage, epochs_done, epochs })
}

/// The stored result of a run, with the file named when it cannot be read.
pub fn stored(cache: &Cache, key: &str) -> Result<Option<RunResult>> {
    cache.result(key).with_context(|| format!("reading the stored result of run {key}"))
}

impl GatheredManifest {
    /// Cells that are trained (not quoted, not skipped): the denominator of "cells with results".
    pub fn trained_cells(&self) -> usize {
        self.cells.iter().filter(|c| !c.runs.is_empty()).count()
    }

    /// Trained cells with at least one stored run.
    pub fn cells_with_results(&self) -> usize {
        self.inputs.iter().filter(|c| !c.runs.is_empty()).count()
    }

    pub fn has_runs(&self) -> bool {
        self.cells_with_results() > 0
    }

    pub fn cell(&self, id: &str) -> Option<&TableCell> {
        self.cells.iter().find(|c| c.id() == id)
    }

    /// The run a figure shows for a cell: its first seed's.
    pub fn figure_run(&self, id: &str) -> Option<&PlannedRun> {
        self.cell(id).and_then(|c| c.runs.first())
    }

    /// Row label of a cell, with the column label when the figure spans several columns.
    pub fn label(&self, id: &str, with_column: bool) -> String {
        let input = self.inputs.iter().find(|c| manifest::cell_id(&c.row, &c.column) == id);
        match input {
            Some(c) if with_column => format!("{}, {}", c.row_label, c.column_label),
            Some(c) => c.row_label.clone(),
            None => id.to_string(),
        }
    }

    /// The command that trains this manifest's runs.
    pub fn run_command(&self) -> String {
        let scale = if self.scale == Scale::Smoke { " --scale smoke" } else { "" };
        let flags: String = self.manifest.flags.iter().map(|f| format!(" {f}")).collect();
        format!("gcl-repro run {}{scale}{flags}", self.path.display())
    }
}

//! `gcl-repro report`: every output of the report from the cache alone.
//!
//! ```text
//! OUT/tables/<manifest>.{md,tex,csv}    one paper table per manifest ("not run" cells included)
//! OUT/runs.parquet, OUT/runs.csv        one row per stored run of all manifests
//! OUT/figures/<manifest>-<id>.{png,svg} the manifests' figures whose runs are stored
//! OUT/REPORT.md                         tables, figures (relative links), provenance
//! ```
use super::figures::{make_figure, FigureOutcome};
use super::gather::{gather, GatheredManifest};
use super::{paper_tables, report_markdown, write_runs, write_table_files, CellInput, ReportSection};
use crate::cache::Cache;
use crate::manifest::Overrides;
use crate::pipeline::RunGraph;
use crate::training::spec::Scale;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What [`build_report`] did.
#[derive(Clone, Debug, Default)]
pub struct ReportSummary {
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// Trained cells (not quoted, not skipped) with at least one stored run, over all manifests.
    pub cells_with_results: usize,
    pub cells_total: usize,
    pub figures_made: usize,
    /// One line per figure not drawn, saying what it waits for.
    pub figures_skipped: Vec<String>,
    /// Problems that did not stop the report (e.g. a data set whose identity is unavailable).
    pub warnings: Vec<String>,
    /// One `manifest: verdicts` line per table (as at the top of its REPORT.md section).
    pub verdicts: Vec<String>,
}

impl ReportSummary {
    /// What was written, for the terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            writeln!(out, "wrote {}", f.display()).unwrap();
        }
        for s in &self.figures_skipped {
            writeln!(out, "skipped {s}").unwrap();
        }
        for w in &self.warnings {
            writeln!(out, "warning: {w}").unwrap();
        }
        for v in &self.verdicts {
            writeln!(out, "{v}").unwrap();
        }
        writeln!(
            out,
            "{}/{} cells have results; {} figures made, {} waiting for runs",
            self.cells_with_results,
            self.cells_total,
            self.figures_made,
            self.figures_skipped.len()
        )
        .unwrap();
        out
    }
}

/// The stored runs of every manifest, refusing two manifests of one name (their tables would
/// overwrite each other).
fn gather_all(
    manifests: &[PathBuf],
    scale: Scale,
    overrides: &Overrides,
    data_root: &Path,
    cache: &Cache,
) -> Result<Vec<GatheredManifest>> {
    let mut gathered: Vec<GatheredManifest> = Vec::new();
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    let graph = RunGraph::build(manifests, scale, overrides, data_root)?;
    for (path, em) in manifests.iter().zip(graph.manifests) {
        let g = gather(em, scale, data_root, cache).with_context(|| format!("reporting {}", path.display()))?;
        if let Some(first) = names.insert(g.manifest.name.clone(), path.clone()) {
            bail!(
                "{} and {} are both named `{}`; their tables would overwrite each other: set a distinct `name` in [manifest]",
                first.display(),
                path.display(),
                g.manifest.name
            );
        }
        gathered.push(g);
    }
    Ok(gathered)
}

/// Build the report of `manifests` at `scale` from the runs stored in `cache_dir` into `out`;
/// `overrides` (`--seeds N`, `--set KEY=VALUE`) change every manifest as they did for `run`.
/// Missing runs are not an error: their cells say "not run" and their figures wait.
pub fn build_report(
    manifests: &[PathBuf],
    scale: Scale,
    overrides: &Overrides,
    cache_dir: &Path,
    data_root: &Path,
    out: &Path,
) -> Result<ReportSummary> {
    if manifests.is_empty() {
        bail!("no manifests to report on: name them, or run from the repository root (experiments/*.toml)");
    }
    let cache = Cache::open(cache_dir)?;
    let gathered = gather_all(manifests, scale, overrides, data_root, &cache)?;
    let mut summary = ReportSummary::default();
    let tables_dir = out.join("tables");
    let figures_dir = out.join("figures");
    let mut sections = Vec::new();
    for g in &gathered {
        summary.cells_total += g.trained_cells();
        summary.cells_with_results += g.cells_with_results();
        summary.warnings.extend(g.warnings.iter().cloned());
        for table in paper_tables(&g.inputs)? {
            if g.has_runs() {
                summary.verdicts.push(format!("{}: {}", table.manifest, table.verdict_line()));
            }
            let files = write_table_files(&table, &tables_dir, g.manifest.shots)?;
            summary.files.extend([files.markdown, files.latex, files.csv]);
        }
        let mut section = ReportSection {
            manifest: g.manifest.name.clone(),
            title: g.manifest.title.clone(),
            description: description(g),
            cells: g.inputs.clone(),
            shots: g.manifest.shots,
            run_command: g.run_command(),
            ..Default::default()
        };
        for fig in &g.manifest.figures {
            if !g.has_runs() {
                summary
                    .figures_skipped
                    .push(format!("figure `{}` of {}: no run of the manifest is stored yet", fig.id, g.manifest.name));
                continue;
            }
            match make_figure(g, fig, &cache, &figures_dir)
                .with_context(|| format!("{}: figure `{}`", g.path.display(), fig.id))?
            {
                FigureOutcome::Made { reference, files } => {
                    summary.figures_made += 1;
                    summary.files.extend([files.png, files.svg]);
                    section.figures.push(reference);
                }
                FigureOutcome::Waiting(line) => {
                    summary.figures_skipped.push(format!("{line} ({})", g.manifest.name));
                    section.notes.push(line);
                }
            }
        }
        sections.push(section);
    }
    let all_cells: Vec<CellInput> = gathered.iter().flat_map(|g| g.inputs.iter().cloned()).collect();
    let (parquet, csv) = write_runs(&all_cells, out)?;
    summary.files.extend([parquet, csv]);
    let report = out.join("REPORT.md");
    crate::atomic::write(&report, report_markdown(&sections))?;
    summary.files.push(report);
    Ok(summary)
}

/// The line under a section's heading: where the numbers come from.
fn description(g: &GatheredManifest) -> String {
    let scale = match g.scale {
        Scale::Full => "full scale",
        Scale::Smoke => "**smoke scale** (tiny budgets: pipeline check only, not comparable with the paper)",
    };
    let changed = if g.manifest.flags.is_empty() {
        String::new()
    } else {
        format!(
            " Changed on the command line: `{}` (these are not the manifest's own settings).",
            g.manifest.flags.join(" ")
        )
    };
    format!(
        "Manifest `{}`, {scale}; {} of {} trained cells have stored results.{changed}",
        g.path.display(),
        g.cells_with_results(),
        g.trained_cells()
    )
}

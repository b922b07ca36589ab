//! Tables, figures and the Markdown report, built from stored run results alone.
//!
//! [`build_report`] is the whole `gcl-repro report` command: [`gather`] reads each manifest's
//! results from the cache into [`CellInput`]s (one per manifest row x column), [`write_tables`]
//! writes per-manifest Markdown / LaTeX / CSV tables plus `runs.parquet` and `runs.csv`,
//! [`figures`] draws the manifests' figures (t-SNE maps cached under `<cache>/derived/`), and
//! [`report_markdown`] is the text of `results/REPORT.md`.
//!
//! Cell notation, shared by every format:
//! - reproduced: mean ± sample std over seeds of the final-epoch top-1 accuracy, with the mean
//!   best-epoch accuracy beside it when it differs (`79.12 ± 0.30 (best 80.01)`); the best epoch
//!   is chosen on the test set, as the released GCL code does, so it is shown, never used alone;
//! - `quoted`: the paper quotes this row from another paper; only the published value is shown;
//! - `not run`: no stored result yet; `(1/3 seeds)`: only some seeds have results;
//! - `(smoke)`: smoke-scale runs (tiny budgets). They get no difference against the published
//!   full-scale value, because the two are not comparable.
pub mod build;
pub mod figures;
pub mod gather;
pub mod plot;
pub mod tsne;

pub use build::{build_report, ReportSummary};

use crate::metrics::{RunResult, SHOT_RULE};
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One reported cell of a paper table: a (row, column) of a manifest, over its seeds.
#[derive(Clone, Debug)]
pub struct CellInput {
    /// Manifest name, e.g. "table1".
    pub manifest: String,
    pub table_title: String,
    pub row: String,
    pub row_label: String,
    pub quoted: bool,
    pub column: String,
    pub column_label: String,
    pub published: Option<f64>,
    /// Smoke-scale runs: labelled as such everywhere, never compared as if full.
    pub smoke: bool,
    /// One per seed that has a result; empty = not yet run.
    pub runs: Vec<RunInput>,
    pub expected_seeds: usize,
}

#[derive(Clone, Debug)]
pub struct RunInput {
    pub seed: u64,
    pub key: String,
    pub result: RunResult,
}

/// The numbers behind one table cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellSummary {
    /// Seeds with a result.
    pub seeds: usize,
    pub expected_seeds: usize,
    /// Mean final-epoch top-1 (None when not run).
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1) of the final-epoch top-1; None below 2 seeds.
    pub std: Option<f64>,
    /// Mean best-epoch top-1.
    pub best_mean: Option<f64>,
    /// Mean of each shot group's final-epoch accuracy over the seeds that have it.
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    pub published: Option<f64>,
    /// Reproduced - published; None for quoted, not-run and smoke cells.
    pub delta: Option<f64>,
    pub quoted: bool,
    pub smoke: bool,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn sample_std(v: &[f64]) -> Option<f64> {
    let m = mean(v)?;
    (v.len() >= 2).then(|| (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

pub fn summarize(cell: &CellInput) -> CellSummary {
    let finals: Vec<f64> = cell.runs.iter().map(|r| r.result.final_eval.top1).collect();
    let bests: Vec<f64> = cell.runs.iter().map(|r| r.result.best_top1).collect();
    let group = |f: fn(&RunResult) -> Option<f64>| mean(&cell.runs.iter().filter_map(|r| f(&r.result)).collect::<Vec<_>>());
    let m = if cell.quoted { None } else { mean(&finals) };
    let delta = match (m, cell.published, cell.smoke) {
        (Some(m), Some(p), false) => Some(m - p),
        _ => None,
    };
    CellSummary {
        seeds: cell.runs.len(),
        expected_seeds: cell.expected_seeds,
        mean: m,
        std: if cell.quoted { None } else { sample_std(&finals) },
        best_mean: if cell.quoted { None } else { mean(&bests) },
        many: group(|r| r.final_eval.many),
        medium: group(|r| r.final_eval.medium),
        few: group(|r| r.final_eval.few),
        published: cell.published,
        delta,
        quoted: cell.quoted,
        smoke: cell.smoke,
    }
}

// ---------------------------------------------------------------------------------------------
// Cell text
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Markdown and CSV: UTF-8 symbols.
    Plain,
    Latex,
}

const DASH: &str = "–";

impl CellSummary {
    fn reproduced_text(&self, style: Style) -> String {
        if self.quoted {
            return if style == Style::Latex { r"\textit{quoted}".into() } else { "quoted".into() };
        }
        let Some(m) = self.mean else {
            return if self.smoke { "not run (smoke)".into() } else { "not run".into() };
        };
        let mut s = format!("{m:.2}");
        if let Some(sd) = self.std {
            let pm = if style == Style::Latex { r" $\pm$ " } else { " ± " };
            write!(s, "{pm}{sd:.2}").unwrap();
        }
        if let Some(b) = self.best_mean {
            if format!("{b:.2}") != format!("{m:.2}") {
                write!(s, " (best {b:.2})").unwrap();
            }
        }
        if self.seeds < self.expected_seeds {
            write!(s, " ({}/{} seeds)", self.seeds, self.expected_seeds).unwrap();
        }
        if self.smoke {
            s.push_str(" (smoke)");
        }
        s
    }

    fn published_text(&self) -> String {
        self.published.map(|p| format!("{p:.2}")).unwrap_or_else(|| DASH.into())
    }

    fn delta_text(&self, style: Style) -> String {
        match self.delta {
            Some(d) if style == Style::Latex => format!("${d:+.2}$"),
            Some(d) => format!("{d:+.2}"),
            None if style == Style::Latex => "--".into(),
            None => DASH.into(),
        }
    }

    fn shots_text(&self, style: Style) -> String {
        if self.quoted || self.mean.is_none() {
            return if style == Style::Latex { "--".into() } else { DASH.into() };
        }
        let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| DASH.into());
        format!("{} / {} / {}", f(self.many), f(self.medium), f(self.few))
    }
}

// ---------------------------------------------------------------------------------------------
// One manifest's table in the paper's layout
// ---------------------------------------------------------------------------------------------

/// A manifest's cells arranged as rows x columns, both in manifest (first appearance) order.
pub struct PaperTable {
    pub manifest: String,
    pub title: String,
    /// (row id, label, quoted)
    pub rows: Vec<(String, String, bool)>,
    /// (column id, label)
    pub columns: Vec<(String, String)>,
    cells: HashMap<(usize, usize), CellSummary>,
}

/// Group cells by manifest (in order of first appearance) and lay each out as a table.
pub fn paper_tables(cells: &[CellInput]) -> Result<Vec<PaperTable>> {
    let mut tables: Vec<PaperTable> = Vec::new();
    for cell in cells {
        let t = match tables.iter().position(|t| t.manifest == cell.manifest) {
            Some(t) => t,
            None => {
                tables.push(PaperTable {
                    manifest: cell.manifest.clone(),
                    title: cell.table_title.clone(),
                    rows: Vec::new(),
                    columns: Vec::new(),
                    cells: HashMap::new(),
                });
                tables.len() - 1
            }
        };
        let table = &mut tables[t];
        let r = match table.rows.iter().position(|r| r.0 == cell.row) {
            Some(r) => r,
            None => {
                table.rows.push((cell.row.clone(), cell.row_label.clone(), cell.quoted));
                table.rows.len() - 1
            }
        };
        let c = match table.columns.iter().position(|c| c.0 == cell.column) {
            Some(c) => c,
            None => {
                table.columns.push((cell.column.clone(), cell.column_label.clone()));
                table.columns.len() - 1
            }
        };
        if table.cells.insert((r, c), summarize(cell)).is_some() {
            bail!(
                "manifest {:?}: cell (row {:?}, column {:?}) is given twice; each row x column must appear once",
                cell.manifest,
                cell.row,
                cell.column
            );
        }
    }
    Ok(tables)
}

impl PaperTable {
    pub fn cell(&self, row: &str, column: &str) -> Option<&CellSummary> {
        let r = self.rows.iter().position(|x| x.0 == row)?;
        let c = self.columns.iter().position(|x| x.0 == column)?;
        self.cells.get(&(r, c))
    }

    /// Header and body as plain strings, the layout shared by Markdown and CSV.
    fn text_grid(&self, shots: bool, style: Style) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header = vec!["Method".to_string()];
        for (_, label) in &self.columns {
            header.push(label.clone());
            header.push(format!("{label} paper"));
            header.push(format!("{label} Δ"));
            if shots {
                header.push(format!("{label} many / med / few"));
            }
        }
        let body = (0..self.rows.len())
            .map(|r| {
                let mut line = vec![self.rows[r].1.clone()];
                for c in 0..self.columns.len() {
                    match self.cells.get(&(r, c)) {
                        Some(s) => {
                            line.push(s.reproduced_text(style));
                            line.push(s.published_text());
                            line.push(s.delta_text(style));
                            if shots {
                                line.push(s.shots_text(style));
                            }
                        }
                        // The manifest has no such cell (e.g. a method not run on that dataset).
                        None => line.extend(std::iter::repeat(DASH.to_string()).take(if shots { 4 } else { 3 })),
                    }
                }
                line
            })
            .collect();
        (header, body)
    }

    pub fn markdown(&self, shots: bool) -> String {
        let esc = |s: &str| s.replace('|', r"\|");
        let (header, body) = self.text_grid(shots, Style::Plain);
        let mut out = String::new();
        writeln!(out, "| {} |", header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")).unwrap();
        let rule: Vec<&str> = header.iter().enumerate().map(|(i, _)| if i == 0 { ":---" } else { "---:" }).collect();
        writeln!(out, "| {} |", rule.join(" | ")).unwrap();
        for line in body {
            writeln!(out, "| {} |", line.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")).unwrap();
        }
        out
    }

    /// A booktabs table: one column group (ours, paper, difference[, shots]) per manifest column.
    pub fn latex(&self, shots: bool) -> String {
        let per = if shots { 4 } else { 3 };
        let mut out = String::new();
        out.push_str("% Generated by gcl-repro from stored results; needs \\usepackage{booktabs}.\n");
        out.push_str("\\begin{table}[t]\n\\centering\n");
        writeln!(out, "\\caption{{{} (top-1 accuracy, \\%; ours: final epoch, mean $\\pm$ std over seeds)}}", latex_escape(&self.title)).unwrap();
        writeln!(out, "\\label{{tab:{}}}", self.manifest.replace(|c: char| !c.is_ascii_alphanumeric(), "-")).unwrap();
        writeln!(out, "\\begin{{tabular}}{{l{}}}", format!("|{}", "c".repeat(per)).repeat(self.columns.len()).replace('|', " ")).unwrap();
        out.push_str("\\toprule\n");
        let groups: Vec<String> =
            self.columns.iter().map(|(_, l)| format!("\\multicolumn{{{per}}}{{c}}{{{}}}", latex_escape(l))).collect();
        writeln!(out, " & {} \\\\", groups.join(" & ")).unwrap();
        let rules: Vec<String> =
            (0..self.columns.len()).map(|c| format!("\\cmidrule(lr){{{}-{}}}", 2 + c * per, 1 + (c + 1) * per)).collect();
        writeln!(out, "{}", rules.join(" ")).unwrap();
        let mut sub = vec!["Ours", "Paper", "$\\Delta$"];
        if shots {
            sub.push("Many / Med. / Few");
        }
        let subs: Vec<&str> = (0..self.columns.len()).flat_map(|_| sub.iter().copied()).collect();
        writeln!(out, "Method & {} \\\\", subs.join(" & ")).unwrap();
        out.push_str("\\midrule\n");
        for r in 0..self.rows.len() {
            let mut line = vec![latex_escape(&self.rows[r].1)];
            for c in 0..self.columns.len() {
                match self.cells.get(&(r, c)) {
                    Some(s) => {
                        line.push(s.reproduced_text(Style::Latex));
                        line.push(s.published.map(|p| format!("{p:.2}")).unwrap_or_else(|| "--".into()));
                        line.push(s.delta_text(Style::Latex));
                        if shots {
                            line.push(s.shots_text(Style::Latex).replace(DASH, "--"));
                        }
                    }
                    None => line.extend(std::iter::repeat("--".to_string()).take(per)),
                }
            }
            writeln!(out, "{} \\\\", line.join(" & ")).unwrap();
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        out
    }

    /// The table as a DataFrame of strings, exactly the Markdown cell texts.
    pub fn frame(&self, shots: bool) -> Result<DataFrame> {
        let (header, body) = self.text_grid(shots, Style::Plain);
        let columns: Vec<Column> = header
            .iter()
            .enumerate()
            .map(|(i, h)| Column::new(h.as_str().into(), body.iter().map(|l| l[i].clone()).collect::<Vec<String>>()))
            .collect();
        Ok(DataFrame::new(body.len(), columns)?)
    }
}

/// Escape LaTeX specials and spell out the few non-ASCII symbols labels use.
fn latex_escape(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        match ch {
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '\\' => out.push_str("\\textbackslash{}"),
            'γ' => out.push_str("$\\gamma$"),
            'β' => out.push_str("$\\beta$"),
            'ρ' => out.push_str("$\\rho$"),
            'τ' => out.push_str("$\\tau$"),
            '±' => out.push_str("$\\pm$"),
            '×' => out.push_str("$\\times$"),
            'Δ' => out.push_str("$\\Delta$"),
            '–' => out.push_str("--"),
            '—' => out.push_str("---"),
            _ => out.push(ch),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// All runs as one DataFrame
// ---------------------------------------------------------------------------------------------

/// One row per stored run: where it sits in the paper, its numbers, and where it was made.
/// Cells without runs (quoted, not run) have no rows.
pub fn runs_frame(cells: &[CellInput]) -> Result<DataFrame> {
    let runs: Vec<(&CellInput, &RunInput)> = cells.iter().flat_map(|c| c.runs.iter().map(move |r| (c, r))).collect();
    let n = runs.len();
    let s = |f: &dyn Fn(&CellInput, &RunInput) -> String| runs.iter().map(|(c, r)| f(c, r)).collect::<Vec<String>>();
    let f = |f: &dyn Fn(&CellInput, &RunInput) -> f64| runs.iter().map(|(c, r)| f(c, r)).collect::<Vec<f64>>();
    let of = |f: &dyn Fn(&CellInput, &RunInput) -> Option<f64>| runs.iter().map(|(c, r)| f(c, r)).collect::<Vec<Option<f64>>>();
    let b = |f: &dyn Fn(&CellInput) -> bool| runs.iter().map(|(c, _)| f(c)).collect::<Vec<bool>>();
    let u = |f: &dyn Fn(&RunInput) -> u64| runs.iter().map(|(_, r)| f(r)).collect::<Vec<u64>>();
    let columns = vec![
        Column::new("manifest".into(), s(&|c, _| c.manifest.clone())),
        Column::new("table_title".into(), s(&|c, _| c.table_title.clone())),
        Column::new("row".into(), s(&|c, _| c.row.clone())),
        Column::new("row_label".into(), s(&|c, _| c.row_label.clone())),
        Column::new("column".into(), s(&|c, _| c.column.clone())),
        Column::new("column_label".into(), s(&|c, _| c.column_label.clone())),
        Column::new("seed".into(), u(&|r| r.seed)),
        Column::new("key".into(), s(&|_, r| r.key.clone())),
        Column::new("stage".into(), u(&|r| r.result.stage as u64)),
        Column::new("parent".into(), runs.iter().map(|(_, r)| r.result.parent.clone()).collect::<Vec<Option<String>>>()),
        Column::new("final_top1".into(), f(&|_, r| r.result.final_eval.top1)),
        Column::new("final_top5".into(), f(&|_, r| r.result.final_eval.top5)),
        Column::new("best_top1".into(), f(&|_, r| r.result.best_top1)),
        Column::new("best_epoch".into(), u(&|r| r.result.best_epoch as u64)),
        Column::new("epochs".into(), u(&|r| r.result.epochs.len() as u64)),
        Column::new("many".into(), of(&|_, r| r.result.final_eval.many)),
        Column::new("medium".into(), of(&|_, r| r.result.final_eval.medium)),
        Column::new("few".into(), of(&|_, r| r.result.final_eval.few)),
        Column::new("published".into(), of(&|c, _| c.published)),
        Column::new(
            "delta".into(),
            of(&|c, r| if c.smoke || c.quoted { None } else { c.published.map(|p| r.result.final_eval.top1 - p) }),
        ),
        Column::new("quoted".into(), b(&|c| c.quoted)),
        Column::new("smoke".into(), b(&|c| c.smoke)),
        Column::new("expected_seeds".into(), runs.iter().map(|(c, _)| c.expected_seeds as u64).collect::<Vec<u64>>()),
        Column::new("crate_version".into(), s(&|_, r| r.result.provenance.crate_version.clone())),
        Column::new("git_commit".into(), s(&|_, r| r.result.provenance.git_commit.clone())),
        Column::new("libtorch".into(), s(&|_, r| r.result.provenance.libtorch_version.clone())),
        Column::new("cuda".into(), runs.iter().map(|(_, r)| r.result.provenance.cuda.clone()).collect::<Vec<Option<String>>>()),
        Column::new("device".into(), s(&|_, r| r.result.provenance.device.clone())),
        Column::new("device_name".into(), s(&|_, r| r.result.provenance.device_name.clone())),
        Column::new("cpu_numerics".into(), s(&|_, r| r.result.provenance.cpu_numerics.clone())),
        Column::new("wall_seconds".into(), f(&|_, r| r.result.provenance.wall_seconds)),
        Column::new("started".into(), s(&|_, r| r.result.provenance.started.clone())),
        Column::new("finished".into(), s(&|_, r| r.result.provenance.finished.clone())),
    ];
    Ok(DataFrame::new(n, columns)?)
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// The files one manifest's table was written to.
#[derive(Clone, Debug)]
pub struct ManifestTableFiles {
    pub manifest: String,
    pub markdown: PathBuf,
    pub latex: PathBuf,
    pub csv: PathBuf,
}

#[derive(Clone, Debug)]
pub struct TableFiles {
    pub tables: Vec<ManifestTableFiles>,
    pub runs_parquet: PathBuf,
    pub runs_csv: PathBuf,
}

/// Write `<manifest>.md/.tex/.csv` per manifest, and `runs.parquet` + `runs.csv`, into `out_dir`.
/// `shots` adds a many / medium / few column to every column group.
pub fn write_tables(cells: &[CellInput], out_dir: &Path, shots: bool) -> Result<TableFiles> {
    let mut tables = Vec::new();
    for table in paper_tables(cells)? {
        tables.push(write_table_files(&table, out_dir, shots)?);
    }
    let (runs_parquet, runs_csv) = write_runs(cells, out_dir)?;
    Ok(TableFiles { tables, runs_parquet, runs_csv })
}

/// One table as `<dir>/<manifest>.md`, `.tex` and `.csv`.
pub fn write_table_files(table: &PaperTable, dir: &Path, shots: bool) -> Result<ManifestTableFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = dir.join(&table.manifest);
    let files = ManifestTableFiles {
        manifest: table.manifest.clone(),
        markdown: stem.with_extension("md"),
        latex: stem.with_extension("tex"),
        csv: stem.with_extension("csv"),
    };
    write_file(&files.markdown, &format!("## {}\n\n{}", table.title, table.markdown(shots)))?;
    write_file(&files.latex, &table.latex(shots))?;
    write_csv(&mut table.frame(shots)?, &files.csv)?;
    Ok(files)
}

/// Every stored run of `cells` as `<dir>/runs.parquet` and `<dir>/runs.csv` (one row per run).
pub fn write_runs(cells: &[CellInput], dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut runs = runs_frame(cells)?;
    let runs_parquet = dir.join("runs.parquet");
    let runs_csv = dir.join("runs.csv");
    let file = std::fs::File::create(&runs_parquet).with_context(|| format!("creating {}", runs_parquet.display()))?;
    ParquetWriter::new(file).finish(&mut runs).map_err(|e| anyhow::anyhow!("writing {}: {e}", runs_parquet.display()))?;
    write_csv(&mut runs, &runs_csv)?;
    Ok((runs_parquet, runs_csv))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    crate::atomic::write(path, text)
}

fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    CsvWriter::new(file).include_header(true).finish(df).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// REPORT.md
// ---------------------------------------------------------------------------------------------

/// A figure of the report; `path` is relative to REPORT.md (e.g. "figures/fig3_tsne.png").
#[derive(Clone, Debug)]
pub struct FigureRef {
    pub title: String,
    pub path: String,
    pub caption: String,
}

/// One manifest's part of the report.
#[derive(Clone, Debug, Default)]
pub struct ReportSection {
    pub manifest: String,
    pub title: String,
    /// Free Markdown shown under the heading (what the table reproduces, deviations); may be empty.
    pub description: String,
    pub cells: Vec<CellInput>,
    pub shots: bool,
    pub figures: Vec<FigureRef>,
    /// Lines shown after the figures, e.g. "figure X: waiting for runs ...".
    pub notes: Vec<String>,
    /// The command that trains this manifest's runs (`gcl-repro run PATH`), shown in place of
    /// the section when no run of the manifest is stored yet.
    pub run_command: String,
}

impl ReportSection {
    fn has_runs(&self) -> bool {
        self.cells.iter().any(|c| !c.runs.is_empty())
    }
}

/// The text of `results/REPORT.md`: each section's table, figures and the provenance of every
/// number (run key, crate version and commit, libtorch/CUDA, device, wall time, date).
pub fn report_markdown(sections: &[ReportSection]) -> String {
    let mut out = String::new();
    out.push_str("# GCL reproduction report\n\n");
    out.push_str(
        "Reproduction of *Long-tailed Visual Recognition via Gaussian Clouded Logit Adjustment* \
         (Li, Cheung, Lu; CVPR 2022), generated by `gcl-repro` from stored results.\n\n",
    );
    out.push_str("How to read the tables:\n\n");
    out.push_str(
        "- **Ours**: top-1 accuracy (%) at the final epoch, mean ± sample standard deviation over \
         seeds. `(best X)` is the mean best-epoch accuracy, which the released GCL code reports; it \
         selects the epoch on the test set, so it is optimistic.\n",
    );
    out.push_str("- **paper**: the published value; **Δ** = ours − paper (final epoch).\n");
    out.push_str("- `quoted`: the paper copies this row from another paper; only its value is shown.\n");
    out.push_str("- `not run`: no stored result yet; `(k/n seeds)`: only k of n seeds have results.\n");
    out.push_str(
        "- `(smoke)`: smoke-scale runs with tiny budgets, for checking the pipeline only; they have \
         no Δ because they are not comparable with the paper's full-scale numbers.\n",
    );
    writeln!(out, "- Shot groups: {SHOT_RULE}.\n").unwrap();
    for section in sections.iter().filter(|s| s.has_runs()) {
        section_markdown(&mut out, section);
    }
    // Manifests without a single stored run: one line each instead of a table of "not run".
    let waiting: Vec<&ReportSection> = sections.iter().filter(|s| !s.has_runs()).collect();
    if !waiting.is_empty() {
        out.push_str("## Not run yet\n\n");
        for s in waiting {
            let command = if s.run_command.is_empty() { format!("gcl-repro run <{}.toml>", s.manifest) } else { s.run_command.clone() };
            writeln!(out, "- {} (`{}`): not run yet: `{command}`", s.title, s.manifest).unwrap();
        }
        out.push('\n');
    }
    out
}

fn section_markdown(out: &mut String, section: &ReportSection) {
    writeln!(out, "## {} (`{}`)\n", section.title, section.manifest).unwrap();
    if !section.description.trim().is_empty() {
        writeln!(out, "{}\n", section.description.trim()).unwrap();
    }
    match paper_tables(&section.cells) {
        Ok(tables) => {
            for table in tables {
                if table.title != section.title {
                    writeln!(out, "### {}\n", table.title).unwrap();
                }
                writeln!(out, "{}", table.markdown(section.shots)).unwrap();
            }
        }
        Err(e) => writeln!(out, "**Table could not be laid out:** {e:#}\n").unwrap(),
    }
    for fig in &section.figures {
        writeln!(out, "### {}\n\n![{}]({})\n", fig.title, fig.title.replace(['[', ']'], ""), fig.path).unwrap();
        if !fig.caption.trim().is_empty() {
            writeln!(out, "{}\n", fig.caption.trim()).unwrap();
        }
    }
    for note in &section.notes {
        writeln!(out, "- {note}").unwrap();
    }
    if !section.notes.is_empty() {
        out.push('\n');
    }
    provenance_markdown(out, &section.cells);
}

fn provenance_markdown(out: &mut String, cells: &[CellInput]) {
    let runs: Vec<(&CellInput, &RunInput)> = cells.iter().flat_map(|c| c.runs.iter().map(move |r| (c, r))).collect();
    if runs.is_empty() {
        out.push_str("No stored runs yet for this manifest.\n\n");
        return;
    }
    out.push_str("<details><summary>Provenance of every number</summary>\n\n");
    out.push_str("| Row | Column | Seed | Stage | Run key | Final | Best (epoch) | gcl-repro | libtorch | CUDA | Device | CPU path | Wall time | Finished |\n");
    out.push_str("| :--- | :--- | ---: | ---: | :--- | ---: | ---: | :--- | :--- | :--- | :--- | :--- | ---: | :--- |\n");
    for (c, r) in runs {
        let p = &r.result.provenance;
        let commit: String = p.git_commit.chars().take(10).collect();
        writeln!(
            out,
            "| {} | {} | {} | {} | `{}` | {:.2} | {:.2} ({}) | {} ({}) | {} | {} | {} | {} | {} | {} |",
            c.row_label.replace('|', r"\|"),
            c.column_label.replace('|', r"\|"),
            r.seed,
            r.result.stage,
            r.key,
            r.result.final_eval.top1,
            r.result.best_top1,
            r.result.best_epoch,
            p.crate_version,
            if commit.is_empty() { "unknown commit" } else { &commit },
            p.libtorch_version,
            p.cuda.as_deref().unwrap_or("none"),
            if p.device_name.is_empty() { &p.device } else { &p.device_name },
            if p.cpu_numerics.is_empty() { "not recorded" } else { &p.cpu_numerics },
            wall_time(p.wall_seconds),
            p.finished,
        )
        .unwrap();
    }
    out.push_str("\n</details>\n\n");
}

/// Human wall time: "12.3 s", "4m 05s", "2h 07m".
pub fn wall_time(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    }
}

//! Tables, figures and the Markdown report, built from stored run results alone.
//!
//! [`build_report`] is the whole `gcl-repro report` command: [`gather`] reads each manifest's
//! results from the cache into [`CellInput`]s (one per manifest row x column), [`write_tables`]
//! writes per-manifest Markdown / LaTeX / CSV tables plus `runs.parquet` and `runs.csv`,
//! [`figures`] draws the manifests' figures (t-SNE maps cached under `<cache>/derived/`), and
//! [`report_markdown`] is the text of `results/REPORT.md`. [`compare`] sets two sets of runs
//! (caches, export archives, report directories, manifests) side by side, cell by cell.
//!
//! Cell notation, shared by every format:
//! - reproduced: the mean over seeds of the final-epoch top-1 accuracy ± the half-width of its
//!   95 % Student-t interval, the number of seeds and the verdict's mark ([`verdict`]), with the
//!   mean best-epoch accuracy beside it when it differs (`79.12 ± 0.75 (n=3) ✓ (best 80.01)`);
//!   one seed has no interval (`71.50 (n=1) ·`). The best epoch is chosen on the test set, as
//!   the released GCL code does, so it is shown, never used alone; the sample std is in
//!   `runs.csv`;
//! - `quoted`: the paper quotes this row from another paper; only the published value is shown;
//! - `not run`: no stored result yet; `(n=1 of 3)`: only some seeds have results;
//! - `(smoke)`: smoke-scale runs (tiny budgets). They get no difference against the published
//!   full-scale value and no verdict, because the two are not comparable.
//!
//! `runs.csv` / `runs.parquet` have one row per run; each row also carries its cell's n, mean,
//! std, interval, tolerance and verdict (the same on every run of a cell).
pub mod build;
pub mod compare;
pub mod figures;
pub mod gather;
pub mod plot;
pub mod tsne;

mod cell;
mod files;
mod frame;
mod markdown;
mod table;
pub mod verdict;

pub use build::{build_report, ReportSummary};
pub use cell::{summarize, CellSummary};
pub(crate) use cell::{Style, DASH};
pub use files::{write_runs, write_table_files, write_tables, ManifestTableFiles, TableFiles};
pub use frame::runs_frame;
pub use markdown::{report_markdown, FigureRef, ReportSection};
pub use table::{paper_tables, PaperTable};
pub use verdict::Verdict;

use crate::metrics::RunResult;

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
    /// The manifest's `tolerance`: points within which the published value counts as reproduced.
    pub tolerance: f64,
    /// The cell's runs in progress (partial in the cache), by seed.
    pub training: Vec<InProgress>,
}

/// A run in progress: how far its partial run has come (its checkpoint's epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct InProgress {
    pub seed: u64,
    /// The stage training now (1, or 2 once stage 1 has finished).
    pub stage: u8,
    pub epochs_done: usize,
    pub epochs: usize,
}

#[derive(Clone, Debug)]
pub struct RunInput {
    pub seed: u64,
    pub key: String,
    pub result: RunResult,
}

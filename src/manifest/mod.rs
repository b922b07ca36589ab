//! Manifests: a whole paper table (rows x columns, seeds, published values, figures) in TOML.
//!
//! ```toml
//! [manifest]
//! name = "table1"                 # defaults to the file stem
//! title = "CIFAR-10/100-LT, ResNet-32, top-1 %"
//! published = { file = "published/paper-tables.toml", table = "table1" }  # relative to this file
//! seeds = 3                       # seeds per cell (see "Seeds" below); default 3
//! smoke_seeds = 1                 # seeds per cell at `--scale smoke`; default 1 (a list: all)
//! tolerance = 1.0                 # points within which a cell counts as reproduced; default 1.0
//! shots = false                   # report many/medium/few columns
//! [manifest.smoke]                # RunSpec fragment applied at `--scale smoke`
//! stage1 = { epochs = 2 }
//! [defaults]                      # RunSpec fragment of every cell
//! [recipes.gcl_places_lt]         # a released recipe: `source` + a RunSpec fragment, merged
//! source = "Keke921/GCLLoss Places-LT/pla_train_backbone.py"   # after the column, before the row
//! [columns.cifar10_100]           # label, published_column + a RunSpec fragment
//! dataset = { name = "cifar10", imbalance = 100 }
//! [rows.ce]                       # label, quoted, published, published_row, columns, recipe
//!                                 # (`"gcl_{column}"`: one recipe per column) + fragment: the
//!                                 # row's settings are its deviations from the recipe (`explain`)
//! stage1 = { loss = { kind = "ce" } }
//! [cells."ce.cifar10_100"]        # skip, recipe + a RunSpec fragment for one cell
//! [sweep]                         # a grid of generated rows (`sweep`): row = "gcl" (optional),
//! stage1.lr = [0.1, 0.2]          # each listed setting with the values to try
//! [figures.tsne]                  # kind (tsne|curves|per_class), title, cells, splits, stage,
//!                                 # classes (t-SNE: class indices), max_points (t-SNE, per split)
//! ```
//! Seeds: every cell runs once per seed, and the report gives the mean, the sample std and the
//! 95 % Student-t interval over them, with a verdict against the published value (`tolerance`).
//! - `seeds = N` (a count): N consecutive seeds from the cell's `seed` (default 123): 123, 124,
//!   125 for N = 3. The first is the seed a one-seed table ran, so its runs keep their keys.
//! - no `seeds` key: the same as `seeds = 3`.
//! - `seeds = [a, b, ...]` (a list): exactly these seeds; `seed` may then not be set elsewhere.
//! - `smoke_seeds = N`: how many of those seeds run at `--scale smoke` (the first N); default 1
//!   for a count (smoke runs check the pipeline, their numbers are not compared), every listed
//!   seed for a list.
//! - `--seeds N` on the command line (`run`, `reproduce`, `plan`, `report`, `explain`, `cache
//!   export`) replaces the count of every manifest at both scales, again taking the first N (of
//!   a list: an error if it lists fewer); `cache gc --seeds N` keeps those runs as well.
//!
//! A stage-2 run of a seed is built on the stage-1 run of the same seed (same settings, same
//! seed: one key, trained once, shared by every stage-2 row over it).
//!
//! The command line changes every cell with `--seeds N` and `--set KEY=VALUE` ([`overrides`]).
//!
//! A cell's settings resolve as described in [`merge`]; [`load`] checks everything it can
//! without data (unknown keys, bad values, dangling references) and reports each problem as
//! `FILE:LINE:COL: message`; [`expand`] turns the table into cells with their planned runs.
mod expand;
mod figure_specs;
pub mod merge;
pub mod overrides;
mod published;
pub mod schema;
mod source;
mod sweep;
mod validate;

pub use expand::{expand, summary};
pub use overrides::{Overrides, Setting};

use crate::data::DataIdentity;
use crate::training::spec::{RunSpec, Scale};
use anyhow::{anyhow, bail, Context, Result};
use schema::runspec_shape;
use source::Source;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use toml::Table;
use validate::Validator;

#[derive(Clone, Debug, PartialEq)]
pub struct RowInfo {
    pub id: String,
    pub label: String,
    /// Published values only, no training (numbers the paper copied from other papers).
    pub quoted: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnInfo {
    pub id: String,
    pub label: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureKind {
    /// t-SNE of stage-1 (or stage-2) embeddings.
    Tsne,
    /// Training curves (loss and accuracy per epoch).
    Curves,
    /// Per-class accuracy against class size.
    PerClass,
}

impl FigureKind {
    const NAMES: [&'static str; 3] = ["tsne", "curves", "per_class"];
    fn parse(s: &str) -> Option<FigureKind> {
        match s {
            "tsne" => Some(FigureKind::Tsne),
            "curves" => Some(FigureKind::Curves),
            "per_class" => Some(FigureKind::PerClass),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub id: String,
    pub kind: FigureKind,
    pub title: String,
    /// Cell ids (`row.column`) of this manifest, all with runs.
    pub cells: Vec<String>,
    /// t-SNE only: which splits to embed (`train`, `test`); empty for other kinds.
    pub splits: Vec<String>,
    /// Which stage's model the figure shows (1 or 2).
    pub stage: u8,
    /// t-SNE only: the class indices to show (all classes when `None`), e.g. Fig. 1's four.
    pub classes: Option<Vec<usize>>,
    /// t-SNE only: at most this many points per split (a fixed-seed subsample).
    pub max_points: usize,
}

/// Default `max_points` of a t-SNE figure: enough to see the clusters, a few seconds of t-SNE.
pub const DEFAULT_TSNE_POINTS: usize = 2000;

/// A validated manifest. The settings fragments stay private; [`expand`] resolves them.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub path: PathBuf,
    pub name: String,
    pub title: String,
    pub shots: bool,
    /// The seeds of every cell at full scale (module docs: Seeds).
    pub seeds: Seeds,
    /// `smoke_seeds`: how many of `seeds` run at smoke scale; `None`: the default (1 for a count,
    /// all for a list).
    pub smoke_seeds: Option<usize>,
    /// A cell is reproduced when the published value lies within this many points of our mean
    /// (a larger miss inside our interval is inconclusive).
    pub tolerance: f64,
    pub rows: Vec<RowInfo>,
    pub columns: Vec<ColumnInfo>,
    pub figures: Vec<Figure>,
    defaults: Table,
    smoke: Table,
    /// `[recipes.ID]`: released recipes that cells follow (`recipe = "ID"` in a row or cell).
    recipes: HashMap<String, Recipe>,
    /// The recipe of each cell that has one (its own, else its row's).
    cell_recipes: HashMap<String, String>,
    row_settings: Vec<Table>,
    column_settings: Vec<Table>,
    cell_settings: HashMap<String, Table>,
    /// Rows generated by `[sweep]`, by row id: the point's settings, merged after the cell's.
    sweep_points: HashMap<String, SweepPoint>,
    /// `--set KEY=VALUE` settings, merged after everything else (`overrides`).
    overrides: Table,
    /// The command-line flags that changed this manifest (`--seeds 2`, `--set stage1.lr=0.2`),
    /// as a report or `explain` names them.
    pub flags: Vec<String>,
    /// Cells that are not run: outside their row's `columns`, or `skip = true`.
    excluded: HashSet<String>,
    /// Published value per cell id.
    published: HashMap<String, f64>,
}

/// One generated row: its place (after `base`, or last), its id and label, and the settings
/// its point sets after the base row's.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    /// The row this point varies (`None`: a point over `[defaults]` and the column).
    pub base: Option<String>,
    pub row: RowInfo,
    /// The point's settings, merged after every other fragment of its cells.
    pub settings: Table,
    /// `noise_mul = 0.25, lr = 0.1`: what the point sets, for labels and `explain`.
    pub describe: String,
}

/// A released recipe: the settings fragment a cell starts from before its row's and cell's
/// own settings (which are then its deviations), and the file(s) it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub source: String,
    settings: Table,
}

/// A cell's fragments in resolution order (the one place this order is written):
/// `[defaults]` <- column <- recipe <- row <- cell <- sweep point; `merge::resolve` adds
/// smoke, the command line's `--set` and the seed.
pub(crate) fn cell_fragments<'a>(
    defaults: &'a Table,
    column: &'a Table,
    recipe: Option<&'a Table>,
    row: &'a Table,
    cell: Option<&'a Table>,
    point: Option<&'a Table>,
) -> Vec<&'a Table> {
    [Some(defaults), Some(column), recipe, Some(row), cell, point].into_iter().flatten().collect()
}

impl Manifest {
    fn fragments_of(&self, ri: usize, ci: usize) -> Vec<&Table> {
        let id = cell_id(&self.rows[ri].id, &self.columns[ci].id);
        let recipe = self.cell_recipes.get(&id).map(|r| &self.recipes[r].settings);
        let point = self.sweep_points.get(&self.rows[ri].id).map(|p| &p.settings);
        cell_fragments(
            &self.defaults,
            &self.column_settings[ci],
            recipe,
            &self.row_settings[ri],
            self.cell_settings.get(&id),
            point,
        )
    }

    /// The cells that train (of rows not quoted, not excluded), and those of them whose
    /// resolved settings have a stage 2 (figures of stage-2 features need one).
    fn cells_with_runs(&self) -> (HashSet<String>, HashSet<String>) {
        let (mut with_runs, mut has_stage2) = (HashSet::new(), HashSet::new());
        for (ri, row) in self.rows.iter().enumerate().filter(|(_, r)| !r.quoted) {
            for (ci, column) in self.columns.iter().enumerate() {
                let id = cell_id(&row.id, &column.id);
                if self.excluded.contains(&id) {
                    continue;
                }
                let mut merged = Table::new();
                for f in self.fragments_of(ri, ci) {
                    merge::merge(&mut merged, f);
                }
                if merge::has_stage2(&merged) {
                    has_stage2.insert(id.clone());
                }
                with_runs.insert(id);
            }
        }
        (with_runs, has_stage2)
    }

    /// The sweep point a row was generated from, if it was.
    pub fn sweep_point(&self, row: &str) -> Option<&SweepPoint> {
        self.sweep_points.get(row)
    }

    /// `" (with --seeds 2 --set stage1.lr=0.2)"` when flags changed the manifest, else empty.
    pub fn flags_note(&self) -> String {
        if self.flags.is_empty() {
            String::new()
        } else {
            format!(" (with {})", self.flags.join(" "))
        }
    }

    /// The released recipe a cell follows, if it names one: its id, its source and the settings
    /// it resolves to on its own (defaults, column and recipe; full scale, `seed`), which
    /// `explain` sets beside the cell's.
    pub fn recipe_of(&self, cell: &TableCell, seed: u64) -> Option<Result<(String, String, RunSpec)>> {
        let name = self.cell_recipes.get(&cell.id())?;
        let recipe = &self.recipes[name];
        let ci = self.columns.iter().position(|c| c.id == cell.column)?;
        let frags = [&self.defaults, &self.column_settings[ci], &recipe.settings];
        let spec = merge::resolve(&frags, &Table::new(), crate::training::spec::Scale::Full, Some(seed))
            .with_context(|| format!("{}: recipe `{name}` in the column `{}`", self.path.display(), cell.column));
        Some(spec.map(|s| (name.clone(), recipe.source.clone(), s)))
    }
}

/// Seeds per cell when a manifest has no `seeds` key (at full scale).
pub const DEFAULT_SEEDS: usize = 3;
/// Seeds per cell at smoke scale when a manifest has no `smoke_seeds` key and no list of seeds.
pub const DEFAULT_SMOKE_SEEDS: usize = 1;
/// Points within which a published value counts as reproduced, when `tolerance` is not set.
pub const DEFAULT_TOLERANCE: f64 = 1.0;

/// Which seeds each cell runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seeds {
    /// `seeds = [a, b, ...]`: exactly these.
    List(Vec<u64>),
    /// `seeds = N` (or no key): N consecutive seeds from the cell's resolved `seed`.
    Count(usize),
}

impl Seeds {
    /// The first `n` of these seeds (all of a list shorter than `n`).
    fn first(&self, n: usize) -> Seeds {
        match self {
            Seeds::List(list) => Seeds::List(list[..n.min(list.len())].to_vec()),
            Seeds::Count(_) => Seeds::Count(n),
        }
    }

    /// The seeds of a cell whose resolved settings have seed `base` (a count starts there).
    pub fn for_cell(&self, base: u64) -> Vec<u64> {
        match self {
            Seeds::List(list) => list.clone(),
            Seeds::Count(n) => (0..*n as u64).map(|i| base + i).collect(),
        }
    }
}

impl Manifest {
    /// The seeds every cell runs at `scale`.
    pub fn seeds_at(&self, scale: Scale) -> Seeds {
        match (scale, self.smoke_seeds, &self.seeds) {
            (Scale::Full, _, seeds) => seeds.clone(),
            (Scale::Smoke, Some(n), seeds) => seeds.first(n),
            (Scale::Smoke, None, Seeds::List(list)) => Seeds::List(list.clone()),
            (Scale::Smoke, None, Seeds::Count(_)) => Seeds::Count(DEFAULT_SMOKE_SEEDS),
        }
    }

    /// `--seeds n`: every cell runs the first `n` of its seeds at both scales. A list of fewer
    /// than `n` seeds is an error (which seeds to add is the manifest's choice, not ours).
    pub fn override_seed_count(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            bail!("--seeds 0: every cell needs at least one seed");
        }
        if let Seeds::List(list) = &self.seeds {
            if list.len() < n {
                bail!(
                    "--seeds {n}: {} lists only {} seed(s) in `seeds` ({list:?}); pass --seeds {} or fewer, or list more seeds there",
                    self.path.display(),
                    list.len(),
                    list.len()
                );
            }
        }
        self.seeds = self.seeds.first(n);
        self.smoke_seeds = Some(n);
        Ok(())
    }
}

/// One cell of the table: its published value and its runs (one per seed; none when quoted
/// or excluded).
#[derive(Clone, Debug)]
pub struct TableCell {
    pub row: String,
    pub column: String,
    pub published: Option<f64>,
    pub quoted: bool,
    pub runs: Vec<PlannedRun>,
}

impl TableCell {
    pub fn id(&self) -> String {
        cell_id(&self.row, &self.column)
    }
}

/// One seed of a cell: its resolved settings, its data identity and, when the data is here,
/// its cache keys.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    pub seed: u64,
    pub spec: RunSpec,
    pub data: DataIdentity,
    /// `None` when the data identity is unavailable (a key cannot be computed without it).
    pub keys: Option<RunKeys>,
}

/// The cache keys of a planned run: its stage-1 run and, if it has one, its stage-2 run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunKeys {
    pub stage1: String,
    pub stage2: Option<String>,
}

impl RunKeys {
    /// The key of the run's result: stage 2's when there is one, else stage 1's.
    pub fn result(&self) -> &str {
        self.stage2.as_deref().unwrap_or(&self.stage1)
    }
}

impl PlannedRun {
    /// The key of the run's result, if its data is here.
    pub fn key(&self) -> Option<&str> {
        self.keys.as_ref().map(RunKeys::result)
    }
}

pub fn cell_id(row: &str, column: &str) -> String {
    format!("{row}.{column}")
}

/// Reads, parses and validates a manifest. Every problem found is reported, one per line, as
/// `FILE:LINE:COL: message`.
pub fn load(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the manifest {}", path.display()))?;
    let (src, table) = Source::parse(path, text).map_err(|e| anyhow!(e))?;
    let mut v = Validator { src, errors: Vec::new(), shape: runspec_shape() };
    let manifest = v.manifest(path, &table);
    if v.errors.is_empty() {
        v.check_resolves(&manifest);
    }
    if v.errors.is_empty() {
        Ok(manifest)
    } else {
        v.errors.sort_by_key(|(line, col, _)| (*line, *col));
        v.errors.dedup();
        let lines: Vec<String> = v.errors.into_iter().map(|(_, _, text)| text).collect();
        Err(anyhow!("{}", lines.join("\n")))
    }
}

/// `gcl-repro validate`: one `ok FILE (N cells, M runs)` line per good manifest, every problem
/// of the bad ones, and whether all were good. Manifest names must be unique across the files
/// (results and reports are filed under them).
pub fn validate_files(paths: &[PathBuf]) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        match load(path).and_then(|m| summary(&m).map(|s| (m, s))) {
            Ok((m, (cells, runs))) => {
                if let Some(first) = names.get(&m.name) {
                    ok = false;
                    out.push_str(&format!(
                        "{}: duplicate manifest name `{}` (also {}); set a distinct `name` in [manifest]\n",
                        path.display(),
                        m.name,
                        first.display()
                    ));
                } else {
                    names.insert(m.name.clone(), path.clone());
                    out.push_str(&format!("ok {} ({cells} cells, {runs} runs)\n", path.display()));
                }
            }
            Err(e) => {
                ok = false;
                out.push_str(&format!("{e:#}\n"));
            }
        }
    }
    (out, ok)
}

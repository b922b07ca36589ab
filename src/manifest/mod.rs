//! Manifests: a whole paper table (rows x columns, seeds, published values, figures) in TOML.
//!
//! ```toml
//! [manifest]
//! name = "table1"                 # defaults to the file stem
//! title = "CIFAR-10/100-LT, ResNet-32, top-1 %"
//! published = { file = "published/paper-tables.toml", table = "table1" }  # relative to this file
//! seeds = [123]                   # every cell runs once per seed; reported as mean ± std
//! shots = false                   # report many/medium/few columns
//! [manifest.smoke]                # RunSpec fragment applied at `--scale smoke`
//! stage1 = { epochs = 2 }
//! [defaults]                      # RunSpec fragment of every cell
//! [columns.cifar10_100]           # label, published_column + a RunSpec fragment
//! dataset = { name = "cifar10", imbalance = 100 }
//! [rows.ce]                       # label, quoted, published, published_row, columns + fragment
//! stage1 = { loss = { kind = "ce" } }
//! [cells."ce.cifar10_100"]        # skip + a RunSpec fragment for one cell
//! [figures.tsne]                  # kind (tsne|curves|per_class), title, cells, splits, stage,
//!                                 # classes (t-SNE: class indices), max_points (t-SNE, per split)
//! ```
//! A cell's settings resolve as described in [`merge`]; [`load`] checks everything it can
//! without data (unknown keys, bad values, dangling references) and reports each problem as
//! `FILE:LINE:COL: message`; [`expand`] turns the table into cells with their planned runs.
pub mod merge;
pub mod schema;
mod source;

use crate::cache::key::run_keys;
use crate::config::{RunSpec, Scale};
use crate::data::DataIdentity;
use anyhow::{anyhow, Context, Result};
use schema::{check_fragment, did_you_mean, runspec_shape, unknown_key_message, Problem, Shape};
use source::{table_name, Source};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

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
    /// `None`: each cell runs once with the seed of its resolved settings (default 123).
    pub seeds: Option<Vec<u64>>,
    pub rows: Vec<RowInfo>,
    pub columns: Vec<ColumnInfo>,
    pub figures: Vec<Figure>,
    defaults: Table,
    smoke: Table,
    row_settings: Vec<Table>,
    column_settings: Vec<Table>,
    cell_settings: HashMap<String, Table>,
    /// Cells that are not run: outside their row's `columns`, or `skip = true`.
    excluded: HashSet<String>,
    /// Published value per cell id.
    published: HashMap<String, f64>,
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

const TOP_KEYS: &[&str] = &["manifest", "defaults", "columns", "rows", "cells", "figures"];
const MANIFEST_KEYS: &[&str] = &["name", "title", "published", "seeds", "shots", "smoke"];
const PUBLISHED_REF_KEYS: &[&str] = &["file", "table"];
const COLUMN_KEYS: &[&str] = &["label", "published_column"];
const ROW_KEYS: &[&str] = &["label", "quoted", "published", "published_row", "columns"];
const CELL_KEYS: &[&str] = &["skip"];
const FIGURE_KEYS: &[&str] = &["kind", "title", "cells", "splits", "stage", "classes", "max_points"];
const SPLITS: &[&str] = &["train", "test"];

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

/// The cells of the table in row-major order (rows and columns in file order), with their runs
/// at `scale`, the data identity of each run and, where the data is here, its cache keys.
pub fn expand(m: &Manifest, scale: Scale, data_root: &Path) -> Result<Vec<TableCell>> {
    let mut identities: HashMap<String, DataIdentity> = HashMap::new();
    expand_with(m, scale, &mut |spec: &RunSpec| {
        let k = serde_json::to_string(&spec.dataset)?;
        Ok(identities.entry(k).or_insert_with(|| DataIdentity::of(&spec.dataset, data_root)).clone())
    })
}

/// Number of cells of the table and of distinct trainings (stage-1 and stage-2 runs) at full
/// scale. Needs no data: distinct settings give distinct runs whatever the data identity.
pub fn summary(m: &Manifest) -> Result<(usize, usize)> {
    let cells = expand_with(m, Scale::Full, &mut |_| Ok(DataIdentity::Known(String::new())))?;
    let mut runs = HashSet::new();
    for keys in cells.iter().flat_map(|c| &c.runs).filter_map(|r| r.keys.as_ref()) {
        runs.insert(keys.stage1.clone());
        if let Some(k) = &keys.stage2 {
            runs.insert(k.clone());
        }
    }
    Ok((cells.len(), runs.len()))
}

fn expand_with(m: &Manifest, scale: Scale, identity: &mut dyn FnMut(&RunSpec) -> Result<DataIdentity>) -> Result<Vec<TableCell>> {
    let mut cells = Vec::new();
    for (ri, row) in m.rows.iter().enumerate() {
        for (ci, col) in m.columns.iter().enumerate() {
            let id = cell_id(&row.id, &col.id);
            let published = m.published.get(&id).copied();
            let excluded = m.excluded.contains(&id);
            if excluded && published.is_none() && !row.quoted {
                // Outside the row's columns and no published number: not part of the table.
                continue;
            }
            let mut runs = Vec::new();
            if !row.quoted && !excluded {
                let empty = Table::new();
                let cell = m.cell_settings.get(&id).unwrap_or(&empty);
                let fragments = [&m.defaults, &m.column_settings[ci], &m.row_settings[ri], cell];
                let seeds: Vec<Option<u64>> = match &m.seeds {
                    Some(s) => s.iter().map(|s| Some(*s)).collect(),
                    None => vec![None],
                };
                for seed in seeds {
                    let spec = merge::resolve(&fragments, &m.smoke, scale, seed)
                        .with_context(|| format!("{}: cell {id}", m.path.display()))?;
                    let data = identity(&spec).with_context(|| format!("cell {id}: data identity"))?;
                    let keys = data.known().map(|d| {
                        let (stage1, stage2) = run_keys(&spec, d);
                        RunKeys { stage1, stage2 }
                    });
                    runs.push(PlannedRun { seed: spec.seed, spec, data, keys });
                }
            }
            cells.push(TableCell { row: row.id.clone(), column: col.id.clone(), published, quoted: row.quoted, runs });
        }
    }
    Ok(cells)
}

/// One row of a published-tables file.
struct PublishedRow {
    id: String,
    quoted: bool,
    values: HashMap<String, f64>,
}

/// Collects every problem of one manifest file.
struct Validator {
    src: Source,
    /// (line, column, message): reported in file order.
    errors: Vec<(usize, usize, String)>,
    shape: Shape,
}

fn key_path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The RunSpec fragment of a row/column/cell table: the table without its own keys.
fn fragment_of(t: &Table, own: &[&str]) -> Table {
    t.iter().filter(|(k, _)| !own.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl Validator {
    fn err(&mut self, path: Vec<String>, msg: impl std::fmt::Display) {
        let (line, col) = self.src.position(&path);
        let text = self.src.error(&path, msg);
        self.errors.push((line, col, text));
    }

    fn problems(&mut self, problems: Vec<Problem>) {
        for (path, msg) in problems {
            self.err(path, msg);
        }
    }

    /// Unknown keys of a table with a fixed key set.
    fn check_keys(&mut self, t: &Table, at: &[String], allowed: &[&str]) {
        for key in t.keys() {
            if !allowed.contains(&key.as_str()) {
                let mut p = at.to_vec();
                p.push(key.clone());
                let msg = unknown_key_message(key, &table_name(at), allowed);
                self.err(p, msg);
            }
        }
    }

    /// A sub-table that must be a table, if present.
    fn table<'a>(&mut self, parent: &'a Table, at: &[String], key: &str) -> Option<&'a Table> {
        let mut p = at.to_vec();
        p.push(key.to_string());
        match parent.get(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                self.err(p.clone(), format!("`{key}` in {} must be a table, not {}", table_name(at), schema::describe(other)));
                None
            }
        }
    }

    fn string(&mut self, t: &Table, at: &[String], key: &str) -> Option<String> {
        let mut p = at.to_vec();
        p.push(key.to_string());
        match t.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(p, format!("`{key}` in {} must be a string, not {}", table_name(at), schema::describe(other)));
                None
            }
        }
    }

    fn boolean(&mut self, t: &Table, at: &[String], key: &str) -> Option<bool> {
        let mut p = at.to_vec();
        p.push(key.to_string());
        match t.get(key) {
            None => None,
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.err(p, format!("`{key}` in {} must be true or false, not {}", table_name(at), schema::describe(other)));
                None
            }
        }
    }

    fn strings(&mut self, t: &Table, at: &[String], key: &str) -> Option<Vec<String>> {
        let mut p = at.to_vec();
        p.push(key.to_string());
        match t.get(key) {
            None => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            let mut pi = p.clone();
                            pi.push(i.to_string());
                            self.err(pi, format!("`{key}` in {} must list strings, found {}", table_name(at), schema::describe(other)));
                        }
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.err(p, format!("`{key}` in {} must be an array of strings, not {}", table_name(at), schema::describe(other)));
                None
            }
        }
    }

    /// A reference `name` to one of `known` ids; reports a dangling one with a did-you-mean.
    fn reference(&mut self, path: Vec<String>, what: &str, name: &str, known: &[&str]) -> bool {
        self.reference_in(path, what, name, "", known)
    }

    /// Same, naming where the ids live (`in FILE`).
    fn reference_in(&mut self, path: Vec<String>, what: &str, name: &str, place: &str, known: &[&str]) -> bool {
        if known.contains(&name) {
            return true;
        }
        let hint = did_you_mean(name, known).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
        self.err(path, format!("no {what} `{name}`{place}{hint} (known: {})", known.join(", ")));
        false
    }

    /// A RunSpec fragment's keys and values.
    fn fragment(&mut self, t: &Table, at: &[String], own: &[&str]) {
        let mut problems = Vec::new();
        check_fragment(t, at, &[], &self.shape, own, &mut problems);
        self.problems(problems);
    }

    fn manifest(&mut self, path: &Path, top: &Table) -> Manifest {
        self.check_keys(top, &[], TOP_KEYS);
        let empty = Table::new();
        let head = self.table(top, &[], "manifest").unwrap_or(&empty).clone();
        let at = key_path(&["manifest"]);
        self.check_keys(&head, &at, MANIFEST_KEYS);
        let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let name = self.string(&head, &at, "name").unwrap_or(stem);
        let title = self.string(&head, &at, "title").unwrap_or_else(|| name.clone());
        let shots = self.boolean(&head, &at, "shots").unwrap_or(false);
        let seeds = self.seeds(&head);
        let smoke = self.table(&head, &at, "smoke").cloned().unwrap_or_default();
        self.fragment(&smoke, &key_path(&["manifest", "smoke"]), &[]);
        if smoke.contains_key("seed") {
            self.err(key_path(&["manifest", "smoke", "seed"]), "`seed` in [manifest.smoke] would make smoke runs use other seeds than the table; set `seeds` in [manifest]");
        }
        let defaults = self.table(top, &[], "defaults").cloned().unwrap_or_default();
        self.fragment(&defaults, &key_path(&["defaults"]), &[]);

        let (columns, column_settings, published_columns) = self.columns(top);
        let col_ids: Vec<String> = columns.iter().map(|c| c.id.clone()).collect();
        let (mut rows, row_settings, row_tables) = self.rows(top);
        let (cell_settings, excluded) = self.cells(top, &rows, &col_ids);

        // Published values: the referenced file first, inline values override.
        let mut published = HashMap::new();
        let file_rows = self.published_file(&head);
        for (ri, row) in rows.iter_mut().enumerate() {
            let at = key_path(&["rows", &row.id]);
            let t = &row_tables[ri];
            let pub_row = self.string(t, &at, "published_row");
            let quoted = self.boolean(t, &at, "quoted");
            if let Some(file_rows) = &file_rows {
                let id = pub_row.clone().unwrap_or_else(|| row.id.clone());
                match file_rows.iter().find(|r| r.id == id) {
                    Some(found) => {
                        row.quoted = quoted.unwrap_or(found.quoted);
                        for (ci, col) in columns.iter().enumerate() {
                            if let Some(v) = found.values.get(&published_columns[ci]) {
                                published.insert(cell_id(&row.id, &col.id), *v);
                            }
                        }
                    }
                    None if pub_row.is_some() => {
                        let known: Vec<&str> = file_rows.iter().map(|r| r.id.as_str()).collect();
                        let mut p = at.clone();
                        p.push("published_row".into());
                        self.reference_in(p, "row", &id, " in the published table", &known);
                    }
                    None => row.quoted = quoted.unwrap_or(false),
                }
            } else {
                row.quoted = quoted.unwrap_or(false);
                if pub_row.is_some() {
                    self.err(key_path(&["rows", &row.id, "published_row"]), "`published_row` needs a published table: add `published = { file = ..., table = ... }` to [manifest]");
                }
            }
            if let Some(inline) = self.table(t, &at, "published") {
                let mut p = at.clone();
                p.push("published".into());
                for (col, v) in inline {
                    let mut pc = p.clone();
                    pc.push(col.clone());
                    let known: Vec<&str> = col_ids.iter().map(|s| s.as_str()).collect();
                    if !self.reference(pc.clone(), "column", col, &known) {
                        continue;
                    }
                    match v {
                        Value::Float(x) => {
                            published.insert(cell_id(&row.id, col), *x);
                        }
                        Value::Integer(x) => {
                            published.insert(cell_id(&row.id, col), *x as f64);
                        }
                        other => self.err(pc, format!("published value of `{col}` must be a number (top-1 %), not {}", schema::describe(other))),
                    }
                }
            }
        }

        // Row-level consistency: quoted rows have no settings and some numbers; trained rows
        // have at least one cell to train.
        for (ri, row) in rows.iter().enumerate() {
            let at = key_path(&["rows", &row.id]);
            let has_published = col_ids.iter().any(|c| published.contains_key(&cell_id(&row.id, c)));
            if row.quoted {
                if let Some(k) = row_settings[ri].keys().next() {
                    let mut p = at.clone();
                    p.push(k.clone());
                    self.err(p, format!("row `{}` is quoted (published values only, no training) but sets `{k}`; remove the settings or set `quoted = false`", row.id));
                }
                if !has_published {
                    self.err(at.clone(), format!("quoted row `{}` has no published values; add `published = {{ column = value }}` or a published table", row.id));
                }
                for c in &col_ids {
                    if cell_settings.contains_key(&cell_id(&row.id, c)) {
                        self.err(key_path(&["cells", &cell_id(&row.id, c)]), format!("cell `{}` belongs to the quoted row `{}`, which is not trained", cell_id(&row.id, c), row.id));
                    }
                }
            } else if !col_ids.is_empty() && col_ids.iter().all(|c| excluded.contains(&cell_id(&row.id, c))) {
                self.err(at, format!("row `{}` is not quoted but has no cell to train (all its cells are skipped or outside its `columns`)", row.id));
            }
        }
        if seeds.is_some() {
            self.seed_conflicts(&defaults, &column_settings, &columns, &row_settings, &rows, &cell_settings);
        }

        let cells_with_runs: HashSet<String> = rows
            .iter()
            .filter(|r| !r.quoted)
            .flat_map(|r| col_ids.iter().map(move |c| cell_id(&r.id, c)))
            .filter(|id| !excluded.contains(id))
            .collect();
        let has_stage2: HashSet<String> = cells_with_runs
            .iter()
            .filter(|id| {
                let (r, c) = id.split_once('.').unwrap();
                let ri = rows.iter().position(|x| x.id == r).unwrap();
                let ci = col_ids.iter().position(|x| x == c).unwrap();
                let mut merged = Table::new();
                for f in [&defaults, &column_settings[ci], &row_settings[ri]] {
                    merge::merge(&mut merged, f);
                }
                if let Some(cell) = cell_settings.get(*id) {
                    merge::merge(&mut merged, cell);
                }
                merge::has_stage2(&merged)
            })
            .cloned()
            .collect();
        let figures = self.figures(top, &cells_with_runs, &has_stage2, &rows, &col_ids);

        Manifest {
            path: path.to_path_buf(),
            name,
            title,
            shots,
            seeds,
            rows,
            columns,
            figures,
            defaults,
            smoke,
            row_settings,
            column_settings,
            cell_settings,
            excluded,
            published,
        }
    }

    fn seeds(&mut self, head: &Table) -> Option<Vec<u64>> {
        let p = key_path(&["manifest", "seeds"]);
        let value = head.get("seeds")?;
        let Value::Array(items) = value else {
            self.err(p, format!("`seeds` in [manifest] must be an array of integers like [123, 124], not {}", schema::describe(value)));
            return None;
        };
        let mut seeds = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut pi = p.clone();
            pi.push(i.to_string());
            match item {
                Value::Integer(s) if *s >= 0 => {
                    if seeds.contains(&(*s as u64)) {
                        self.err(pi, format!("seed {s} is listed twice in `seeds`"));
                    }
                    seeds.push(*s as u64);
                }
                other => self.err(pi, format!("`seeds` must list non-negative integers, found {}", schema::short(other))),
            }
        }
        if seeds.is_empty() {
            self.err(p, "`seeds` in [manifest] is empty; list at least one seed or remove the key (default: seed 123)");
            return None;
        }
        Some(seeds)
    }

    fn seed_conflicts(&mut self, defaults: &Table, cols: &[Table], columns: &[ColumnInfo], rows_s: &[Table], rows: &[RowInfo], cells: &HashMap<String, Table>) {
        let mut places: Vec<Vec<String>> = Vec::new();
        if defaults.contains_key("seed") {
            places.push(key_path(&["defaults", "seed"]));
        }
        for (c, t) in columns.iter().zip(cols) {
            if t.contains_key("seed") {
                places.push(key_path(&["columns", &c.id, "seed"]));
            }
        }
        for (r, t) in rows.iter().zip(rows_s) {
            if t.contains_key("seed") {
                places.push(key_path(&["rows", &r.id, "seed"]));
            }
        }
        for (id, t) in cells {
            if t.contains_key("seed") {
                places.push(key_path(&["cells", id, "seed"]));
            }
        }
        for p in places {
            self.err(p, "`seed` conflicts with `seeds` in [manifest], which sets the seed of every run; remove one of them");
        }
    }

    fn columns(&mut self, top: &Table) -> (Vec<ColumnInfo>, Vec<Table>, Vec<String>) {
        let (mut infos, mut settings, mut published_ids) = (Vec::new(), Vec::new(), Vec::new());
        let Some(columns) = self.table(top, &[], "columns") else {
            self.err(vec![], "the manifest has no columns: add at least one [columns.ID] table");
            return (infos, settings, published_ids);
        };
        for (id, v) in columns {
            let at = key_path(&["columns", id]);
            let Value::Table(t) = v else {
                self.err(at, format!("column `{id}` must be a table ([columns.{id}]), not {}", schema::describe(v)));
                continue;
            };
            if !valid_id(id) {
                self.err(at.clone(), format!("column id `{id}` may only use letters, digits, `_` and `-` (cells are named row.column)"));
            }
            self.fragment(t, &at, COLUMN_KEYS);
            let label = self.string(t, &at, "label").unwrap_or_else(|| id.clone());
            published_ids.push(self.string(t, &at, "published_column").unwrap_or_else(|| id.clone()));
            infos.push(ColumnInfo { id: id.clone(), label });
            settings.push(fragment_of(t, COLUMN_KEYS));
        }
        if infos.is_empty() {
            self.err(key_path(&["columns"]), "[columns] is empty: add at least one [columns.ID] table");
        }
        (infos, settings, published_ids)
    }

    fn rows(&mut self, top: &Table) -> (Vec<RowInfo>, Vec<Table>, Vec<Table>) {
        let (mut infos, mut settings, mut tables) = (Vec::new(), Vec::new(), Vec::new());
        let Some(rows) = self.table(top, &[], "rows") else {
            self.err(vec![], "the manifest has no rows: add at least one [rows.ID] table");
            return (infos, settings, tables);
        };
        for (id, v) in rows {
            let at = key_path(&["rows", id]);
            let Value::Table(t) = v else {
                self.err(at, format!("row `{id}` must be a table ([rows.{id}]), not {}", schema::describe(v)));
                continue;
            };
            if !valid_id(id) {
                self.err(at.clone(), format!("row id `{id}` may only use letters, digits, `_` and `-` (cells are named row.column)"));
            }
            self.fragment(t, &at, ROW_KEYS);
            let label = self.string(t, &at, "label").unwrap_or_else(|| id.clone());
            infos.push(RowInfo { id: id.clone(), label, quoted: false });
            settings.push(fragment_of(t, ROW_KEYS));
            tables.push(t.clone());
        }
        if infos.is_empty() {
            self.err(key_path(&["rows"]), "[rows] is empty: add at least one [rows.ID] table");
        }
        (infos, settings, tables)
    }

    /// `[cells."row.column"]` fragments, and the set of cells that are not run.
    fn cells(&mut self, top: &Table, rows: &[RowInfo], col_ids: &[String]) -> (HashMap<String, Table>, HashSet<String>) {
        let mut excluded = HashSet::new();
        let known_cols: Vec<&str> = col_ids.iter().map(|s| s.as_str()).collect();
        let row_ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        // A row's `columns` restricts it to some columns.
        if let Some(Value::Table(rows_t)) = top.get("rows") {
            for row in rows {
                let Some(Value::Table(t)) = rows_t.get(&row.id) else { continue };
                let at = key_path(&["rows", &row.id]);
                if let Some(list) = self.strings(t, &at, "columns") {
                    for (i, c) in list.iter().enumerate() {
                        let mut p = at.clone();
                        p.extend(["columns".to_string(), i.to_string()]);
                        self.reference(p, "column", c, &known_cols);
                    }
                    for c in col_ids {
                        if !list.contains(c) {
                            excluded.insert(cell_id(&row.id, c));
                        }
                    }
                }
            }
        }
        let mut settings = HashMap::new();
        let Some(cells) = self.table(top, &[], "cells") else { return (settings, excluded) };
        for (id, v) in cells {
            let at = key_path(&["cells", id]);
            let Value::Table(t) = v else {
                self.err(at, format!("cell `{id}` must be a table ([cells.\"{id}\"]), not {}", schema::describe(v)));
                continue;
            };
            let Some((r, c)) = id.split_once('.') else {
                self.err(at, format!("cell id `{id}` must be `row.column`, e.g. [cells.\"{}\"]", rows.first().map(|r| cell_id(&r.id, col_ids.first().map(|s| s.as_str()).unwrap_or("column"))).unwrap_or_else(|| "row.column".into())));
                continue;
            };
            let ok_r = self.reference(at.clone(), "row", r, &row_ids);
            let ok_c = self.reference(at.clone(), "column", c, &known_cols);
            self.fragment(t, &at, CELL_KEYS);
            if self.boolean(t, &at, "skip") == Some(true) {
                excluded.insert(id.clone());
            } else if ok_r && ok_c && excluded.contains(id.as_str()) {
                self.err(at.clone(), format!("cell `{id}` is outside the `columns` of row `{r}`, so its settings would never be used"));
            }
            settings.insert(id.clone(), fragment_of(t, CELL_KEYS));
        }
        (settings, excluded)
    }

    /// The rows of the referenced published table: id -> (quoted, column -> value).
    fn published_file(&mut self, head: &Table) -> Option<Vec<PublishedRow>> {
        let at = key_path(&["manifest", "published"]);
        let r = self.table(head, &key_path(&["manifest"]), "published")?.clone();
        self.check_keys(&r, &at, PUBLISHED_REF_KEYS);
        let (Some(file), Some(table)) = (self.string(&r, &at, "file"), self.string(&r, &at, "table")) else {
            self.err(at, "`published` in [manifest] needs both `file` (a TOML file of published tables, relative to this manifest) and `table`");
            return None;
        };
        let base = self.src.path.parent().unwrap_or(Path::new("."));
        let file_path = base.join(&file);
        let mut pf = at.clone();
        pf.push("file".into());
        let text = match std::fs::read_to_string(&file_path) {
            Ok(t) => t,
            Err(e) => {
                self.err(pf, format!("cannot read the published tables {}: {e}", file_path.display()));
                return None;
            }
        };
        let doc: Table = match toml::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                self.err(pf, format!("the published tables {} are not valid TOML: {}", file_path.display(), e.message()));
                return None;
            }
        };
        let mut pt = at.clone();
        pt.push("table".into());
        let names: Vec<&str> = doc.keys().map(|s| s.as_str()).collect();
        if !self.reference_in(pt.clone(), "table", &table, &format!(" in {}", file_path.display()), &names) {
            return None;
        }
        let mut out = Vec::new();
        if let Some(Value::Table(rows)) = doc.get(&table).and_then(|t| t.get("rows")) {
            for (id, row) in rows {
                let quoted = row.get("quoted").and_then(Value::as_bool).unwrap_or(false);
                let mut values = HashMap::new();
                if let Some(Value::Table(vals)) = row.get("values") {
                    for (c, v) in vals {
                        if let Some(x) = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
                            values.insert(c.clone(), x);
                        }
                    }
                }
                out.push(PublishedRow { id: id.clone(), quoted, values });
            }
        } else {
            self.err(pt, format!("table `{table}` in {} has no [{table}.rows.ID] entries", file_path.display()));
        }
        Some(out)
    }

    fn figures(&mut self, top: &Table, with_runs: &HashSet<String>, has_stage2: &HashSet<String>, rows: &[RowInfo], col_ids: &[String]) -> Vec<Figure> {
        let mut out = Vec::new();
        let Some(figs) = self.table(top, &[], "figures") else { return out };
        let mut all_cells: Vec<String> = Vec::new();
        for r in rows {
            for c in col_ids {
                all_cells.push(cell_id(&r.id, c));
            }
        }
        let known: Vec<&str> = all_cells.iter().map(|s| s.as_str()).collect();
        for (id, v) in figs {
            let at = key_path(&["figures", id]);
            let Value::Table(t) = v else {
                self.err(at, format!("figure `{id}` must be a table ([figures.{id}]), not {}", schema::describe(v)));
                continue;
            };
            self.check_keys(t, &at, FIGURE_KEYS);
            let mut pk = at.clone();
            pk.push("kind".into());
            let kind = match self.string(t, &at, "kind") {
                None => {
                    self.err(at.clone(), format!("figure `{id}` needs `kind` (one of {})", FigureKind::NAMES.join(", ")));
                    None
                }
                Some(k) => match FigureKind::parse(&k) {
                    Some(kind) => Some(kind),
                    None => {
                        self.err(pk, format!("invalid value \"{k}\" for `kind` in {}; expected one of {}", table_name(&at), FigureKind::NAMES.join(", ")));
                        None
                    }
                },
            };
            let title = self.string(t, &at, "title").unwrap_or_else(|| id.clone());
            let stage = match t.get("stage") {
                None => 1,
                Some(Value::Integer(s)) if *s == 1 || *s == 2 => *s as u8,
                Some(other) => {
                    let mut p = at.clone();
                    p.push("stage".into());
                    self.err(p, format!("invalid value {} for `stage` in {}; expected 1 or 2", schema::short(other), table_name(&at)));
                    1
                }
            };
            let cells = self.strings(t, &at, "cells").unwrap_or_default();
            if cells.is_empty() {
                self.err(at.clone(), format!("figure `{id}` needs `cells = [\"row.column\", ...]`"));
            }
            for (i, c) in cells.iter().enumerate() {
                let mut p = at.clone();
                p.extend(["cells".to_string(), i.to_string()]);
                if !self.reference(p.clone(), "cell", c, &known) {
                    continue;
                }
                if !with_runs.contains(c) {
                    self.err(p, format!("figure `{id}` shows cell `{c}`, which has no runs (quoted or skipped)"));
                } else if stage == 2 && !has_stage2.contains(c) {
                    self.err(p, format!("figure `{id}` shows stage 2 of cell `{c}`, which has no stage 2"));
                }
            }
            let splits = match (kind, self.strings(t, &at, "splits")) {
                (Some(FigureKind::Tsne), None) => vec!["train".to_string(), "test".to_string()],
                (Some(FigureKind::Tsne), Some(list)) => {
                    for (i, s) in list.iter().enumerate() {
                        if !SPLITS.contains(&s.as_str()) {
                            let mut p = at.clone();
                            p.extend(["splits".to_string(), i.to_string()]);
                            self.err(p, format!("invalid value \"{s}\" for `splits` in {}; expected one of {}", table_name(&at), SPLITS.join(", ")));
                        }
                    }
                    list
                }
                (_, Some(_)) => {
                    let mut p = at.clone();
                    p.push("splits".into());
                    self.err(p, "`splits` applies to t-SNE figures only (kind = \"tsne\")");
                    vec![]
                }
                (_, None) => vec![],
            };
            let classes = self.tsne_classes(t, &at, kind);
            let max_points = self.tsne_max_points(t, &at, kind);
            if let Some(kind) = kind {
                out.push(Figure { id: id.clone(), kind, title, cells, splits, stage, classes, max_points });
            }
        }
        out
    }

    /// `classes = [4, 6, 7, 9]` of a t-SNE figure: distinct non-negative class indices.
    fn tsne_classes(&mut self, t: &Table, at: &[String], kind: Option<FigureKind>) -> Option<Vec<usize>> {
        let v = t.get("classes")?;
        let mut p = at.to_vec();
        p.push("classes".into());
        if kind.is_some_and(|k| k != FigureKind::Tsne) {
            self.err(p, "`classes` applies to t-SNE figures only (kind = \"tsne\")");
            return None;
        }
        let Value::Array(items) = v else {
            self.err(p, format!("`classes` in {} must be an array of class indices, e.g. [4, 6, 7, 9], not {}", table_name(at), schema::describe(v)));
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut pi = p.clone();
            pi.push(i.to_string());
            match item {
                Value::Integer(c) if *c >= 0 && !out.contains(&(*c as usize)) => out.push(*c as usize),
                Value::Integer(c) if *c >= 0 => self.err(pi, format!("class {c} is listed twice in `classes` of {}", table_name(at))),
                other => self.err(pi, format!("`classes` in {} must list class indices (integers >= 0), found {}", table_name(at), schema::short(other))),
            }
        }
        if items.is_empty() {
            self.err(p, format!("`classes` in {} is empty; list the class indices to show or leave it out for all classes", table_name(at)));
        }
        Some(out)
    }

    /// `max_points = N` of a t-SNE figure: a positive integer.
    fn tsne_max_points(&mut self, t: &Table, at: &[String], kind: Option<FigureKind>) -> usize {
        let Some(v) = t.get("max_points") else { return DEFAULT_TSNE_POINTS };
        let mut p = at.to_vec();
        p.push("max_points".into());
        if kind.is_some_and(|k| k != FigureKind::Tsne) {
            self.err(p, "`max_points` applies to t-SNE figures only (kind = \"tsne\")");
            return DEFAULT_TSNE_POINTS;
        }
        match v {
            Value::Integer(n) if *n >= 2 => *n as usize,
            other => {
                self.err(p, format!("invalid value {} for `max_points` in {}; expected an integer >= 2 (points per split)", schema::short(other), table_name(at)));
                DEFAULT_TSNE_POINTS
            }
        }
    }

    /// Every trained cell resolves to a valid RunSpec at both scales (the per-key checks above
    /// catch nearly everything; this is the final word, with the row's position).
    fn check_resolves(&mut self, m: &Manifest) {
        for scale in [Scale::Full, Scale::Smoke] {
            if let Err(e) = expand_with(m, scale, &mut |_| Ok(DataIdentity::Known(String::new()))) {
                self.err(vec![], format!("{e:#}"));
                return;
            }
        }
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

//! Validation of a manifest file: every key and value checked without data, each problem
//! reported as `FILE:LINE:COL: message` with the key, its table and the fix. The published
//! values (`published`) and the figures (`figure_specs`) are checked in their own files.
use super::expand::expand_with;
use super::schema::{self, check_fragment, did_you_mean, unknown_key_message, Problem, Shape};
use super::source::{table_name, Source};
use super::*;
use crate::data::DataIdentity;
use crate::training::spec::Scale;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use toml::{Table, Value};

pub(super) const TOP_KEYS: &[&str] =
    &["manifest", "defaults", "recipes", "columns", "rows", "cells", "sweep", "figures"];
pub(super) const MANIFEST_KEYS: &[&str] =
    &["name", "title", "published", "seeds", "smoke_seeds", "tolerance", "shots", "smoke"];
pub(super) const PUBLISHED_REF_KEYS: &[&str] = &["file", "table"];
pub(super) const COLUMN_KEYS: &[&str] = &["label", "published_column"];
pub(super) const ROW_KEYS: &[&str] = &["label", "quoted", "published", "published_row", "columns", "recipe"];
pub(super) const CELL_KEYS: &[&str] = &["skip", "recipe"];
pub(super) const RECIPE_KEYS: &[&str] = &["source"];
pub(super) const FIGURE_KEYS: &[&str] = &["kind", "title", "cells", "splits", "stage", "classes", "max_points"];
pub(super) const SPLITS: &[&str] = &["train", "test"];

/// Collects every problem of one manifest file.
pub(super) struct Validator {
    pub(super) src: Source,
    /// (line, column, message): reported in file order.
    pub(super) errors: Vec<(usize, usize, String)>,
    pub(super) shape: Shape,
}

pub(super) fn key_path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The RunSpec fragment of a row/column/cell table: the table without its own keys.
pub(super) fn fragment_of(t: &Table, own: &[&str]) -> Table {
    t.iter().filter(|(k, _)| !own.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl Validator {
    pub(super) fn err(&mut self, path: Vec<String>, msg: impl std::fmt::Display) {
        let (line, col) = self.src.position(&path);
        let text = self.src.error(&path, msg);
        self.errors.push((line, col, text));
    }

    pub(super) fn problems(&mut self, problems: Vec<Problem>) {
        for (path, msg) in problems {
            self.err(path, msg);
        }
    }

    /// Unknown keys of a table with a fixed key set.
    pub(super) fn check_keys(&mut self, t: &Table, at: &[String], allowed: &[&str]) {
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
    pub(super) fn table<'a>(&mut self, parent: &'a Table, at: &[String], key: &str) -> Option<&'a Table> {
        let mut p = at.to_vec();
        p.push(key.to_string());
        match parent.get(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                self.err(
                    p.clone(),
                    format!("`{key}` in {} must be a table, not {}", table_name(at), schema::describe(other)),
                );
                None
            }
        }
    }

    pub(super) fn string(&mut self, t: &Table, at: &[String], key: &str) -> Option<String> {
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

    pub(super) fn boolean(&mut self, t: &Table, at: &[String], key: &str) -> Option<bool> {
        let mut p = at.to_vec();
        p.push(key.to_string());
        match t.get(key) {
            None => None,
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.err(
                    p,
                    format!("`{key}` in {} must be true or false, not {}", table_name(at), schema::describe(other)),
                );
                None
            }
        }
    }

    pub(super) fn strings(&mut self, t: &Table, at: &[String], key: &str) -> Option<Vec<String>> {
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
                            self.err(
                                pi,
                                format!(
                                    "`{key}` in {} must list strings, found {}",
                                    table_name(at),
                                    schema::describe(other)
                                ),
                            );
                        }
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.err(
                    p,
                    format!(
                        "`{key}` in {} must be an array of strings, not {}",
                        table_name(at),
                        schema::describe(other)
                    ),
                );
                None
            }
        }
    }

    /// A reference `name` to one of `known` ids; reports a dangling one with a did-you-mean.
    pub(super) fn reference(&mut self, path: Vec<String>, what: &str, name: &str, known: &[&str]) -> bool {
        self.reference_in(path, what, name, "", known)
    }

    /// Same, naming where the ids live (`in FILE`).
    pub(super) fn reference_in(
        &mut self,
        path: Vec<String>,
        what: &str,
        name: &str,
        place: &str,
        known: &[&str],
    ) -> bool {
        if known.contains(&name) {
            return true;
        }
        let hint = did_you_mean(name, known).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
        self.err(path, format!("no {what} `{name}`{place}{hint} (known: {})", known.join(", ")));
        false
    }

    /// A RunSpec fragment's keys and values.
    pub(super) fn fragment(&mut self, t: &Table, at: &[String], own: &[&str]) {
        let mut problems = Vec::new();
        check_fragment(t, at, &[], &self.shape, own, &mut problems);
        self.problems(problems);
    }

    /// The whole document: its head, its tables, then the checks across them, then the
    /// figures (which need to know which cells train and which have a stage 2).
    pub(super) fn manifest(&mut self, path: &Path, top: &Table) -> Manifest {
        self.check_keys(top, &[], TOP_KEYS);
        let head = self.head(path, top);
        let recipes = self.recipes(top);
        let (columns, column_settings, published_columns) = self.columns(top);
        let col_ids: Vec<String> = columns.iter().map(|c| c.id.clone()).collect();
        let (mut rows, mut row_settings, row_tables) = self.rows(top);
        let (mut cell_settings, mut excluded) = self.cells(top, &rows, &col_ids);
        let mut cell_recipes = self.cell_recipes(top, &rows, &col_ids, &excluded, &recipes);
        let published = self.published(&head.table, &mut rows, &row_tables, &columns, &published_columns);
        let looked_up = RowCells { cells: &cell_settings, excluded: &excluded, published: &published };
        for (ri, row) in rows.iter().enumerate() {
            self.check_row(row, &row_tables[ri], &row_settings[ri], &col_ids, &looked_up);
        }
        if matches!(head.seeds, Some(Seeds::List(_))) {
            self.seed_conflicts(&head.defaults, &column_settings, &columns, &row_settings, &rows, &cell_settings);
        }
        let points = self.sweeps(top, &rows);
        let rows_in = SweepRows {
            rows: &mut rows,
            settings: &mut row_settings,
            cells: &mut cell_settings,
            excluded: &mut excluded,
            recipes: &mut cell_recipes,
        };
        let sweep_points = insert_points(points, rows_in, &col_ids);
        let mut m = Manifest {
            path: path.to_path_buf(),
            name: head.name,
            title: head.title,
            shots: head.shots,
            seeds: head.seeds.unwrap_or(Seeds::Count(DEFAULT_SEEDS)),
            smoke_seeds: head.smoke_seeds,
            tolerance: head.tolerance,
            rows,
            columns,
            figures: Vec::new(),
            defaults: head.defaults,
            smoke: head.smoke,
            recipes,
            cell_recipes,
            row_settings,
            column_settings,
            cell_settings,
            sweep_points,
            overrides: Table::new(),
            flags: Vec::new(),
            excluded,
            published,
        };
        let (with_runs, has_stage2) = m.cells_with_runs();
        m.figures = self.figures(top, &with_runs, &has_stage2, &m.rows, &col_ids);
        m
    }

    /// `[manifest]` (its own keys and `[manifest.smoke]`) and `[defaults]`.
    fn head(&mut self, path: &Path, top: &Table) -> Head {
        let table = self.table(top, &[], "manifest").cloned().unwrap_or_default();
        let at = key_path(&["manifest"]);
        self.check_keys(&table, &at, MANIFEST_KEYS);
        let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let name = self.string(&table, &at, "name").unwrap_or(stem);
        let title = self.string(&table, &at, "title").unwrap_or_else(|| name.clone());
        let shots = self.boolean(&table, &at, "shots").unwrap_or(false);
        let seeds = self.seeds(&table);
        let smoke_seeds = self.smoke_seeds(&table, seeds.as_ref());
        let tolerance = self.tolerance(&table);
        let smoke = self.table(&table, &at, "smoke").cloned().unwrap_or_default();
        self.fragment(&smoke, &key_path(&["manifest", "smoke"]), &[]);
        if smoke.contains_key("seed") {
            self.err(key_path(&["manifest", "smoke", "seed"]), "`seed` in [manifest.smoke] would make smoke runs use other seeds than the table; set `seeds` in [manifest]");
        }
        let defaults = self.table(top, &[], "defaults").cloned().unwrap_or_default();
        self.fragment(&defaults, &key_path(&["defaults"]), &[]);
        Head { table, name, title, shots, seeds, smoke_seeds, tolerance, smoke, defaults }
    }

    /// The published value of each cell: the referenced file's first, a row's inline values
    /// over them. Sets each row's `quoted` (its own key, else the file's row's, else false).
    fn published(
        &mut self,
        head: &Table,
        rows: &mut [RowInfo],
        row_tables: &[Table],
        columns: &[ColumnInfo],
        published_columns: &[String],
    ) -> HashMap<String, f64> {
        let mut published = HashMap::new();
        let file_rows = self.published_file(head);
        for (row, t) in rows.iter_mut().zip(row_tables) {
            let at = key_path(&["rows", &row.id]);
            let pub_row = self.string(t, &at, "published_row");
            let quoted = self.boolean(t, &at, "quoted");
            row.quoted = quoted.unwrap_or(false);
            let id = pub_row.clone().unwrap_or_else(|| row.id.clone());
            match file_rows.as_ref().map(|f| (f, f.iter().find(|r| r.id == id))) {
                Some((_, Some(found))) => {
                    row.quoted = quoted.unwrap_or(found.quoted);
                    for (col, file_column) in columns.iter().zip(published_columns) {
                        if let Some(v) = found.values.get(file_column) {
                            published.insert(cell_id(&row.id, &col.id), *v);
                        }
                    }
                }
                Some((file_rows, None)) if pub_row.is_some() => {
                    let known: Vec<&str> = file_rows.iter().map(|r| r.id.as_str()).collect();
                    let p = key_path(&["rows", &row.id, "published_row"]);
                    self.reference_in(p, "row", &id, " in the published table", &known);
                }
                None if pub_row.is_some() => {
                    self.err(key_path(&["rows", &row.id, "published_row"]), "`published_row` needs a published table: add `published = { file = ..., table = ... }` to [manifest]");
                }
                _ => {}
            }
            self.inline_published(t, &row.id, columns, &mut published);
        }
        published
    }

    /// A row's `published = { column = value }`, over the file's values.
    fn inline_published(&mut self, t: &Table, row: &str, columns: &[ColumnInfo], published: &mut HashMap<String, f64>) {
        let Some(inline) = self.table(t, &key_path(&["rows", row]), "published") else { return };
        let known: Vec<&str> = columns.iter().map(|c| c.id.as_str()).collect();
        for (col, v) in inline {
            let p = key_path(&["rows", row, "published", col]);
            if !self.reference(p.clone(), "column", col, &known) {
                continue;
            }
            match v {
                Value::Float(x) => {
                    published.insert(cell_id(row, col), *x);
                }
                Value::Integer(x) => {
                    published.insert(cell_id(row, col), *x as f64);
                }
                other => self.err(
                    p,
                    format!("published value of `{col}` must be a number (top-1 %), not {}", schema::describe(other)),
                ),
            }
        }
    }

    /// Row-level consistency: a quoted row has no settings, no cells and some numbers; a trained
    /// row has at least one cell to train.
    fn check_row(&mut self, row: &RowInfo, table: &Table, settings: &Table, col_ids: &[String], cells: &RowCells) {
        let at = key_path(&["rows", &row.id]);
        let ids: Vec<String> = col_ids.iter().map(|c| cell_id(&row.id, c)).collect();
        if !row.quoted {
            if !ids.is_empty() && ids.iter().all(|id| cells.excluded.contains(id)) {
                self.err(at, format!("row `{}` is not quoted but has no cell to train (all its cells are skipped or outside its `columns`)", row.id));
            }
            return;
        }
        if table.contains_key("recipe") {
            self.err(
                key_path(&["rows", &row.id, "recipe"]),
                format!("row `{}` is quoted (nothing is trained) but names a `recipe`; remove it", row.id),
            );
        }
        if let Some(k) = settings.keys().next() {
            self.err(key_path(&["rows", &row.id, k]), format!("row `{}` is quoted (published values only, no training) but sets `{k}`; remove the settings or set `quoted = false`", row.id));
        }
        if !ids.iter().any(|id| cells.published.contains_key(id)) {
            self.err(at, format!("quoted row `{}` has no published values; add `published = {{ column = value }}` or a published table", row.id));
        }
        for id in ids.iter().filter(|id| cells.cells.contains_key(*id)) {
            self.err(
                key_path(&["cells", id]),
                format!("cell `{id}` belongs to the quoted row `{}`, which is not trained", row.id),
            );
        }
    }

    /// `seeds`: a count (`3`) or a list (`[123, 124]`); `None` when absent or wrong.
    pub(super) fn seeds(&mut self, head: &Table) -> Option<Seeds> {
        let p = key_path(&["manifest", "seeds"]);
        match head.get("seeds")? {
            Value::Integer(n) if *n >= 1 => Some(Seeds::Count(*n as usize)),
            Value::Array(items) => self.seed_list(items, p).map(Seeds::List),
            other => {
                let msg = format!(
                    "`seeds` in [manifest] must be a number of seeds (an integer >= 1, e.g. 3) or a list of seeds like [123, 124], not {}",
                    schema::short(other)
                );
                self.err(p, msg);
                None
            }
        }
    }

    fn seed_list(&mut self, items: &[Value], p: Vec<String>) -> Option<Vec<u64>> {
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
                other => {
                    self.err(pi, format!("`seeds` must list non-negative integers, found {}", schema::short(other)))
                }
            }
        }
        if seeds.is_empty() {
            self.err(p, format!("`seeds` in [manifest] is empty; list at least one seed or remove the key (default: {DEFAULT_SEEDS} seeds)"));
            return None;
        }
        Some(seeds)
    }

    /// `smoke_seeds`: an integer >= 1, at most the number of listed seeds.
    pub(super) fn smoke_seeds(&mut self, head: &Table, seeds: Option<&Seeds>) -> Option<usize> {
        let p = key_path(&["manifest", "smoke_seeds"]);
        let n = match head.get("smoke_seeds")? {
            Value::Integer(n) if *n >= 1 => *n as usize,
            other => {
                self.err(p, format!("`smoke_seeds` in [manifest] must be an integer >= 1 (how many seeds run at smoke scale), not {}", schema::short(other)));
                return None;
            }
        };
        if let Some(Seeds::List(list)) = seeds {
            if n > list.len() {
                self.err(p, format!("`smoke_seeds = {n}` asks for more seeds than `seeds` lists ({}); smoke scale runs the first `smoke_seeds` of them", list.len()));
                return None;
            }
        }
        Some(n)
    }

    /// `tolerance`: a finite number of points >= 0 (default [`DEFAULT_TOLERANCE`]).
    pub(super) fn tolerance(&mut self, head: &Table) -> f64 {
        let p = key_path(&["manifest", "tolerance"]);
        let value = match head.get("tolerance") {
            None => return DEFAULT_TOLERANCE,
            Some(Value::Integer(x)) => *x as f64,
            Some(Value::Float(x)) => *x,
            Some(other) => {
                self.err(
                    p,
                    format!(
                        "`tolerance` in [manifest] must be a number of points (e.g. 1.0), not {}",
                        schema::describe(other)
                    ),
                );
                return DEFAULT_TOLERANCE;
            }
        };
        if !(value.is_finite() && value >= 0.0) {
            self.err(
                p,
                format!(
                    "`tolerance` in [manifest] must be a finite number >= 0 (points of top-1 accuracy), not {value}"
                ),
            );
            return DEFAULT_TOLERANCE;
        }
        value
    }

    pub(super) fn seed_conflicts(
        &mut self,
        defaults: &Table,
        cols: &[Table],
        columns: &[ColumnInfo],
        rows_s: &[Table],
        rows: &[RowInfo],
        cells: &HashMap<String, Table>,
    ) {
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
            self.err(p, "`seed` conflicts with the list `seeds` in [manifest], which sets the seed of every run; remove one of them, or make `seeds` a count (`seeds = 3` runs `seed`, `seed` + 1, `seed` + 2)");
        }
    }

    pub(super) fn columns(&mut self, top: &Table) -> (Vec<ColumnInfo>, Vec<Table>, Vec<String>) {
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
                self.err(
                    at.clone(),
                    format!("column id `{id}` may only use letters, digits, `_` and `-` (cells are named row.column)"),
                );
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

    pub(super) fn rows(&mut self, top: &Table) -> (Vec<RowInfo>, Vec<Table>, Vec<Table>) {
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
                self.err(
                    at.clone(),
                    format!("row id `{id}` may only use letters, digits, `_` and `-` (cells are named row.column)"),
                );
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
    pub(super) fn cells(
        &mut self,
        top: &Table,
        rows: &[RowInfo],
        col_ids: &[String],
    ) -> (HashMap<String, Table>, HashSet<String>) {
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
                self.err(
                    at,
                    format!(
                        "cell id `{id}` must be `row.column`, e.g. [cells.\"{}\"]",
                        rows.first()
                            .map(|r| cell_id(&r.id, col_ids.first().map(|s| s.as_str()).unwrap_or("column")))
                            .unwrap_or_else(|| "row.column".into())
                    ),
                );
                continue;
            };
            let ok_r = self.reference(at.clone(), "row", r, &row_ids);
            let ok_c = self.reference(at.clone(), "column", c, &known_cols);
            self.fragment(t, &at, CELL_KEYS);
            if self.boolean(t, &at, "skip") == Some(true) {
                excluded.insert(id.clone());
            } else if ok_r && ok_c && excluded.contains(id.as_str()) {
                self.err(
                    at.clone(),
                    format!("cell `{id}` is outside the `columns` of row `{r}`, so its settings would never be used"),
                );
            }
            settings.insert(id.clone(), fragment_of(t, CELL_KEYS));
        }
        (settings, excluded)
    }

    /// `[recipes.ID]`: a released recipe as a settings fragment, with its `source`.
    pub(super) fn recipes(&mut self, top: &Table) -> HashMap<String, Recipe> {
        let mut out = HashMap::new();
        let Some(recipes) = self.table(top, &[], "recipes") else { return out };
        for (id, v) in recipes {
            let at = key_path(&["recipes", id]);
            let Value::Table(t) = v else {
                self.err(at, format!("recipe `{id}` must be a table ([recipes.{id}]), not {}", schema::describe(v)));
                continue;
            };
            self.fragment(t, &at, RECIPE_KEYS);
            let Some(source) = self.string(t, &at, "source") else {
                self.err(at, format!("recipe `{id}` has no `source`: name the released file(s) it follows, e.g. source = \"owner/repo path/to/script.py\""));
                continue;
            };
            out.insert(id.clone(), Recipe { source, settings: fragment_of(t, RECIPE_KEYS) });
        }
        out
    }

    /// The recipe of each trained cell: its own `recipe`, else its row's, with `{column}`
    /// replaced by the column id (so `recipe = "mislas_{column}"` picks one recipe per dataset).
    /// Dangling names are errors at the key that named them.
    pub(super) fn cell_recipes(
        &mut self,
        top: &Table,
        rows: &[RowInfo],
        col_ids: &[String],
        excluded: &HashSet<String>,
        recipes: &HashMap<String, Recipe>,
    ) -> HashMap<String, String> {
        let mut known: Vec<&str> = recipes.keys().map(String::as_str).collect();
        known.sort();
        let mut out = HashMap::new();
        let rows_t = top.get("rows").and_then(Value::as_table);
        let cells_t = top.get("cells").and_then(Value::as_table);
        for row in rows {
            let at = key_path(&["rows", &row.id]);
            let row_recipe = rows_t
                .and_then(|t| t.get(&row.id))
                .and_then(Value::as_table)
                .and_then(|t| self.string(t, &at, "recipe"));
            for c in col_ids {
                let id = cell_id(&row.id, c);
                let cat = key_path(&["cells", &id]);
                let own = cells_t
                    .and_then(|t| t.get(&id))
                    .and_then(Value::as_table)
                    .and_then(|t| self.string(t, &cat, "recipe"));
                let (template, mut path) = match (own, &row_recipe) {
                    (Some(r), _) => (r, cat),
                    (None, Some(r)) => (r.clone(), at.clone()),
                    (None, None) => continue,
                };
                if excluded.contains(&id) {
                    continue;
                }
                let name = template.replace("{column}", c);
                path.push("recipe".into());
                if self.reference(path, &format!("recipe (cell {id})"), &name, &known) {
                    out.insert(id, name);
                }
            }
        }
        out
    }

    /// Every trained cell resolves to a valid RunSpec at both scales (the per-key checks above
    /// catch nearly everything; this is the final word, with the row's position).
    pub(super) fn check_resolves(&mut self, m: &Manifest) {
        for scale in [Scale::Full, Scale::Smoke] {
            if let Err(e) = expand_with(m, scale, &mut |_| Ok(DataIdentity::Known(String::new()))) {
                self.err(vec![], format!("{e:#}"));
                return;
            }
        }
    }
}

/// `[manifest]` and `[defaults]` as read.
struct Head {
    /// The `[manifest]` table itself (its `published` reference is read with the rows).
    table: Table,
    name: String,
    title: String,
    shots: bool,
    seeds: Option<Seeds>,
    smoke_seeds: Option<usize>,
    tolerance: f64,
    smoke: Table,
    defaults: Table,
}

/// What a row's checks look up about the cells: their own tables, the ones not run, the
/// published values.
struct RowCells<'a> {
    cells: &'a HashMap<String, Table>,
    excluded: &'a HashSet<String>,
    published: &'a HashMap<String, f64>,
}

/// The manifest's rows with the sweep points in place (each base row followed by its points,
/// points over `[defaults]` last). A point's cells take their base row's settings, cells,
/// recipes and skips; its own settings stay apart (returned by row id), merged last.
struct SweepRows<'a> {
    pub rows: &'a mut Vec<RowInfo>,
    pub settings: &'a mut Vec<Table>,
    pub cells: &'a mut HashMap<String, Table>,
    pub excluded: &'a mut HashSet<String>,
    pub recipes: &'a mut HashMap<String, String>,
}

fn insert_points(points: Vec<SweepPoint>, into: SweepRows, col_ids: &[String]) -> HashMap<String, SweepPoint> {
    let old: Vec<(RowInfo, Table)> = std::mem::take(into.rows).into_iter().zip(std::mem::take(into.settings)).collect();
    let mut order: Vec<(RowInfo, Table, Option<SweepPoint>)> = Vec::new();
    for (row, settings) in old {
        let id = row.id.clone();
        order.push((row, settings.clone(), None));
        for p in points.iter().filter(|p| p.base.as_deref() == Some(id.as_str())) {
            order.push((p.row.clone(), settings.clone(), Some(p.clone())));
        }
    }
    for p in points.iter().filter(|p| p.base.is_none()) {
        order.push((p.row.clone(), Table::new(), Some(p.clone())));
    }
    let mut out = HashMap::new();
    for (row, settings, point) in order {
        if let Some(p) = point {
            if let Some(base) = &p.base {
                for c in col_ids {
                    let (from, to) = (cell_id(base, c), cell_id(&row.id, c));
                    if let Some(t) = into.cells.get(&from).cloned() {
                        into.cells.insert(to.clone(), t);
                    }
                    if let Some(r) = into.recipes.get(&from).cloned() {
                        into.recipes.insert(to.clone(), r);
                    }
                    if into.excluded.contains(&from) {
                        into.excluded.insert(to);
                    }
                }
            }
            out.insert(row.id.clone(), p);
        }
        into.rows.push(row);
        into.settings.push(settings);
    }
    out
}

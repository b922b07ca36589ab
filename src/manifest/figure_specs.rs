//! The figures of a manifest (`[figures.ID]`): kind, cells, splits, stage and t-SNE options,
//! checked against the cells that have runs.
use super::schema;
use super::source::table_name;
use super::validate::{key_path, Validator, FIGURE_KEYS, SPLITS};
use super::{cell_id, Figure, FigureKind, RowInfo, DEFAULT_TSNE_POINTS};
use std::collections::HashSet;
use toml::{Table, Value};

/// What a figure's cells are checked against: every cell of the table, those with runs, and
/// those with a stage 2.
struct FigureCells<'a> {
    known: Vec<&'a str>,
    with_runs: &'a HashSet<String>,
    has_stage2: &'a HashSet<String>,
}

impl Validator {
    pub(super) fn figures(
        &mut self,
        top: &Table,
        with_runs: &HashSet<String>,
        has_stage2: &HashSet<String>,
        rows: &[RowInfo],
        col_ids: &[String],
    ) -> Vec<Figure> {
        let Some(figs) = self.table(top, &[], "figures") else { return Vec::new() };
        let all: Vec<String> = rows.iter().flat_map(|r| col_ids.iter().map(|c| cell_id(&r.id, c))).collect();
        let cells = FigureCells { known: all.iter().map(String::as_str).collect(), with_runs, has_stage2 };
        let mut out = Vec::new();
        for (id, v) in figs {
            let at = key_path(&["figures", id]);
            let Value::Table(t) = v else {
                self.err(at, format!("figure `{id}` must be a table ([figures.{id}]), not {}", schema::describe(v)));
                continue;
            };
            out.extend(self.figure(id, t, &at, &cells));
        }
        out
    }

    /// One `[figures.ID]`; `None` when its kind is missing or wrong (every problem reported).
    fn figure(&mut self, id: &str, t: &Table, at: &[String], cells: &FigureCells) -> Option<Figure> {
        self.check_keys(t, at, FIGURE_KEYS);
        let kind = self.figure_kind(id, t, at);
        let title = self.string(t, at, "title").unwrap_or_else(|| id.to_string());
        let stage = self.figure_stage(t, at);
        let shown = self.figure_cells(id, t, at, stage, cells);
        let splits = self.tsne_splits(t, at, kind);
        let classes = self.tsne_classes(t, at, kind);
        let max_points = self.tsne_max_points(t, at, kind);
        Some(Figure { id: id.to_string(), kind: kind?, title, cells: shown, splits, stage, classes, max_points })
    }

    fn figure_kind(&mut self, id: &str, t: &Table, at: &[String]) -> Option<FigureKind> {
        let Some(k) = self.string(t, at, "kind") else {
            self.err(at.to_vec(), format!("figure `{id}` needs `kind` (one of {})", FigureKind::NAMES.join(", ")));
            return None;
        };
        let kind = FigureKind::parse(&k);
        if kind.is_none() {
            self.err(
                [at, &["kind".to_string()]].concat(),
                format!(
                    "invalid value \"{k}\" for `kind` in {}; expected one of {}",
                    table_name(at),
                    FigureKind::NAMES.join(", ")
                ),
            );
        }
        kind
    }

    /// `stage = 1 | 2` (default 1).
    fn figure_stage(&mut self, t: &Table, at: &[String]) -> u8 {
        match t.get("stage") {
            None => 1,
            Some(Value::Integer(s)) if *s == 1 || *s == 2 => *s as u8,
            Some(other) => {
                let msg = format!(
                    "invalid value {} for `stage` in {}; expected 1 or 2",
                    schema::short(other),
                    table_name(at)
                );
                self.err([at, &["stage".to_string()]].concat(), msg);
                1
            }
        }
    }

    /// `cells = ["row.column", ...]`: cells of the table that have runs (and a stage 2 when the
    /// figure shows stage 2).
    fn figure_cells(&mut self, id: &str, t: &Table, at: &[String], stage: u8, cells: &FigureCells) -> Vec<String> {
        let shown = self.strings(t, at, "cells").unwrap_or_default();
        if shown.is_empty() {
            self.err(at.to_vec(), format!("figure `{id}` needs `cells = [\"row.column\", ...]`"));
        }
        for (i, c) in shown.iter().enumerate() {
            let p = [at, &["cells".to_string(), i.to_string()]].concat();
            if !self.reference(p.clone(), "cell", c, &cells.known) {
                continue;
            }
            if !cells.with_runs.contains(c) {
                self.err(p, format!("figure `{id}` shows cell `{c}`, which has no runs (quoted or skipped)"));
            } else if stage == 2 && !cells.has_stage2.contains(c) {
                self.err(p, format!("figure `{id}` shows stage 2 of cell `{c}`, which has no stage 2"));
            }
        }
        shown
    }

    /// `splits = ["train", "test"]` of a t-SNE figure (default both); no other kind has splits.
    fn tsne_splits(&mut self, t: &Table, at: &[String], kind: Option<FigureKind>) -> Vec<String> {
        match (kind, self.strings(t, at, "splits")) {
            (Some(FigureKind::Tsne), None) => vec!["train".to_string(), "test".to_string()],
            (Some(FigureKind::Tsne), Some(list)) => {
                for (i, s) in list.iter().enumerate().filter(|(_, s)| !SPLITS.contains(&s.as_str())) {
                    let msg = format!(
                        "invalid value \"{s}\" for `splits` in {}; expected one of {}",
                        table_name(at),
                        SPLITS.join(", ")
                    );
                    self.err([at, &["splits".to_string(), i.to_string()]].concat(), msg);
                }
                list
            }
            (_, Some(_)) => {
                self.err(
                    [at, &["splits".to_string()]].concat(),
                    "`splits` applies to t-SNE figures only (kind = \"tsne\")",
                );
                vec![]
            }
            (_, None) => vec![],
        }
    }

    /// `classes = [4, 6, 7, 9]` of a t-SNE figure: distinct non-negative class indices.
    pub(super) fn tsne_classes(&mut self, t: &Table, at: &[String], kind: Option<FigureKind>) -> Option<Vec<usize>> {
        let v = t.get("classes")?;
        let mut p = at.to_vec();
        p.push("classes".into());
        if kind.is_some_and(|k| k != FigureKind::Tsne) {
            self.err(p, "`classes` applies to t-SNE figures only (kind = \"tsne\")");
            return None;
        }
        let Value::Array(items) = v else {
            self.err(
                p,
                format!(
                    "`classes` in {} must be an array of class indices, e.g. [4, 6, 7, 9], not {}",
                    table_name(at),
                    schema::describe(v)
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut pi = p.clone();
            pi.push(i.to_string());
            match item {
                Value::Integer(c) if *c >= 0 && !out.contains(&(*c as usize)) => out.push(*c as usize),
                Value::Integer(c) if *c >= 0 => {
                    self.err(pi, format!("class {c} is listed twice in `classes` of {}", table_name(at)))
                }
                other => self.err(
                    pi,
                    format!(
                        "`classes` in {} must list class indices (integers >= 0), found {}",
                        table_name(at),
                        schema::short(other)
                    ),
                ),
            }
        }
        if items.is_empty() {
            self.err(
                p,
                format!(
                    "`classes` in {} is empty; list the class indices to show or leave it out for all classes",
                    table_name(at)
                ),
            );
        }
        Some(out)
    }

    /// `max_points = N` of a t-SNE figure: a positive integer.
    pub(super) fn tsne_max_points(&mut self, t: &Table, at: &[String], kind: Option<FigureKind>) -> usize {
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
                self.err(
                    p,
                    format!(
                        "invalid value {} for `max_points` in {}; expected an integer >= 2 (points per split)",
                        schema::short(other),
                        table_name(at)
                    ),
                );
                DEFAULT_TSNE_POINTS
            }
        }
    }
}

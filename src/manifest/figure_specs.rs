//! The figures of a manifest (`[figures.ID]`): kind, cells, splits, stage and t-SNE options,
//! checked against the cells that have runs.
use super::schema;
use super::source::table_name;
use super::validate::{key_path, Validator, FIGURE_KEYS, SPLITS};
use super::{cell_id, Figure, FigureKind, RowInfo, DEFAULT_TSNE_POINTS};
use std::collections::HashSet;
use toml::{Table, Value};

impl Validator {
    pub(super) fn figures(
        &mut self,
        top: &Table,
        with_runs: &HashSet<String>,
        has_stage2: &HashSet<String>,
        rows: &[RowInfo],
        col_ids: &[String],
    ) -> Vec<Figure> {
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
                    self.err(
                        at.clone(),
                        format!("figure `{id}` needs `kind` (one of {})", FigureKind::NAMES.join(", ")),
                    );
                    None
                }
                Some(k) => match FigureKind::parse(&k) {
                    Some(kind) => Some(kind),
                    None => {
                        self.err(
                            pk,
                            format!(
                                "invalid value \"{k}\" for `kind` in {}; expected one of {}",
                                table_name(&at),
                                FigureKind::NAMES.join(", ")
                            ),
                        );
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
                    self.err(
                        p,
                        format!(
                            "invalid value {} for `stage` in {}; expected 1 or 2",
                            schema::short(other),
                            table_name(&at)
                        ),
                    );
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
                            self.err(
                                p,
                                format!(
                                    "invalid value \"{s}\" for `splits` in {}; expected one of {}",
                                    table_name(&at),
                                    SPLITS.join(", ")
                                ),
                            );
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

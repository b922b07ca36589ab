//! `gcl-repro explain MANIFEST [CELL]`: what a cell will run, before anyone pays for it.
//!
//! Every setting of both stages, fully resolved (defaults, column, row, cell and smoke merged as
//! the runner merges them), one `key = value` line each, with a `*` and the released value
//! beside every setting that differs from the cell's released recipe (its `recipe = "ID"`, a
//! `[recipes.ID]` table of the manifest, or else the released GCL CIFAR recipe,
//! [`RunSpec::released_gcl`]), and the cache key(s) the results are stored under.
use crate::data::DataIdentity;
use crate::manifest::{schema::did_you_mean, Manifest, TableCell};
use crate::training::spec::RunSpec;
use anyhow::{bail, Result};
use serde_json::Value;
use std::fmt::Write as _;

/// Flattens a settings value to `(dotted.path, value)` lines in field order.
pub(crate) fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&path, child, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn settings(spec: &RunSpec) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    flatten("", &serde_json::to_value(spec).expect("settings serialise to JSON"), &mut out);
    out
}

/// The lines of one run: every setting, `*` where it differs from the released GCL CIFAR recipe.
pub fn settings_lines(spec: &RunSpec) -> String {
    settings_beside(spec, &RunSpec::released_gcl())
}

/// The lines of one run: every setting, `*` and the released value where it differs from
/// `released`.
pub fn settings_beside(spec: &RunSpec, released: &RunSpec) -> String {
    let released: std::collections::HashMap<String, Value> = settings(released).into_iter().collect();
    let mut text = String::new();
    for (path, value) in settings(spec) {
        if path == "stage2" {
            // Only when stage 2 is absent (a present stage 2 flattens into its fields).
            if released.keys().any(|k| k.starts_with("stage2.")) {
                let _ = writeln!(
                    text,
                    "* stage2 = none (the run ends after stage 1)   released: a stage 2 (classifier re-training)"
                );
            } else {
                let _ = writeln!(text, "  stage2 = none (the run ends after stage 1)");
            }
            continue;
        }
        match released.get(&path) {
            Some(r) if *r == value => {
                let _ = writeln!(text, "  {path} = {value}");
            }
            Some(r) => {
                let _ = writeln!(text, "* {path} = {value}   released: {r}");
            }
            None => {
                let _ = writeln!(text, "* {path} = {value}   released: (not set)");
            }
        }
    }
    text
}

/// The explanation of one cell: header, keys, then the settings of each seed's run (the runs of
/// several seeds differ only in `seed`, so the settings are printed once).
pub fn explain_cell(m: &Manifest, cell: &TableCell) -> String {
    let row = m.rows.iter().find(|r| r.id == cell.row).map(|r| r.label.as_str()).unwrap_or("");
    let col = m.columns.iter().find(|c| c.id == cell.column).map(|c| c.label.as_str()).unwrap_or("");
    let mut text = format!("{} · cell {} (row \"{row}\", column \"{col}\")\n", m.path.display(), cell.id());
    if let Some(p) = cell.published {
        let _ = writeln!(text, "published: {p}");
    }
    if let Some(point) = m.sweep_point(&cell.row) {
        let base = point.base.as_ref().map(|b| format!("row `{b}`")).unwrap_or_else(|| "[defaults]".into());
        let _ = writeln!(text, "sweep point: {} over {base} (set after the row's and cell's settings)", point.describe);
    }
    if !m.flags.is_empty() {
        let _ = writeln!(text, "changed on the command line: {} (set last, at both scales)", m.flags.join(" "));
    }
    if cell.quoted {
        text.push_str("quoted from the paper: nothing is trained for this cell\n");
        return text;
    }
    let Some(first) = cell.runs.first() else {
        text.push_str("not run (outside its row's columns, or skip = true)\n");
        return text;
    };
    for run in &cell.runs {
        match (&run.keys, &run.data) {
            (Some(keys), _) => {
                let _ = write!(text, "seed {}: stage-1 key {}", run.seed, keys.stage1);
                match &keys.stage2 {
                    Some(k) => {
                        let _ = writeln!(text, ", stage-2 key {k}");
                    }
                    None => text.push('\n'),
                }
            }
            (None, DataIdentity::Unavailable { dataset, reason }) => {
                let _ = writeln!(
                    text,
                    "seed {}: no key: the {dataset:?} data is not under the data root ({reason})",
                    run.seed
                );
            }
            (None, DataIdentity::Known(_)) => unreachable!("a run with known data has keys"),
        }
    }
    match m.recipe_of(cell, first.seed) {
        Some(Ok((name, source, released))) => {
            let _ = writeln!(text, "released recipe `{name}`: {source}");
            text.push_str("settings (* = differs from this cell's released recipe, whose value follows):\n");
            text.push_str(&settings_beside(&first.spec, &released));
        }
        Some(Err(e)) => {
            let _ = writeln!(text, "released recipe: cannot be resolved: {e:#}");
            text.push_str(&settings_lines(&first.spec));
        }
        None => {
            text.push_str("settings (* = differs from the released GCL CIFAR recipe, whose value follows):\n");
            text.push_str(&settings_lines(&first.spec));
        }
    }
    text
}

/// Finds a cell by id (`row.column`, or just `row` in a one-column table).
pub fn find_cell<'a>(m: &Manifest, cells: &'a [TableCell], id: &str) -> Result<&'a TableCell> {
    let wanted = match (id.contains('.'), m.columns.as_slice()) {
        (false, [only]) => crate::manifest::cell_id(id, &only.id),
        _ => id.to_string(),
    };
    if let Some(c) = cells.iter().find(|c| c.id() == wanted) {
        return Ok(c);
    }
    let ids: Vec<String> = cells.iter().map(|c| c.id()).collect();
    let refs: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let hint = did_you_mean(&wanted, &refs).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
    bail!("{} has no cell `{id}`{hint} (cells: {})", m.path.display(), refs.join(", "))
}

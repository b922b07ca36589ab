//! `[sweep]`: a grid of settings, expanded into table rows with generated ids and labels.
//!
//! ```toml
//! [sweep]                                   # one grid; `[[sweep]]` tables for several
//! row = "gcl"                               # the row each point varies (optional)
//! stage1.loss.noise_mul = [0.25, 0.5, 1.0]  # every leaf lists the values to try;
//! stage1.lr = [0.1, 0.2]                    # several leaves give their product (6 rows)
//! ```
//! Every point of the grid becomes a row. With `row`, the point is that row with the point's
//! values set last (after the row's recipe, settings and cells; the row keeps its `columns`
//! and skipped cells) and its rows follow the base row, which stays in the table. Without
//! `row`, a point is `[defaults]` and the column with the point's values, and its rows come
//! last. Ids and labels name the values: `gcl-noise_mul-0_25-lr-0_1`, "GCL (noise_mul = 0.25,
//! lr = 0.1)". A point is a row like any other: keys are content hashes of its resolved
//! settings, so a point equal to an existing row reuses that row's runs, and figures may name
//! its cells.
use super::schema::{self, check_fragment};
use super::source::table_name;
use super::validate::{key_path, Validator};
use super::{RowInfo, SweepPoint};
use toml::{Table, Value};

/// The own keys of a `[sweep]` table; every other key is a setting with the values to try.
pub(super) const SWEEP_KEYS: &[&str] = &["row"];

/// One setting of a grid and the values it takes.
struct Axis {
    path: Vec<String>,
    values: Vec<Value>,
}

/// `value` at `path` in an otherwise empty table: `stage1.lr = 0.1` -> `{ stage1 = { lr = 0.1 } }`.
pub(crate) fn nested(path: &[String], value: Value) -> Table {
    let mut v = value;
    for key in path.iter().rev() {
        let mut t = Table::new();
        t.insert(key.clone(), v);
        v = Value::Table(t);
    }
    match v {
        Value::Table(t) => t,
        _ => Table::new(),
    }
}

/// The cartesian product of the axes' value indices, the first axis varying slowest.
fn product(sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut points = vec![vec![]];
    for &n in sizes {
        points = points.into_iter().flat_map(|p| (0..n).map(move |i| [p.clone(), vec![i]].concat())).collect();
    }
    points
}

/// A value as an id part: letters, digits, `_` and `-` only (`0.25` -> `0_25`).
fn slug(v: &Value, index: usize) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(|x| slug(x, index)).collect::<Vec<_>>().join("_"),
        Value::Table(_) => format!("v{}", index + 1),
        other => other.to_string(),
    };
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// A value as a label shows it: strings without quotes.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every combination of the axes' values as a point of `base` (or of `[defaults]`). Axes are
/// named by their last key when those are unique, else by their whole path.
fn grid_points(axes: &[Axis], base: Option<&RowInfo>) -> Vec<SweepPoint> {
    let leaves: Vec<&String> = axes.iter().map(|a| a.path.last().expect("non-empty path")).collect();
    let unique_leaves = (1..leaves.len()).all(|i| !leaves[..i].contains(&leaves[i]));
    let name = |a: &Axis| if unique_leaves { a.path.last().cloned().unwrap_or_default() } else { a.path.join(".") };
    let sizes: Vec<usize> = axes.iter().map(|a| a.values.len()).collect();
    product(&sizes)
        .into_iter()
        .map(|choice| {
            let mut settings = Table::new();
            let (mut id_parts, mut described) = (Vec::new(), Vec::new());
            for (axis, &i) in axes.iter().zip(&choice) {
                let value = &axis.values[i];
                super::merge::merge(&mut settings, &nested(&axis.path, value.clone()));
                id_parts.push(format!("{}-{}", name(axis), slug(value, i)));
                described.push(format!("{} = {}", name(axis), shown(value)));
            }
            let describe = described.join(", ");
            let id = base.iter().map(|b| b.id.clone()).chain(id_parts).collect::<Vec<_>>().join("-");
            let label = match base {
                Some(b) => format!("{} ({describe})", b.label),
                None => describe.clone(),
            };
            SweepPoint {
                base: base.map(|b| b.id.clone()),
                row: RowInfo { id, label, quoted: false },
                settings,
                describe,
            }
        })
        .collect()
}

impl Validator {
    /// The rows of every grid of `[sweep]` / `[[sweep]]`, checked: each value against the
    /// settings schema (at its own position in the file), the base row, and that generated ids
    /// are new. `rows` are the manifest's own rows (quoted known).
    pub(super) fn sweeps(&mut self, top: &Table, rows: &[RowInfo]) -> Vec<SweepPoint> {
        let grids: Vec<(Vec<String>, &Table)> = match top.get("sweep") {
            None => return vec![],
            Some(Value::Table(t)) => vec![(key_path(&["sweep"]), t)],
            Some(Value::Array(items)) if items.iter().all(Value::is_table) => items
                .iter()
                .enumerate()
                .filter_map(|(i, t)| Some((key_path(&["sweep", &i.to_string()]), t.as_table()?)))
                .collect(),
            Some(other) => {
                self.err(
                    key_path(&["sweep"]),
                    format!("`sweep` must be a table ([sweep]) or tables ([[sweep]]), not {}", schema::describe(other)),
                );
                return vec![];
            }
        };
        let mut points: Vec<SweepPoint> = Vec::new();
        for (at, grid) in grids {
            for point in self.grid(&at, grid, rows) {
                if rows.iter().any(|r| r.id == point.row.id) || points.iter().any(|p| p.row.id == point.row.id) {
                    self.err(
                        at.clone(),
                        format!("the sweep point {} would be the row `{}`, which already exists; give the row another id or drop the value from the grid", point.describe, point.row.id),
                    );
                    continue;
                }
                points.push(point);
            }
        }
        points
    }

    /// The points of one grid table at `at`.
    fn grid(&mut self, at: &[String], grid: &Table, rows: &[RowInfo]) -> Vec<SweepPoint> {
        let Ok(base) = self.sweep_base(at, grid, rows) else { return vec![] };
        match self.grid_axes(at, grid) {
            Some(axes) => grid_points(&axes, base.as_ref()),
            None => vec![],
        }
    }

    /// The row a grid varies (`row = "ID"`; `None`: it varies `[defaults]`); `Err` once reported.
    fn sweep_base(&mut self, at: &[String], grid: &Table, rows: &[RowInfo]) -> Result<Option<RowInfo>, ()> {
        let Some(id) = self.string(grid, at, "row") else { return Ok(None) };
        let known: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let p = [at, &["row".to_string()]].concat();
        if !self.reference(p.clone(), "row", &id, &known) {
            return Err(());
        }
        let row = rows.iter().find(|r| r.id == id).expect("referenced row");
        if row.quoted {
            self.err(p, format!("the sweep varies row `{id}`, which is quoted (published values only, nothing trained); name a trained row"));
            return Err(());
        }
        Ok(Some(row.clone()))
    }

    /// The settings a grid varies; `None` (reported) when it varies none, or one inside another.
    fn grid_axes(&mut self, at: &[String], grid: &Table) -> Option<Vec<Axis>> {
        let mut axes = Vec::new();
        let errors_before = self.errors.len();
        let settings: Table = grid
            .iter()
            .filter(|(k, _)| !SWEEP_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.axes(&settings, at, &mut vec![], &mut axes);
        if axes.is_empty() {
            if self.errors.len() == errors_before {
                let msg = format!(
                    "{} sets no setting to vary: add one with the values to try, e.g. stage1.lr = [0.1, 0.2]",
                    table_name(at)
                );
                self.err(at.to_vec(), msg);
            }
            return None;
        }
        for (i, a) in axes.iter().enumerate() {
            for b in &axes[i + 1..] {
                let (short, long) = if a.path.len() <= b.path.len() { (a, b) } else { (b, a) };
                if long.path.starts_with(&short.path) {
                    let msg = format!(
                        "`{}` is inside `{}`, which the sweep also varies; vary one of them",
                        long.path.join("."),
                        short.path.join(".")
                    );
                    self.err([at, &long.path[..]].concat(), msg);
                    return None;
                }
            }
        }
        Some(axes)
    }

    /// The settings a grid varies (every array leaf), each value checked against the schema at
    /// its position in the file (`sweep.stage1.lr.1`).
    fn axes(&mut self, t: &Table, at: &[String], path: &mut Vec<String>, out: &mut Vec<Axis>) {
        for (key, value) in t {
            path.push(key.clone());
            let mut here = at.to_vec();
            here.extend(path.iter().cloned());
            match value {
                Value::Table(sub) => self.axes(sub, at, path, out),
                Value::Array(_) if path.len() == 1 && key == "seed" => {
                    self.err(here, "a sweep does not vary `seed`: every row runs the seeds of `seeds` in [manifest]");
                }
                Value::Array(values) if values.is_empty() => {
                    let msg = format!("`{}` in {} lists no values to try", key, table_name(&here[..here.len() - 1]));
                    self.err(here, msg);
                }
                Value::Array(values) => {
                    let mut ok = true;
                    for (i, v) in values.iter().enumerate() {
                        let mut problems = Vec::new();
                        check_fragment(&nested(path, v.clone()), at, &[], &self.shape, &[], &mut problems);
                        for (p, msg) in problems {
                            ok = false;
                            // The problem's path runs through the setting; its value is element i.
                            let depth = at.len() + path.len();
                            let mut located = p[..depth.min(p.len())].to_vec();
                            if p.len() >= depth {
                                located.push(i.to_string());
                                located.extend(p[depth..].iter().cloned());
                            }
                            self.err(located, msg);
                        }
                    }
                    if ok {
                        out.push(Axis { path: path.clone(), values: values.clone() });
                    }
                }
                other => self.err(
                    here.clone(),
                    format!(
                        "`{key}` in {} must list the values to try, e.g. [{}, ...], not one {}; a setting every point shares belongs in the row or [defaults]",
                        table_name(&here[..here.len() - 1]),
                        schema::short(other),
                        schema::describe(other).trim_start_matches("a ").trim_start_matches("an ")
                    ),
                ),
            }
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_varies_the_last_axis_fastest() {
        assert_eq!(product(&[2, 3]), vec![vec![0, 0], vec![0, 1], vec![0, 2], vec![1, 0], vec![1, 1], vec![1, 2]]);
        assert_eq!(product(&[1]), vec![vec![0]]);
    }

    #[test]
    fn slugs_are_valid_ids() {
        assert_eq!(slug(&Value::Float(0.25), 0), "0_25");
        assert_eq!(slug(&Value::String("pow_third".into()), 0), "pow_third");
        assert_eq!(slug(&Value::Array(vec![Value::Integer(160), Value::Integer(180)]), 0), "160_180");
        assert_eq!(slug(&Value::Table(Table::new()), 2), "v3");
    }
}

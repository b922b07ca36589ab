//! The published values of a manifest: inline per cell, or from a published-tables file
//! (`published = { file, table }`), checked against the manifest's rows and columns.

use super::validate::{key_path, Validator, PUBLISHED_REF_KEYS};
use std::collections::HashMap;
use std::path::Path;
use toml::{Table, Value};

/// One row of a published-tables file.
pub(super) struct PublishedRow {
    pub(super) id: String,
    pub(super) quoted: bool,
    pub(super) values: HashMap<String, f64>,
}

impl Validator {
    /// The rows of the referenced published table: id -> (quoted, column -> value).
    pub(super) fn published_file(&mut self, head: &Table) -> Option<Vec<PublishedRow>> {
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
                self.err(
                    pf,
                    format!("the published tables {} are not valid TOML: {}", file_path.display(), e.message()),
                );
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
}

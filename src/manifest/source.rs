//! Where in the manifest file a key is: `FILE:LINE:COLUMN` for error messages.
//!
//! `toml` (0.8) parses into plain tables without positions, so the file is parsed a second time
//! with `toml_edit`, whose keys and values remember their byte spans. A key path such as
//! `["rows", "gcl", "stage2", "sampeler"]` is looked up there; when the exact key is not found
//! (it cannot be: it may be absent by construction) the deepest enclosing key is used.
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml_edit::{ImDocument, Item, Value};

pub struct Source {
    pub path: PathBuf,
    text: String,
    doc: ImDocument<String>,
}

impl Source {
    /// Parses `text`; a syntax error comes back as one `FILE:LINE:COL: message` line.
    pub fn parse(path: &Path, text: String) -> Result<(Source, toml::Table), String> {
        let table: toml::Table = match toml::from_str(&text) {
            Ok(t) => t,
            Err(e) => {
                let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
                let msg = e.message().trim().lines().map(str::trim).collect::<Vec<_>>().join(": ");
                return Err(format!("{}:{line}:{col}: {msg}", path.display()));
            }
        };
        let doc = ImDocument::parse(text.clone()).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        Ok((Source { path: path.to_path_buf(), text, doc }, table))
    }

    /// `FILE:LINE:COL: msg`, located at the key `path` (or the nearest enclosing key found).
    pub fn error(&self, path: &[String], msg: impl std::fmt::Display) -> String {
        let (line, col) = self.position(path);
        format!("{}:{line}:{col}: {msg}", self.path.display())
    }

    /// 1-based line and column of the key `path` (or the nearest enclosing key found).
    pub fn position(&self, path: &[String]) -> (usize, usize) {
        self.span_of(path).map(|s| line_col(&self.text, s.start)).unwrap_or((1, 1))
    }

    /// Byte span of the deepest key of `path` present in the document. Array elements are
    /// addressed by their index written as a string.
    fn span_of(&self, path: &[String]) -> Option<Range<usize>> {
        let mut best: Option<Range<usize>> = None;
        let mut item: Option<&Item> = Some(self.doc.as_item());
        let mut value: Option<&Value> = None;
        for seg in path {
            type Step<'a> = Option<(Option<Range<usize>>, Option<&'a Item>, Option<&'a Value>)>;
            let next_item: Step = match (item, value) {
                (Some(Item::Table(t)), _) => {
                    t.get_key_value(seg).map(|(k, it)| (k.span().or_else(|| it.span()), Some(it), None))
                }
                (Some(Item::Value(v)), _) | (None, Some(v)) => match v {
                    Value::InlineTable(t) => {
                        t.get_key_value(seg).map(|(k, it)| (k.span().or_else(|| it.span()), Some(it), None))
                    }
                    Value::Array(a) => {
                        seg.parse::<usize>().ok().and_then(|i| a.get(i)).map(|v| (v.span(), None, Some(v)))
                    }
                    _ => None,
                },
                (Some(Item::ArrayOfTables(a)), _) => {
                    seg.parse::<usize>().ok().and_then(|i| a.get(i)).map(|t| (t.span(), None, None))
                }
                _ => None,
            };
            match next_item {
                Some((span, it, v)) => {
                    if span.is_some() {
                        best = span;
                    }
                    item = it;
                    value = v;
                    if item.is_none() && value.is_none() {
                        break;
                    }
                }
                None => break,
            }
        }
        best
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// `[rows.gcl.stage2]`: a table path as written in TOML (keys with dots or spaces quoted).
pub fn table_name(path: &[String]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|k| {
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                k.clone()
            } else {
                format!("{k:?}")
            }
        })
        .collect();
    if parts.is_empty() {
        "the top level".to_string()
    } else {
        format!("[{}]", parts.join("."))
    }
}

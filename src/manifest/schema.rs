//! The allowed keys of a RunSpec fragment, derived from `training::spec::RunSpec` itself, and the checks
//! of a fragment's keys and values with messages that name the key, its table and the fix.
//!
//! The key tree comes from serialising `RunSpec::default()` with a default stage 2, so a field
//! added to `config` is allowed here without touching this file. Optional fields whose default
//! is `None` are not serialised and are listed by hand in [`OPTIONAL_FIELDS`].
use super::merge::method_tag;
use crate::training::spec::{RunSpec, Stage2Spec};
use toml::{Table, Value};

/// Shape of a settings key: a leaf value or a table of named keys (in declaration order).
#[derive(Clone, Debug)]
pub enum Shape {
    Leaf,
    Table(Vec<(String, Shape)>),
}

impl Shape {
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Shape::Leaf => vec![],
            Shape::Table(items) => items.iter().map(|(k, _)| k.as_str()).collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Shape> {
        match self {
            Shape::Leaf => None,
            Shape::Table(items) => items.iter().find(|(k, _)| k == key).map(|(_, s)| s),
        }
    }
}

/// `Option` fields that default to `None` (absent from the serialised default): table, key.
const OPTIONAL_FIELDS: &[(&str, &str)] = &[
    ("dataset", "train_list"),
    ("dataset", "test_list"),
    ("dataset", "path_remap"),
    ("dataset", "image_root"),
    ("dataset", "color_jitter"),
    ("model", "pretrained"),
    ("model", "init_from"),
    ("model", "init_sha256"),
    ("model", "freeze"),
    ("model", "drop_blocks"),
    ("model", "added_block"),
    ("model", "precision"),
    ("stage1", "drw_epoch"),
    ("cpu", "isa"),
    ("cpu", "threads"),
    ("data_parallel", "ranks"),
    ("data_parallel", "batchnorm"),
];

/// The keys a manifest may set in a RunSpec fragment. `scale` is excluded: it is chosen by
/// `--scale`, never written in a manifest.
pub fn runspec_shape() -> Shape {
    let spec = RunSpec { stage2: Some(Stage2Spec::default()), ..RunSpec::default() };
    let value = Value::try_from(&spec).expect("RunSpec serialises to TOML");
    let Shape::Table(mut items) = shape_of(&value) else { unreachable!("RunSpec is a table") };
    items.retain(|(k, _)| k != "scale");
    // Method tables: every variant's settings are allowed in a fragment (the variant may be
    // named by another fragment); `check_fragment` narrows them when the fragment names it.
    for (stage, sub) in items.iter_mut() {
        if let (true, Shape::Table(fields)) = (stage == "stage1" || stage == "stage2", sub) {
            for (name, shape) in fields.iter_mut() {
                if method_tag(name).is_some() {
                    *shape = Shape::Table(union_of_variants(name).into_iter().map(|k| (k, Shape::Leaf)).collect());
                }
            }
        }
    }
    for (table, key) in OPTIONAL_FIELDS {
        // A table whose fields are all left out of the default (`data_parallel`) is added too.
        if !items.iter().any(|(k, _)| k == table) {
            items.push((table.to_string(), Shape::Table(Vec::new())));
        }
        if let Some((_, Shape::Table(sub))) = items.iter_mut().find(|(k, _)| k == table) {
            if !sub.iter().any(|(k, _)| k == key) {
                sub.push((key.to_string(), Shape::Leaf));
            }
        }
    }
    Shape::Table(items)
}

/// The settings of every variant of a method table, each once, in registration order.
fn union_of_variants(table: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for (_, own) in super::merge::variant_keys(table) {
        for k in own {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys
}

/// For a method table (`loss`, `rebalance`) that names its variant: the variant's tag key, name
/// and own settings (`None`: not a method table, no name, or an unknown name).
fn named_variant(key: &str, t: &Table) -> Option<(&'static str, String, Vec<String>)> {
    let tag = method_tag(key)?;
    let name = t.get(tag)?.as_str()?.to_string();
    let own = super::merge::variant_keys(key).into_iter().find(|(n, _)| *n == name)?.1;
    Some((tag, name, own))
}

/// The variant of a method table that has the setting `leaf` (to check a lone leaf value).
fn variant_with(table: &str, leaf: &str) -> Option<(&'static str, String)> {
    let tag = method_tag(table)?;
    super::merge::variant_keys(table)
        .into_iter()
        .find(|(_, keys)| keys.iter().any(|k| k == leaf))
        .map(|(n, _)| (tag, n))
}

fn shape_of(v: &Value) -> Shape {
    match v {
        Value::Table(t) => Shape::Table(t.iter().map(|(k, v)| (k.clone(), shape_of(v))).collect()),
        _ => Shape::Leaf,
    }
}

/// The closest allowed key to a misspelt one, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::jaro_winkler(key, a), *a))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a)
}

/// "unknown key `x` in [t]; did you mean `y`? (allowed: ...)"
pub fn unknown_key_message(key: &str, table: &str, allowed: &[&str]) -> String {
    let hint = did_you_mean(key, allowed).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
    format!("unknown key `{key}` in {table}{hint} (allowed: {})", allowed.join(", "))
}

/// One problem in a fragment: the key path (relative to the manifest root) and the message.
pub type Problem = (Vec<String>, String);

/// Checks the RunSpec keys of `fragment` (found at `at` in the manifest) against `shape`, and
/// each leaf value by deserialising it alone into a RunSpec. Keys of the fragment that are not
/// RunSpec keys must have been removed by the caller (label, quoted, ...).
pub fn check_fragment(
    fragment: &Table,
    at: &[String],
    rel: &[String],
    shape: &Shape,
    extra_allowed: &[&str],
    out: &mut Vec<Problem>,
) {
    let mut allowed: Vec<&str> = shape.keys();
    allowed.extend_from_slice(extra_allowed);
    for (key, value) in fragment {
        if extra_allowed.contains(&key.as_str()) {
            continue;
        }
        let mut path = at.to_vec();
        path.push(key.clone());
        let mut rel_path = rel.to_vec();
        rel_path.push(key.clone());
        let table = super::source::table_name(at);
        let Some(sub) = shape.get(key) else {
            let msg = if key == "scale" && rel.is_empty() {
                format!("`scale` in {table} is not a manifest setting: choose it with `--scale smoke|full` (smoke settings go in [manifest.smoke])")
            } else {
                unknown_key_message(key, &table, &allowed)
            };
            out.push((path, msg));
            continue;
        };
        match (sub, value) {
            (Shape::Table(_), Value::Table(t)) => match named_variant(key, t) {
                Some((tag, name, own)) => {
                    let own_shape = Shape::Table(own.iter().map(|k| (k.clone(), Shape::Leaf)).collect());
                    let mut inner = Vec::new();
                    check_fragment(t, &path, &rel_path, &own_shape, &[], &mut inner);
                    for (p, msg) in inner {
                        out.push((
                            p,
                            msg.replacen(" (allowed: ", &format!(" (the settings of {tag} = \"{name}\": "), 1),
                        ));
                    }
                }
                None => check_fragment(t, &path, &rel_path, sub, &[], out),
            },
            (Shape::Table(_), Value::Boolean(false)) if rel.is_empty() && key == "stage2" => {}
            (Shape::Table(_), other) => {
                let extra = if rel.is_empty() && key == "stage2" { " or `false` (no stage 2)" } else { "" };
                out.push((
                    path,
                    format!(
                        "`{key}` in {table} must be a table{extra}, not {}; allowed keys: {}",
                        describe(other),
                        sub.keys().join(", ")
                    ),
                ));
            }
            (Shape::Leaf, v) => {
                if let Err(msg) = check_leaf(&rel_path, v) {
                    out.push((path, format!("invalid value {} for `{key}` in {table}; {msg}", short(v))));
                }
            }
        }
    }
}

/// Deserialises one leaf value, placed at its path in an otherwise empty RunSpec table.
fn check_leaf(rel_path: &[String], v: &Value) -> Result<(), String> {
    let mut value = v.clone();
    let leaf = rel_path.last().map(String::as_str).unwrap_or_default();
    for (depth, key) in rel_path.iter().enumerate().rev() {
        let mut t = Table::new();
        t.insert(key.clone(), value);
        // A lone setting of a method table is checked inside a variant that has it.
        if depth + 2 == rel_path.len() && method_tag(key).is_some() {
            if let (Some(Value::Table(inner)), Some((tag, name))) = (t.get_mut(key), variant_with(key, leaf)) {
                inner.entry(tag.to_string()).or_insert(Value::String(name));
            }
        }
        value = Value::Table(t);
    }
    match value.try_into::<RunSpec>() {
        Ok(_) => Ok(()),
        Err(e) => Err(explain_serde(e.message())),
    }
}

/// Turns serde's "unknown variant `x`, expected one of `a`, `b`" into "expected one of a, b";
/// other messages are passed through (first line only).
fn explain_serde(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg).trim();
    if first.starts_with("unknown variant") {
        if let Some(pos) = first.find("expected") {
            let names: Vec<&str> = first[pos..].split('`').skip(1).step_by(2).collect();
            return format!("expected one of {}", names.join(", "));
        }
    }
    if let Some(rest) = first.strip_prefix("invalid type: ") {
        if let Some((got, expected)) = rest.split_once(", expected ") {
            let expected = match expected {
                "usize" | "u64" | "u32" | "u8" => "a non-negative integer",
                "f64" | "f32" => "a number",
                "a boolean" => "true or false",
                other => other,
            };
            return format!("expected {expected}, found {got}");
        }
    }
    first.to_string()
}

pub fn describe(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// A value as written in TOML, shortened for messages.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(37).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_has_every_config_key_but_scale() {
        let s = runspec_shape();
        assert_eq!(s.keys(), vec!["dataset", "model", "stage1", "stage2", "seed", "cpu", "data_parallel"]);
        assert_eq!(s.get("cpu").unwrap().keys(), vec!["isa", "threads"]);
        assert!(s.get("stage1").unwrap().keys().contains(&"drw_epoch"));
        assert!(s.get("dataset").unwrap().keys().contains(&"path_remap"));
        let sampler = s.get("stage2").unwrap().get("sampler").unwrap();
        assert_eq!(sampler.keys(), vec!["kind", "beta", "a", "b"], "every sampler's settings, each once");
    }

    #[test]
    fn enum_values_are_listed() {
        let err = check_leaf(&["stage2".into(), "sampler".into(), "kind".into()], &Value::String("cbenn".into()))
            .unwrap_err();
        assert_eq!(err, "expected one of ib, cb, en, cben, class_aware, reversed");
        let err = check_leaf(&["stage1".into(), "epochs".into()], &Value::String("ten".into())).unwrap_err();
        assert_eq!(err, "expected a non-negative integer, found string \"ten\"");
        assert!(check_leaf(&["dataset".into(), "imbalance".into()], &Value::Integer(100)).is_ok());
    }
}

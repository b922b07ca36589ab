//! What the command line changes in a manifest: `--seeds N` (seeds per cell) and
//! `--set KEY=VALUE` (any setting of every cell, merged after every fragment and after
//! `[manifest.smoke]`, so it wins at both scales).
//!
//! `KEY` is a setting's dotted path as `explain` prints it (`stage1.lr`, `stage1.loss.noise_mul`,
//! `dataset.imbalance`); `VALUE` is a TOML value (`0.2`, `[100, 150]`, `{ kind = "ce" }`,
//! `true`), and a bare word is a string (`stage2.sampler.kind=cb`). Both are checked as a
//! manifest's settings are, the error naming the flag. An override changes what a cell has:
//! a `stage2` setting only a cell with a stage 2, a loss or re-balancing setting only the cells
//! whose method has it (unless it names the method); one that changes no cell is an error.
//! Keys are content hashes of the resolved settings, so an override equal to a manifest's
//! value reuses its runs.
use super::schema::{check_fragment, runspec_shape};
use super::sweep::nested;
use super::{merge, Manifest, Seeds};
use anyhow::{bail, Context, Result};
use toml::{Table, Value};

/// One `--set KEY=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub path: Vec<String>,
    pub value: Value,
    /// As given on the command line, for reports and the commands they print.
    pub text: String,
}

impl std::str::FromStr for Setting {
    type Err = String;

    /// Parses and checks `KEY=VALUE` against the settings schema (clap names the flag).
    fn from_str(arg: &str) -> Result<Setting, String> {
        let Some((key, raw)) = arg.split_once('=') else {
            return Err("expected KEY=VALUE, e.g. stage1.lr=0.2".into());
        };
        let path: Vec<String> = key.trim().split('.').map(|s| s.trim().to_string()).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "`{key}` is not a setting path; write it as `explain` prints it, e.g. stage1.loss.noise_mul"
            ));
        }
        let value = parse_value(raw.trim())?;
        let mut problems = Vec::new();
        check_fragment(&nested(&path, value.clone()), &[], &[], &runspec_shape(), &[], &mut problems);
        if !problems.is_empty() {
            return Err(problems.into_iter().map(|(_, msg)| msg).collect::<Vec<_>>().join("; "));
        }
        Ok(Setting { path, value, text: format!("{}={}", key.trim(), raw.trim()) })
    }
}

/// A TOML value, or a bare word as a string.
fn parse_value(raw: &str) -> Result<Value, String> {
    if let Ok(mut t) = toml::from_str::<Table>(&format!("v = {raw}")) {
        if let Some(v) = t.remove("v") {
            return Ok(v);
        }
    }
    let bare = !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:".contains(c));
    if bare {
        Ok(Value::String(raw.to_string()))
    } else {
        Err(format!("`{raw}` is not a value: write a number, true/false, a word, a \"quoted string\", a list [a, b] or a table {{ k = v }}"))
    }
}

/// The command line's changes to every manifest it names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `--seeds N`: seeds per cell at both scales (the first N).
    pub seeds: Option<usize>,
    /// `--set KEY=VALUE`, in order (a later one wins).
    pub set: Vec<Setting>,
}

impl Overrides {
    /// Only `--seeds n`.
    pub fn seeds(n: usize) -> Overrides {
        Overrides { seeds: Some(n), set: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.seeds.is_none() && self.set.is_empty()
    }

    /// The flags as typed: `--seeds 2 --set 'stage1.lr=0.2'` (values single-quoted for a shell).
    pub fn flags(&self) -> Vec<String> {
        let mut out: Vec<String> = self.seeds.iter().map(|n| format!("--seeds {n}")).collect();
        out.extend(self.set.iter().map(|s| format!("--set {}", shell_word(&s.text))));
        out
    }

    /// Applies the overrides to a loaded manifest; each `--set` must change some cell of it.
    pub fn apply(&self, m: &mut Manifest) -> Result<()> {
        if let Some(n) = self.seeds {
            m.override_seed_count(n)?;
        }
        // Which settings the cells have is asked of the manifest as written.
        let written = if self.set.is_empty() { Vec::new() } else { cell_settings(m)? };
        let as_written: Vec<bool> = self.set.iter().map(|s| some_cell_has(&written, &s.path)).collect();
        for s in &self.set {
            if s.path == ["seed"] {
                if let Seeds::List(list) = &m.seeds {
                    bail!(
                        "--set {}: {} lists its seeds (`seeds = {list:?}` in [manifest]), which set every run's seed; pass --seeds N to run the first N of them",
                        s.text,
                        m.path.display()
                    );
                }
            }
            merge::merge(&mut m.overrides, &nested(&s.path, s.value.clone()));
        }
        m.flags = self.flags();
        for (s, has) in self.set.iter().zip(as_written) {
            if !has {
                bail!(
                    "--set {}: no cell of {} has `{}` (a stage-2 setting needs a cell with a stage 2; a loss or re-balancing setting a cell whose method has it); leave it out for this manifest",
                    s.text,
                    m.path.display(),
                    s.path.join(".")
                );
            }
        }
        Ok(())
    }
}

/// The settings of every trained cell of the manifest (full scale), spelled out: one run per
/// cell, as the runs of a cell differ only in their seed.
fn cell_settings(m: &Manifest) -> Result<Vec<Value>> {
    let known = &mut |_: &crate::training::spec::RunSpec| Ok(crate::data::DataIdentity::Known(String::new()));
    let cells = super::expand::expand_with(m, crate::training::spec::Scale::Full, known)?;
    cells.iter().filter_map(|c| c.runs.first()).map(|r| spelled_out(&r.spec)).collect()
}

/// A spec's settings with every table present: `data_parallel` is left out of a
/// single-process spec's written form (and key), yet every cell has it.
fn spelled_out(spec: &crate::training::spec::RunSpec) -> Result<Value> {
    let mut v = Value::try_from(spec).context("cannot spell out a cell's settings")?;
    if let Some(table) = v.as_table_mut() {
        if !table.contains_key("data_parallel") {
            table.insert("data_parallel".into(), Value::try_from(spec.data_parallel)?);
        }
    }
    Ok(v)
}

/// Whether some cell has the setting `path` (which an override of it then changes). An unset
/// optional setting (`cpu.isa`) is not spelled out, so a key of a plain settings table counts
/// when its table is there (clap already checked the key against the schema); a method's table
/// (tagged by `kind` or `method`) has only its own variant's keys.
fn some_cell_has(cells: &[Value], path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else { return false };
    cells.iter().any(|spelled| {
        let Some(table) = parent.iter().try_fold(spelled, |v, k| v.get(k)) else { return false };
        let is_method = table.get("kind").is_some() || table.get("method").is_some();
        table.get(last).is_some() || (!is_method && table.is_table())
    })
}

/// A single-quoted shell word unless the text needs no quoting.
fn shell_word(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:=,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> Result<Setting, String> {
        s.parse()
    }

    #[test]
    fn values_parse_as_toml_and_bare_words_as_strings() {
        assert_eq!(set("stage1.lr=0.2").unwrap().value, Value::Float(0.2));
        assert_eq!(set("stage1.epochs=5").unwrap().value, Value::Integer(5));
        assert_eq!(set("stage2.sampler.kind=cb").unwrap().value, Value::String("cb".into()));
        assert_eq!(set("stage1.loss.cloud=\"cos\"").unwrap().value, Value::String("cos".into()));
        assert_eq!(
            set("stage1.milestones=[10, 20]").unwrap().value,
            Value::Array(vec![Value::Integer(10), Value::Integer(20)])
        );
        assert_eq!(set("stage1.mixup=true").unwrap().text, "stage1.mixup=true");
    }

    #[test]
    fn bad_settings_are_named_with_the_fix() {
        assert_eq!(set("stage1.lr").unwrap_err(), "expected KEY=VALUE, e.g. stage1.lr=0.2");
        let e = set("stage1.epoch=5").unwrap_err();
        assert!(e.starts_with("unknown key `epoch` in [stage1]; did you mean `epochs`?"), "{e}");
        let e = set("stage1.epochs=ten").unwrap_err();
        assert_eq!(
            e,
            "invalid value \"ten\" for `epochs` in [stage1]; expected a non-negative integer, found string \"ten\""
        );
        let e = set("stage2.sampler.kind=cbenn").unwrap_err();
        assert!(e.ends_with("expected one of ib, cb, en, cben, class_aware, reversed"), "{e}");
        assert!(set("scale=smoke").unwrap_err().contains("choose it with `--scale smoke|full`"));
        assert!(set("stage1..lr=1").unwrap_err().contains("is not a setting path"));
        assert!(set("stage1.lr=[1,").unwrap_err().contains("is not a value"));
    }

    #[test]
    fn an_unset_optional_setting_of_a_plain_table_is_settable() {
        let cells =
            vec![toml::from_str::<Value>("[cpu]\n[stage1]\nepochs = 2\n[stage1.loss]\nkind = \"ce\"\n").unwrap()];
        let has = |p: &str| some_cell_has(&cells, &p.split('.').map(String::from).collect::<Vec<_>>());
        assert!(has("cpu.isa"), "cpu.isa is unset (None), so not spelled out, but settable");
        assert!(has("stage1.epochs"));
        assert!(!has("stage1.loss.noise_mul"), "CE has no noise_mul");
        assert!(!has("stage2.epochs"), "no cell has a stage 2");
    }

    #[test]
    fn flags_are_shell_words() {
        let o = Overrides {
            seeds: Some(2),
            set: vec![set("stage1.lr=0.2").unwrap(), set("stage1.milestones=[1, 2]").unwrap()],
        };
        assert_eq!(o.flags(), vec!["--seeds 2", "--set stage1.lr=0.2", "--set 'stage1.milestones=[1, 2]'"]);
    }
}

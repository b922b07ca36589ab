//! `gcl-repro compare A B`: two sets of runs side by side, cell by cell.
//!
//! Each side is a run cache, an archive of `cache export`, a report directory or a manifest
//! (its runs in the cache); [`inputs`] reads any of them into [`Run`]s without changing anything.
//!
//! **Settings.** A run's settings are its stored resolved settings (`spec.toml`) flattened to
//! dotted paths as `explain` prints them (`stage1.loss.kind`, `cpu.threads`, ...), plus:
//! - `engine`: the engine version in its key material (`ENGINE_VERSION` when it was trained);
//! - `stage`: 1 or 2 (a stage-2 run's settings also hold those of the stage 1 it builds on);
//! - `device`: `cpu` or `cuda` as recorded in its provenance (not in the key: a result trained
//!   on a GPU and one trained on a CPU share a key, but they are not the same measurement).
//!
//! `model.init_from` (where a starting-weights file lay) is left out, as the key leaves it out:
//! the file enters by its content, `model.init_sha256`. A report directory's `runs.csv` records
//! no resolved settings: its runs have `manifest`, `cell`, `stage`, `scale` and `device`, so it
//! compares only with another report directory.
//!
//! **Cells.** Runs are grouped into cells by all their settings except `seed` and every path
//! named by `--ignore` (a name matches the path itself and every path below it: `cpu` covers
//! `cpu.isa` and `cpu.threads`, `stage2.sampler` covers `stage2.sampler.kind`, ...). A cell is
//! labelled by the settings that tell it apart from the other cells.
//!
//! **Per cell.** The final-epoch top-1 of each side (n, mean, sample std, and the mean
//! best-epoch top-1), the difference of means B - A, Welch's t-test of it (t, Welch-Satterthwaite
//! degrees of freedom, two-sided p; none with fewer than two runs on a side), the set-aside
//! settings that differ between the sides (`engine: 5 -> 6`), and whether the final weights of
//! the runs of equal seed are byte-identical (`scripts/equivalence/run.sh` checks a refactor with it).
//! A cell with runs on one side only is shown with how the nearest cell of the other side
//! differs, which names what `--ignore` would need to match them.
pub mod inputs;
mod output;

pub use inputs::{load, ManifestScope, Side, SourceKind};
pub use output::{csv_text, markdown};

use crate::cache::store::sha256_file;
use crate::stats::{mean_std, welch};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Settings as `dotted.path -> value`, values as `explain` prints them (strings unquoted).
pub type Settings = BTreeMap<String, String>;

/// One stored run as compared.
#[derive(Clone, Debug)]
pub struct Run {
    pub key: String,
    pub seed: u64,
    /// Every setting, `seed` included (module docs).
    pub settings: Settings,
    pub final_top1: f64,
    /// The best-epoch top-1, when the source records it.
    pub best_top1: Option<f64>,
    pub weights: Weights,
}

/// Where a run's final weights (`model.safetensors`) can be fingerprinted.
#[derive(Clone, Debug)]
pub enum Weights {
    /// Not stored (a report directory, an export without weights).
    Absent,
    /// A file, hashed only when a comparison needs it.
    File(PathBuf),
    /// Already hashed (read from an archive as it streamed past).
    Sha256(String),
}

impl Weights {
    fn sha256(&self) -> Result<Option<String>> {
        match self {
            Weights::Absent => Ok(None),
            Weights::File(path) => Ok(Some(sha256_file(path)?)),
            Weights::Sha256(digest) => Ok(Some(digest.clone())),
        }
    }
}

/// The final top-1 of one side of a cell.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub n: usize,
    /// NaN when `n == 0`.
    pub mean: f64,
    /// Sample standard deviation; NaN when `n < 2`.
    pub std: f64,
    /// Mean best-epoch top-1, when every run records it.
    pub best: Option<f64>,
}

impl Summary {
    fn of(runs: &[&Run]) -> Summary {
        if runs.is_empty() {
            return Summary { n: 0, mean: f64::NAN, std: f64::NAN, best: None };
        }
        let finals: Vec<f64> = runs.iter().map(|r| r.final_top1).collect();
        let (mean, std) = mean_std(&finals);
        let best: Option<Vec<f64>> = runs.iter().map(|r| r.best_top1).collect();
        Summary {
            n: runs.len(),
            mean,
            std: if runs.len() < 2 { f64::NAN } else { std },
            best: best.map(|b| mean_std(&b).0),
        }
    }
}

/// Which sides have runs of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Both,
    OnlyA,
    OnlyB,
}

impl Presence {
    pub fn label(self) -> &'static str {
        match self {
            Presence::Both => "both",
            Presence::OnlyA => "A only",
            Presence::OnlyB => "B only",
        }
    }
}

/// One cell compared.
#[derive(Clone, Debug)]
pub struct CellComparison {
    /// The settings that tell this cell apart from the others, `path=value, ...`.
    pub label: String,
    pub presence: Presence,
    pub a: Summary,
    pub b: Summary,
    /// Mean of B - mean of A (NaN for a cell on one side only).
    pub difference: f64,
    /// Welch's t of B - A, its degrees of freedom and two-sided p; NaN where untested.
    pub t: f64,
    pub df: f64,
    pub p: f64,
    /// `identical`, `differ (k of n)` or `n/a` (module docs).
    pub weights: String,
    /// Matched cells: the set-aside settings that differ, `path: A -> B`. Cells on one side
    /// only: how the nearest cell of the other side differs.
    pub differs: Vec<String>,
}

/// Everything `compare` prints.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Each side as `path (kind, N runs)`.
    pub a: String,
    pub b: String,
    pub ignore: Vec<String>,
    /// Matched cells first, then those of A only, then those of B only; by label within each.
    pub cells: Vec<CellComparison>,
}

/// At most this many differences are named for a cell on one side only.
const NEAREST_SHOWN: usize = 5;

/// Compare two sides cell by cell, grouping their runs by all settings except `seed` and the
/// `ignore`d paths (module docs).
pub fn compare(a: &Side, b: &Side, ignore: &[String]) -> Result<Comparison> {
    if a.kind.names_cells() != b.kind.names_cells() {
        let (report, other) = if a.kind.names_cells() { (a, b) } else { (b, a) };
        bail!(
            "cannot compare the report directory {} with the {} {}: a report's runs.csv names cells (manifest, row.column), not resolved settings, so it compares only with another report directory",
            report.path.display(),
            other.kind.label(),
            other.path.display()
        );
    }
    check_ignore(ignore, &[a, b])?;
    let mut cells: BTreeMap<Settings, [Vec<&Run>; 2]> = BTreeMap::new();
    for (side, runs) in [&a.runs, &b.runs].into_iter().enumerate() {
        for run in runs {
            cells.entry(split(&run.settings, ignore).0).or_default()[side].push(run);
        }
    }
    let labels = labels(cells.keys());
    let on_side =
        |side: usize| cells.iter().filter(|(_, runs)| !runs[side].is_empty()).map(|(s, _)| s).collect::<Vec<_>>();
    let (with_a, with_b) = (on_side(0), on_side(1));
    let mut out = Vec::new();
    for ((settings, [ra, rb]), label) in cells.iter().zip(labels) {
        out.push(match (ra.is_empty(), rb.is_empty()) {
            (false, false) => matched(label, ra, rb, ignore)?,
            (false, true) => one_sided(label, Presence::OnlyA, ra, nearest(settings, &with_b, false)),
            _ => one_sided(label, Presence::OnlyB, rb, nearest(settings, &with_a, true)),
        });
    }
    let rank = |p: Presence| [Presence::Both, Presence::OnlyA, Presence::OnlyB].iter().position(|x| *x == p);
    out.sort_by(|x, y| rank(x.presence).cmp(&rank(y.presence)).then_with(|| x.label.cmp(&y.label)));
    Ok(Comparison { a: a.describe(), b: b.describe(), ignore: ignore.to_vec(), cells: out })
}

/// Whether `path` is set aside: `seed` always, and every path named by or under an ignored name.
fn ignored(path: &str, ignore: &[String]) -> bool {
    path == "seed" || ignore.iter().any(|name| covers(name, path))
}

/// `cpu` covers `cpu` and `cpu.threads`, not `cpux`.
fn covers(name: &str, path: &str) -> bool {
    path.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A run's settings split into (what places it in a cell, what is set aside).
fn split(settings: &Settings, ignore: &[String]) -> (Settings, Settings) {
    settings.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(k, _)| !ignored(k, ignore))
}

/// Every `--ignore` name must name a setting of some run, so a typo is not silently a no-op.
fn check_ignore(ignore: &[String], sides: &[&Side]) -> Result<()> {
    let paths: BTreeSet<&str> =
        sides.iter().flat_map(|s| &s.runs).flat_map(|r| r.settings.keys()).map(String::as_str).collect();
    for name in ignore {
        if name == "seed" {
            bail!("--ignore seed: the seed is always set aside (it tells the runs of one cell apart)");
        }
        if !paths.iter().any(|p| covers(name, p)) {
            let names: BTreeSet<&str> = paths.iter().flat_map(|&p| [p.split('.').next().unwrap_or(p), p]).collect();
            let names: Vec<&str> = names.into_iter().collect();
            let hint = crate::manifest::schema::did_you_mean(name, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            bail!("--ignore {name}: no run of either side has a setting `{name}` or below it{hint} (see `gcl-repro explain` for the setting paths)");
        }
    }
    Ok(())
}

/// The label of each cell (same order): its values of the paths whose value differs between
/// cells that have them, so that settings common to every cell do not crowd the table.
fn labels<'a>(cells: impl Iterator<Item = &'a Settings> + Clone) -> Vec<String> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for settings in cells.clone() {
        for (k, v) in settings {
            values.entry(k.as_str()).or_default().insert(v.as_str());
        }
    }
    cells
        .map(|settings| {
            let parts: Vec<String> = settings
                .iter()
                .filter(|(k, _)| values[k.as_str()].len() > 1)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if parts.is_empty() {
                "(every run)".to_string()
            } else {
                parts.join(", ")
            }
        })
        .collect()
}

/// A cell with runs on both sides.
fn matched(label: String, a: &[&Run], b: &[&Run], ignore: &[String]) -> Result<CellComparison> {
    let (sa, sb) = (Summary::of(a), Summary::of(b));
    let finals = |runs: &[&Run]| runs.iter().map(|r| r.final_top1).collect::<Vec<f64>>();
    // Welch of (B, A), so that t has the sign of the difference B - A.
    let (t, df, p) = welch(&finals(b), &finals(a));
    let set_aside = |runs: &[&Run]| joined_values(runs.iter().map(|r| split(&r.settings, ignore).1));
    Ok(CellComparison {
        label,
        presence: Presence::Both,
        difference: sb.mean - sa.mean,
        a: sa,
        b: sb,
        t,
        df,
        p,
        weights: weights_verdict(a, b)?,
        differs: differences(&set_aside(a), &set_aside(b)),
    })
}

/// A cell with runs on one side only; `nearest` says how the other side's nearest cell differs.
fn one_sided(label: String, presence: Presence, runs: &[&Run], nearest: Vec<String>) -> CellComparison {
    let summary = Summary::of(runs);
    let (a, b) = if presence == Presence::OnlyA { (summary, Summary::of(&[])) } else { (Summary::of(&[]), summary) };
    let other = if presence == Presence::OnlyA { "B" } else { "A" };
    let differs = match nearest.len() {
        0 => vec![format!("{other} has no runs")],
        n if n > NEAREST_SHOWN => {
            let mut shown: Vec<String> = nearest.into_iter().take(NEAREST_SHOWN).collect();
            shown.push(format!("{} more", n - NEAREST_SHOWN));
            shown
        }
        _ => nearest,
    };
    let differs = differs
        .into_iter()
        .enumerate()
        .map(|(i, d)| if i == 0 { format!("nearest in {other}: {d}") } else { d })
        .collect();
    CellComparison {
        label,
        presence,
        a,
        b,
        difference: f64::NAN,
        t: f64::NAN,
        df: f64::NAN,
        p: f64::NAN,
        weights: "n/a".into(),
        differs,
    }
}

/// How the closest of `others` differs from `own` (fewest differing paths), oriented A -> B:
/// `own_is_b` says on which side `own` is. Empty when there is no other cell.
fn nearest(own: &Settings, others: &[&Settings], own_is_b: bool) -> Vec<String> {
    let diffs = |other: &Settings| if own_is_b { differences(other, own) } else { differences(own, other) };
    others.iter().map(|o| diffs(o)).min_by_key(Vec::len).unwrap_or_default()
}

/// Each path's values over several runs, joined with `/` (`1/2` for two seeds).
fn joined_values(settings: impl Iterator<Item = Settings>) -> Settings {
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in settings {
        for (k, v) in s {
            values.entry(k).or_default().insert(v);
        }
    }
    values.into_iter().map(|(k, v)| (k, v.into_iter().collect::<Vec<_>>().join("/"))).collect()
}

/// `path: a -> b` for every path whose value differs (`(unset)` where a side lacks it).
fn differences(a: &Settings, b: &Settings) -> Vec<String> {
    let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let value = |s: &Settings, p: &String| s.get(p).cloned().unwrap_or_else(|| "(unset)".into());
    paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .map(|p| format!("{p}: {} -> {}", value(a, p), value(b, p)))
        .collect()
}

/// Compare the final weights of the runs of equal seed that both sides hold once each.
fn weights_verdict(a: &[&Run], b: &[&Run]) -> Result<String> {
    // The run of `seed`, if there is exactly one (a set-aside setting can make several).
    fn once<'a>(runs: &[&'a Run], seed: u64) -> Option<&'a Run> {
        let mut same = runs.iter().filter(|r| r.seed == seed);
        match (same.next(), same.next()) {
            (Some(r), None) => Some(*r),
            _ => None,
        }
    }
    let (mut compared, mut differ) = (0, 0);
    for ra in a {
        let (Some(ra), Some(rb)) = (once(a, ra.seed), once(b, ra.seed)) else { continue };
        if let (Some(wa), Some(wb)) = (ra.weights.sha256()?, rb.weights.sha256()?) {
            compared += 1;
            differ += usize::from(wa != wb);
        }
    }
    let runs = a.len().max(b.len());
    Ok(match (compared, differ) {
        (0, _) => "n/a".into(),
        (c, 0) if c == runs => "identical".into(),
        (c, 0) => format!("identical ({c} of {runs} runs)"),
        (c, d) => format!("differ ({d} of {c})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, top1: f64, pairs: &[(&str, &str)], weights: Option<&str>) -> Run {
        let mut settings: Settings = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        settings.insert("seed".into(), seed.to_string());
        Run {
            key: format!("k{seed}{top1}"),
            seed,
            settings,
            final_top1: top1,
            best_top1: Some(top1 + 1.0),
            weights: weights.map_or(Weights::Absent, |w| Weights::Sha256(w.into())),
        }
    }

    fn side(runs: Vec<Run>) -> Side {
        Side { path: "x".into(), kind: SourceKind::Cache, runs, notes: vec![] }
    }

    #[test]
    fn an_ignored_name_covers_its_path_and_everything_below_it() {
        let ignore = vec!["cpu".to_string(), "stage2.sampler".to_string()];
        for path in ["seed", "cpu", "cpu.threads", "stage2.sampler.kind"] {
            assert!(ignored(path, &ignore), "{path}");
        }
        for path in ["cpux", "stage2.sampler_kind", "stage2.loss.kind", "engine"] {
            assert!(!ignored(path, &ignore), "{path}");
        }
    }

    #[test]
    fn cells_match_across_an_ignored_setting_and_name_its_difference() {
        let a = side(vec![
            run(1, 80.0, &[("engine", "5"), ("stage1.loss.kind", "ce")], Some("w1")),
            run(2, 82.0, &[("engine", "5"), ("stage1.loss.kind", "ce")], Some("w2")),
            run(1, 70.0, &[("engine", "5"), ("stage1.loss.kind", "gcl")], None),
        ]);
        let b = side(vec![
            run(1, 81.0, &[("engine", "6"), ("stage1.loss.kind", "ce")], Some("w1")),
            run(2, 85.0, &[("engine", "6"), ("stage1.loss.kind", "ce")], Some("other")),
        ]);
        // Without --ignore nothing matches, and the nearest cell names the engine.
        let cmp = compare(&a, &b, &[]).unwrap();
        assert!(cmp.cells.iter().all(|c| c.presence != Presence::Both));
        let ce_a = cmp.cells.iter().find(|c| c.presence == Presence::OnlyA && c.label.contains("kind=ce")).unwrap();
        assert_eq!(ce_a.differs, vec!["nearest in B: engine: 5 -> 6"]);

        let cmp = compare(&a, &b, &["engine".to_string()]).unwrap();
        let ce = &cmp.cells[0];
        assert_eq!((ce.presence, ce.label.as_str()), (Presence::Both, "stage1.loss.kind=ce"));
        assert_eq!((ce.a.n, ce.a.mean, ce.b.mean, ce.difference), (2, 81.0, 83.0, 2.0));
        assert_eq!(ce.a.best, Some(82.0));
        // t = 2 / sqrt(2/2 + 8/2) with df = 5^2 / (1 + 16) = 1.4706.
        assert!((ce.t - 2.0 / 5f64.sqrt()).abs() < 1e-12 && (ce.df - 25.0 / 17.0).abs() < 1e-12, "{ce:?}");
        assert!(ce.p > 0.3 && ce.p < 1.0);
        assert_eq!(ce.differs, vec!["engine: 5 -> 6"]);
        assert_eq!(ce.weights, "differ (1 of 2)");
        let gcl = &cmp.cells[1];
        assert_eq!((gcl.presence, gcl.a.n, gcl.b.n), (Presence::OnlyA, 1, 0));
        assert!(gcl.a.std.is_nan() && gcl.p.is_nan());
        assert_eq!(gcl.differs, vec!["nearest in B: stage1.loss.kind: gcl -> ce"]);
    }

    #[test]
    fn identical_sides_have_no_difference_and_identical_weights() {
        let runs = vec![run(1, 80.0, &[("stage", "1")], Some("w1")), run(2, 84.0, &[("stage", "1")], Some("w2"))];
        let cmp = compare(&side(runs.clone()), &side(runs), &[]).unwrap();
        assert_eq!(cmp.cells.len(), 1);
        let c = &cmp.cells[0];
        assert_eq!((c.label.as_str(), c.difference, c.t, c.p), ("(every run)", 0.0, 0.0, 1.0));
        assert_eq!(c.weights, "identical");
        assert!(c.differs.is_empty());
    }

    #[test]
    fn a_misspelt_ignore_name_is_refused_with_a_suggestion() {
        let s = side(vec![run(1, 80.0, &[("engine", "6"), ("cpu.threads", "1")], None)]);
        let err = compare(&s, &s, &["engnie".to_string()]).unwrap_err().to_string();
        assert!(err.contains("--ignore engnie") && err.contains("did you mean `engine`"), "{err}");
        compare(&s, &s, &["cpu".to_string()]).unwrap();
        assert!(compare(&s, &s, &["seed".to_string()]).is_err(), "seed is always set aside");
    }

    #[test]
    fn labels_name_only_what_tells_cells_apart() {
        let cell = |pairs: &[(&str, &str)]| -> Settings {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let cells = [cell(&[("a", "1"), ("b", "x")]), cell(&[("a", "1"), ("b", "y"), ("c", "z")])];
        assert_eq!(labels(cells.iter()), vec!["b=x", "b=y"]);
    }
}

//! `gcl-repro cache ls|show|verify|gc`: look after the run cache.
use super::files::{METRICS, SPEC};
use super::store::{short_key, Cache};
use crate::metrics::RunResult;
use anyhow::{bail, Result};
use std::collections::HashSet;
use std::fmt::Write;

/// One line per complete run: key, stage, dataset/method summary, headline metrics.
pub fn ls(cache: &Cache) -> Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "{:<12}  {:>5}  {:>7}  {:>7}  {:>6}  {:<10}  settings",
        "key", "stage", "top1", "best", "epochs", "device"
    )?;
    for key in cache.keys()? {
        let Some(r) = cache.result(&key)? else {
            writeln!(out, "{:<12}  (no {METRICS}: run `cache verify`)", short_key(&key))?;
            continue;
        };
        writeln!(
            out,
            "{:<12}  {:>5}  {:>7.2}  {:>7.2}  {:>6}  {:<10}  {}",
            short_key(&key),
            r.stage,
            r.final_eval.top1,
            r.best_top1,
            r.epochs.len(),
            r.provenance.device,
            settings_summary(cache, &key)
        )?;
    }
    for key in cache.partial_keys()? {
        writeln!(out, "{:<12}  partial (resumes on the next `gcl-repro run`)", short_key(&key))?;
    }
    Ok(out)
}

/// A short human summary of a run's settings from its stored spec.
fn settings_summary(cache: &Cache, key: &str) -> String {
    let Ok(text) = std::fs::read_to_string(cache.run_dir(key).join(SPEC)) else { return "?".into() };
    let Ok(spec) = toml::from_str::<crate::training::spec::RunSpec>(&text) else { return "?".into() };
    let mut s = format!(
        "{:?} gamma={} {:?} loss={} mixup={} seed={}",
        spec.dataset.name,
        spec.dataset.imbalance,
        spec.model.arch,
        spec.stage1.loss.kind(),
        spec.stage1.mixup.on,
        spec.seed
    )
    .to_lowercase();
    if let Some(s2) = &spec.stage2 {
        write!(s, " | stage2 {} sampler={}", s2.rebalance.name(), s2.sampler.kind()).unwrap();
    }
    s.to_lowercase()
}

pub fn show(cache: &Cache, prefix: &str) -> Result<String> {
    let key = cache.resolve_prefix(prefix)?;
    let dir = cache.run_dir(&key);
    // A directory under runs/ whose metrics.json was removed resolves too.
    let Some(r): Option<RunResult> = cache.result(&key)? else {
        bail!("run {key} has no {} (run `gcl-repro cache verify`)", dir.join(METRICS).display())
    };
    let mut out = String::new();
    writeln!(out, "run {key} (stage {})", r.stage)?;
    if let Some(p) = &r.parent {
        writeln!(out, "stage-1 run: {p}")?;
    }
    writeln!(out, "directory: {}", dir.display())?;
    writeln!(
        out,
        "final top-1 {:.2}, top-5 {:.2}; best top-1 {:.2} at epoch {}",
        r.final_eval.top1, r.final_eval.top5, r.best_top1, r.best_epoch
    )?;
    let g = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "many / medium / few: {} / {} / {} ({})",
        g(r.final_eval.many),
        g(r.final_eval.medium),
        g(r.final_eval.few),
        r.shot_rule
    )?;
    writeln!(out, "selection: {}", r.selection_rule)?;
    let p = &r.provenance;
    writeln!(
        out,
        "made by gcl-repro {} ({}), libtorch {}, on {} ({}), {:.0} s, finished {}",
        p.crate_version, p.git_commit, p.libtorch_version, p.device, p.device_name, p.wall_seconds, p.finished
    )?;
    writeln!(out, "\nresolved settings ({SPEC}):")?;
    out.push_str(&std::fs::read_to_string(dir.join(SPEC)).unwrap_or_default());
    Ok(out)
}

/// Check every complete run against its recorded hashes. Returns the report and whether all is well.
pub fn verify(cache: &Cache) -> Result<(String, bool)> {
    let mut out = String::new();
    let mut bad = 0;
    let keys = cache.keys()?;
    for key in &keys {
        let problems = cache.verify_run(key)?;
        if !problems.is_empty() {
            bad += 1;
        }
        for p in problems {
            writeln!(out, "corrupt: {p}")?;
        }
    }
    writeln!(
        out,
        "{} run(s) checked, {} with problems{}",
        keys.len(),
        bad,
        if bad > 0 { " (remove them with `gcl-repro run --force --only KEY` to re-train)" } else { "" }
    )?;
    Ok((out, bad == 0))
}

/// Remove complete and partial runs that no given key refers to.
pub fn gc(cache: &Cache, keep: &HashSet<String>, dry_run: bool) -> Result<String> {
    let mut out = String::new();
    let mut n = 0;
    let all: Vec<String> = cache.keys()?.into_iter().chain(cache.partial_keys()?).collect();
    for key in all {
        if keep.contains(&key) {
            continue;
        }
        n += 1;
        if dry_run {
            writeln!(out, "would remove {key}")?;
        } else {
            cache.remove(&key)?;
            writeln!(out, "removed {key}")?;
        }
    }
    writeln!(
        out,
        "{n} run(s) {}; {} kept",
        if dry_run { "would be removed (dry run)" } else { "removed" },
        keep.len()
    )?;
    Ok(out)
}

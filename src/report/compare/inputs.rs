//! The two sides of `compare`: what a path is, and its runs. Nothing is written: a cache is
//! only read, an archive is read in place (not imported), a manifest's runs are looked up in the
//! cache by key.
use super::{Run, Settings, Weights};
use crate::cache::files::{FINAL_MODEL, KEY_MATERIAL, METRICS, SPEC};
use crate::cache::store::{Cache, RunState};
use crate::pipeline::RunGraph;
use crate::training::spec::Scale;
use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory with the cache layout (`runs/<key>/...`).
    Cache,
    /// A file written by `cache export`.
    Archive,
    /// A directory written by `report` (its `runs.csv`).
    Report,
    /// A manifest: the runs of its cells that the cache holds.
    Manifest,
}

impl SourceKind {
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Cache => "cache",
            SourceKind::Archive => "export archive",
            SourceKind::Report => "report directory",
            SourceKind::Manifest => "manifest",
        }
    }

    /// A report's runs are known by their cells, not by their resolved settings.
    pub fn names_cells(self) -> bool {
        self == SourceKind::Report
    }
}

/// One side of a comparison.
#[derive(Clone, Debug)]
pub struct Side {
    pub path: PathBuf,
    pub kind: SourceKind,
    pub runs: Vec<Run>,
    /// What the reader wants the user to know (runs of a manifest not in the cache, ...).
    pub notes: Vec<String>,
}

impl Side {
    /// `path (kind, N runs)`.
    pub fn describe(&self) -> String {
        format!("{} ({}, {} runs)", self.path.display(), self.kind.label(), self.runs.len())
    }
}

/// Where the runs of a manifest side are looked up.
pub struct ManifestScope {
    pub scale: Scale,
    pub cache_dir: PathBuf,
    pub data_root: PathBuf,
}

/// Read one side, whatever it is.
pub fn load(path: &Path, scope: &ManifestScope) -> Result<Side> {
    let kind = detect(path)?;
    let mut notes = Vec::new();
    let runs = match kind {
        SourceKind::Cache => cache_runs(&Cache { root: path.to_path_buf() })?,
        SourceKind::Archive => archive_runs(path)?,
        SourceKind::Report => report_runs(path)?,
        SourceKind::Manifest => manifest_runs(path, scope, &mut notes)?,
    };
    Ok(Side { path: path.to_path_buf(), kind, runs, notes })
}

const KINDS: &str = "a run cache (a directory with runs/), an archive of `gcl-repro cache export`, a report directory (with runs.csv) or a manifest (.toml)";

fn detect(path: &Path) -> Result<SourceKind> {
    if path.is_dir() {
        if path.join("runs").is_dir() {
            return Ok(SourceKind::Cache);
        }
        if path.join("runs.csv").is_file() {
            return Ok(SourceKind::Report);
        }
        bail!("{}: this directory is not {KINDS}", path.display());
    }
    if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    }
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok(SourceKind::Manifest);
    }
    // An export is a gzip stream: check its magic number before reading it as one.
    let mut magic = [0u8; 2];
    let gzip = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && magic == [0x1f, 0x8b];
    if !gzip {
        bail!("{}: this file is not {KINDS}", path.display());
    }
    Ok(SourceKind::Archive)
}

fn cache_runs(cache: &Cache) -> Result<Vec<Run>> {
    let keys = cache.keys().with_context(|| format!("cannot list the runs of {}", cache.root.display()))?;
    keys.iter().map(|key| cache_run(cache, key)).collect()
}

/// A finished run of a cache, from its directory.
fn cache_run(cache: &Cache, key: &str) -> Result<Run> {
    let dir = cache.run_dir(key);
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| {
            format!("{}: cannot read it (not a finished run? see `gcl-repro cache verify`)", path.display())
        })
    };
    let key_material = read(KEY_MATERIAL).ok();
    let weights = if dir.join(FINAL_MODEL).is_file() { Weights::File(dir.join(FINAL_MODEL)) } else { Weights::Absent };
    stored_run(key, &dir.display().to_string(), &read(METRICS)?, &read(SPEC)?, key_material.as_deref(), weights)
}

fn archive_runs(path: &Path) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for archived in crate::cache::transfer::read_runs(path)? {
        let place = format!("{}:runs/{}", path.display(), archived.key);
        let record = |name: &str| archived.records.get(name).map(String::as_str);
        let missing = |name: &str| anyhow!("{place}/{name}: not in the archive");
        let weights = archived.weights_sha256.clone().map_or(Weights::Absent, Weights::Sha256);
        let metrics = record(METRICS).ok_or_else(|| missing(METRICS))?;
        let spec = record(SPEC).ok_or_else(|| missing(SPEC))?;
        runs.push(stored_run(&archived.key, &place, metrics, spec, record(KEY_MATERIAL), weights)?);
    }
    Ok(runs)
}

/// The cached runs of a manifest's run graph (both stages), noting those that are not cached.
fn manifest_runs(path: &Path, scope: &ManifestScope, notes: &mut Vec<String>) -> Result<Vec<Run>> {
    let graph =
        RunGraph::build(&[path.to_path_buf()], scope.scale, &crate::manifest::Overrides::default(), &scope.data_root)?;
    // Read as it is: `Cache::open` would create the directories of a cache that is not there.
    let cache = Cache { root: scope.cache_dir.clone() };
    let cached: Vec<&str> =
        graph.nodes.iter().filter(|n| cache.state(&n.key) == RunState::Cached).map(|n| n.key.as_str()).collect();
    let scale = format!("{:?}", scope.scale).to_lowercase();
    if cached.len() < graph.nodes.len() {
        notes.push(format!(
            "{}: {} of its {} run(s) at {scale} scale are not in the cache {}",
            path.display(),
            graph.nodes.len() - cached.len(),
            graph.nodes.len(),
            cache.root.display()
        ));
    }
    if let Some(u) = graph.unavailable.first() {
        notes.push(format!(
            "{}: {} run(s) have no key without their data ({}: {}); set --data-root",
            path.display(),
            graph.unavailable.len(),
            u.label,
            u.reason
        ));
    }
    cached.into_iter().map(|key| cache_run(&cache, key)).collect()
}

/// A run from its record files; `place` names where they are, for messages.
fn stored_run(
    key: &str,
    place: &str,
    metrics: &str,
    spec: &str,
    key_material: Option<&str>,
    weights: Weights,
) -> Result<Run> {
    let unreadable = |name: &str, why: String| anyhow!("{place}/{name}: {why}");
    // Read as plain values rather than as this build's types, so that runs of older engines
    // (other settings, other result fields) can be compared too.
    let m: Value =
        serde_json::from_str(metrics).map_err(|e| unreadable(METRICS, format!("not a readable result ({e})")))?;
    let final_top1 =
        m["final_eval"]["top1"].as_f64().ok_or_else(|| unreadable(METRICS, "has no final_eval.top1".into()))?;
    let stage = m["stage"].as_u64().ok_or_else(|| unreadable(METRICS, "has no stage".into()))?;
    let spec: toml::Value =
        toml::from_str(spec).map_err(|e| unreadable(SPEC, format!("not readable settings ({e})")))?;
    let mut settings = flat_settings(&serde_json::to_value(spec)?);
    let seed =
        settings.get("seed").and_then(|s| s.parse().ok()).ok_or_else(|| unreadable(SPEC, "has no seed".into()))?;
    let engine = key_material
        .and_then(|k| serde_json::from_str::<Value>(k).ok())
        .and_then(|k| k["engine"].as_u64())
        .or(m["provenance"]["engine_version"].as_u64());
    if let Some(engine) = engine {
        settings.insert("engine".into(), engine.to_string());
    }
    settings.insert("stage".into(), stage.to_string());
    if let Some(device) = m["provenance"]["device"].as_str().filter(|d| !d.is_empty()) {
        settings.insert("device".into(), device_kind(device));
    }
    Ok(Run { key: key.to_string(), seed, settings, final_top1, best_top1: m["best_top1"].as_f64(), weights })
}

/// Resolved settings as dotted paths, without `model.init_from` (where a starting-weights file
/// lay, which the key leaves out too: the file enters by its content, `model.init_sha256`).
fn flat_settings(spec: &Value) -> Settings {
    let mut flat = Vec::new();
    crate::explain::flatten("", spec, &mut flat);
    flat.into_iter().filter(|(path, _)| path != "model.init_from").map(|(path, v)| (path, value_text(&v))).collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `cuda:1` -> `cuda`: the seeds of one cell trained on several GPUs of a host are one cell.
fn device_kind(device: &str) -> String {
    device.split(':').next().unwrap_or(device).to_string()
}

/// The columns of `runs.csv` (`report::runs_frame`) that a report side reads.
const REPORT_COLUMNS: [&str; 10] =
    ["manifest", "row", "column", "seed", "key", "stage", "final_top1", "best_top1", "smoke", "device"];

/// The runs of a report directory's `runs.csv`: known by their cell, not their settings.
fn report_runs(dir: &Path) -> Result<Vec<Run>> {
    let path = dir.join("runs.csv");
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // every column as text; parsed below
        .try_into_reader_with_file_path(Some(path.clone()))
        .and_then(|r| r.finish())
        .map_err(|e| anyhow!("{}: not a readable CSV ({e})", path.display()))?;
    let column = |name: &str| -> Result<Vec<String>> {
        let c = frame.column(name).map_err(|_| {
            anyhow!("{}: no column `{name}` (not a runs.csv written by `gcl-repro report`)", path.display())
        })?;
        Ok(c.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let columns: std::collections::HashMap<&str, Vec<String>> =
        REPORT_COLUMNS.iter().map(|name| Ok((*name, column(name)?))).collect::<Result<_>>()?;
    let mut runs = Vec::new();
    // Row i of every column at once: an index reads clearer than zipping a dozen columns.
    #[allow(clippy::needless_range_loop)]
    for i in 0..frame.height() {
        let at = |name: &str| columns[name][i].as_str();
        let bad = |name: &str| anyhow!("{}: line {}: {name} `{}` is not a number", path.display(), i + 2, at(name));
        let settings: Settings = [
            ("manifest", at("manifest").to_string()),
            ("cell", crate::manifest::cell_id(at("row"), at("column"))),
            ("stage", at("stage").to_string()),
            ("scale", if at("smoke") == "true" { "smoke" } else { "full" }.to_string()),
            ("device", device_kind(at("device"))),
            ("seed", at("seed").to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        runs.push(Run {
            key: at("key").to_string(),
            seed: at("seed").parse().map_err(|_| bad("seed"))?,
            settings,
            final_top1: at("final_top1").parse().map_err(|_| bad("final_top1"))?,
            best_top1: at("best_top1").parse().ok(),
            weights: Weights::Absent,
        });
    }
    Ok(runs)
}

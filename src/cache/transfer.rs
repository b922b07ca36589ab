//! `gcl-repro cache export` / `cache import`: finished runs as one compressed file, so results
//! travel from a GPU host or a cluster to wherever the report is built (a file-based
//! `dvc push/pull`).
//!
//! ```text
//! ARCHIVE (tar + gzip)
//!     gcl-export.json           format, engine version, and every file with its SHA-256 and size
//!     runs/<key>/<file>         a run's files as in the cache (weights and embeddings left
//!                               out with --without-weights)
//!     derived/tsne-<hash>.json  cached t-SNE maps of those runs, so the report rebuilds
//!                               without the embeddings
//! ```
//! Import unpacks into a scratch directory inside the cache, checks every file against the
//! archive's list and every run against its own `files.sha256`, refuses (importing nothing) if a
//! run differs from one already cached under the same key, and only then renames each run
//! into `runs/` (one atomic rename per run). A run imported without its weights carries a
//! `weights-omitted` marker, which `cache verify` honours.
//!
//! [`read_runs`] reads an archive's run records in place, for `compare`, without importing it.
use super::files::{FINAL_MODEL, HASHES, KEY_MATERIAL, METRICS, SPEC, WEIGHTS_OMITTED};
use super::store::{sha256_file, sha256_reader, short_key, Cache};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Name of the archive's table of contents.
pub const TOC: &str = "gcl-export.json";
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Toc {
    format: u32,
    engine_version: u32,
    created_by: String,
    without_weights: bool,
    runs: Vec<String>,
    /// Archive path -> (SHA-256, size).
    files: BTreeMap<String, (String, u64)>,
}

/// A non-empty path of plain names (no `..`, no root): what may be unpacked into the scratch.
fn is_relative_path(name: &str) -> bool {
    let mut parts = Path::new(name).components().peekable();
    parts.peek().is_some() && parts.all(|c| matches!(c, std::path::Component::Normal(_)))
}

impl Toc {
    fn check_format(&self, archive: &Path) -> Result<()> {
        if self.format != FORMAT {
            bail!(
                "{}: export format {} is not the format {FORMAT} this gcl-repro reads",
                archive.display(),
                self.format
            );
        }
        Ok(())
    }
}

fn is_weights(name: &str) -> bool {
    name.ends_with(".safetensors")
}

/// The t-SNE maps under `<cache>/derived/` computed from any of `keys`.
fn derived_of(cache: &Cache, keys: &BTreeSet<String>) -> Result<Vec<PathBuf>> {
    let dir = cache.root.join("derived");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(out) };
    for e in entries.filter_map(|e| e.ok()) {
        let path = e.path();
        let Ok(text) = fs::read_to_string(&path) else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        if v["material"]["run"].as_str().is_some_and(|k| keys.contains(k)) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the runs `keys` (complete runs of `cache`) into `out`; returns a summary line.
pub fn export(cache: &Cache, keys: &[String], out: &Path, without_weights: bool) -> Result<String> {
    let keys: BTreeSet<String> = keys.iter().cloned().collect();
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for key in &keys {
        let dir = cache.run_dir(key);
        if cache.result(key)?.is_none() {
            bail!("run {key} is not a finished run of {}", cache.root.display());
        }
        let problems: Vec<String> = cache.verify_run(key)?;
        if !problems.is_empty() {
            bail!("run {key} fails `cache verify` ({}); it is not exported", problems.join("; "));
        }
        if !without_weights && dir.join(WEIGHTS_OMITTED).is_file() {
            bail!("run {key} has no weights here (it was imported without them); export with --without-weights");
        }
        let mut names: Vec<String> =
            fs::read_dir(&dir)?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in names {
            if without_weights && is_weights(&name) || name == WEIGHTS_OMITTED {
                continue;
            }
            entries.push((format!("runs/{key}/{name}"), dir.join(&name)));
        }
    }
    for path in derived_of(cache, &keys)? {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        entries.push((format!("derived/{name}"), path));
    }
    let mut files = BTreeMap::new();
    for (name, path) in &entries {
        files.insert(name.clone(), (sha256_file(path)?, fs::metadata(path)?.len()));
    }
    let toc = Toc {
        format: FORMAT,
        engine_version: crate::ENGINE_VERSION,
        created_by: format!("gcl-repro {} ({})", env!("CARGO_PKG_VERSION"), env!("GCL_GIT_COMMIT")),
        without_weights,
        runs: keys.iter().cloned().collect(),
        files,
    };
    // Written next to the destination and renamed into place: a failed export leaves nothing.
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp =
        tempfile::NamedTempFile::new_in(parent).with_context(|| format!("cannot write into {}", parent.display()))?;
    {
        let gz = flate2::write::GzEncoder::new(tmp.as_file(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let toc_bytes = serde_json::to_vec_pretty(&toc)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(toc_bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, TOC, toc_bytes.as_slice())?;
        for (name, path) in &entries {
            tar.append_path_with_name(path, name).with_context(|| format!("adding {}", path.display()))?;
        }
        tar.into_inner()?.finish()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(out).with_context(|| format!("cannot write {}", out.display()))?;
    let bytes = fs::metadata(out)?.len();
    Ok(format!(
        "exported {} run(s), {} file(s){} to {} ({:.1} MiB)",
        keys.len(),
        toc.files.len(),
        if without_weights { " without weights" } else { "" },
        out.display(),
        bytes as f64 / (1 << 20) as f64
    ))
}

/// What an import did.
#[derive(Debug, Default, PartialEq)]
pub struct Imported {
    pub added: Vec<String>,
    /// Already cached with identical files.
    pub present: Vec<String>,
}

/// Imports an archive written by [`export`] (module docs for the checks and the atomicity).
pub fn import(cache: &Cache, archive: &Path) -> Result<Imported> {
    let scratch = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&cache.root)
        .context("cannot make a scratch directory in the cache")?;
    let file = fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let what = || {
        format!(
            "{} is not a readable gcl-repro export (truncated or damaged?); nothing was imported",
            archive.display()
        )
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut seen = BTreeSet::new();
    for entry in tar.entries().with_context(what)? {
        let mut entry = entry.with_context(what)?;
        let name = entry.path().with_context(what)?.to_string_lossy().into_owned();
        if !is_relative_path(&name) || !entry.header().entry_type().is_file() {
            bail!("{}: refusing entry `{name}` (only plain files with relative paths belong in an export); nothing was imported", archive.display());
        }
        let dest = scratch.path().join(&name);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir)?;
        }
        entry.unpack(&dest).with_context(what)?;
        seen.insert(name);
    }
    let toc_text = fs::read_to_string(scratch.path().join(TOC))
        .with_context(|| format!("{}: no {TOC} in the archive", archive.display()))?;
    let toc: Toc =
        serde_json::from_str(&toc_text).with_context(|| format!("{}: unreadable {TOC}", archive.display()))?;
    toc.check_format(archive)?;
    // Every listed file present and intact, nothing unlisted. Only names that came out of the
    // archive (checked above) are looked up, so the list cannot point outside the scratch.
    for (name, (hash, size)) in &toc.files {
        let path = scratch.path().join(name);
        if !seen.contains(name) {
            bail!("{}: {name} is listed but missing (truncated archive?); nothing was imported", archive.display());
        }
        if fs::metadata(&path)?.len() != *size || sha256_file(&path)? != *hash {
            bail!("{}: {name}: its SHA-256 differs from the one the archive records (corrupted in transit); nothing was imported", archive.display());
        }
    }
    if let Some(extra) = seen.iter().find(|n| *n != TOC && !toc.files.contains_key(*n)) {
        bail!("{}: {extra} is not listed in {TOC}; nothing was imported", archive.display());
    }
    // Each run against its own record, and against what the cache already holds.
    let staged = Cache { root: scratch.path().to_path_buf() };
    let mut result = Imported::default();
    for key in &toc.runs {
        if !is_relative_path(key) || key.contains('/') || !staged.run_dir(key).is_dir() {
            bail!("{}: run `{key}` is listed in {TOC} but has no directory runs/{key} in the archive; nothing was imported", archive.display());
        }
        if toc.without_weights {
            // Marked before the check, so `verify_run` itself accepts the absent weights.
            fs::write(
                staged.run_dir(key).join(WEIGHTS_OMITTED),
                "imported with `cache export --without-weights`: weights and embeddings are not here\n",
            )?;
        }
        let problems: Vec<String> = staged.verify_run(key)?;
        if !problems.is_empty() {
            bail!("{}: run {key} is inconsistent ({}); nothing was imported", archive.display(), problems.join("; "));
        }
        if cache.run_dir(key).exists() {
            let ours = fs::read_to_string(cache.run_dir(key).join(HASHES)).unwrap_or_default();
            let theirs = fs::read_to_string(staged.run_dir(key).join(HASHES))?;
            if ours != theirs {
                bail!(
                    "run {key} in {} differs from the run cached under the same key (their files.sha256 differ); \
                     nothing was imported. A key names one result: find out which is right (`gcl-repro cache show {}`), \
                     and remove the cached one first (`gcl-repro run --force --only {}` re-trains it) to take the archive's",
                    archive.display(),
                    short_key(key),
                    short_key(key)
                );
            }
            result.present.push(key.clone());
        }
    }
    // All checked: publish.
    fs::create_dir_all(cache.root.join("derived"))?;
    for key in &toc.runs {
        if result.present.contains(key) {
            continue;
        }
        fs::rename(staged.run_dir(key), cache.run_dir(key)).with_context(|| format!("publishing run {key}"))?;
        result.added.push(key.clone());
    }
    for name in toc.files.keys().filter(|n| n.starts_with("derived/")) {
        let dest = cache.root.join(name);
        if !dest.exists() {
            fs::rename(scratch.path().join(name), &dest)?;
        }
    }
    Ok(result)
}

/// The record files of a run that [`read_runs`] reads.
const RECORDS: [&str; 3] = [METRICS, SPEC, KEY_MATERIAL];

/// One run of an archive as [`read_runs`] reads it.
#[derive(Debug)]
pub struct ArchivedRun {
    pub key: String,
    /// Its record files (`metrics.json`, `spec.toml`, `key.json`) by name, as text.
    pub records: BTreeMap<String, String>,
    /// SHA-256 of its final weights, when the archive carries them.
    pub weights_sha256: Option<String>,
}

/// The runs of an archive written by [`export`], read in place: nothing is unpacked or imported,
/// the weights are only hashed as they stream past, and every file read is checked against the
/// archive's table of contents.
pub fn read_runs(archive: &Path) -> Result<Vec<ArchivedRun>> {
    let file = fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let what = || format!("{} is not a readable gcl-repro export", archive.display());
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut toc: Option<Toc> = None;
    let mut runs: BTreeMap<String, ArchivedRun> = BTreeMap::new();
    // Archive path -> SHA-256 of what was read, checked against the table of contents at the end.
    let mut read: BTreeMap<String, String> = BTreeMap::new();
    for entry in tar.entries().with_context(what)? {
        let mut entry = entry.with_context(what)?;
        let name = entry.path().with_context(what)?.to_string_lossy().into_owned();
        if name == TOC {
            toc = Some(
                serde_json::from_reader(&mut entry)
                    .with_context(|| format!("{}: unreadable {TOC}", archive.display()))?,
            );
            continue;
        }
        let Some((key, file)) = name.strip_prefix("runs/").and_then(|rest| rest.split_once('/')) else { continue };
        let run = runs.entry(key.to_string()).or_insert_with(|| ArchivedRun {
            key: key.to_string(),
            records: BTreeMap::new(),
            weights_sha256: None,
        });
        if file == FINAL_MODEL {
            let digest = sha256_reader(&mut entry).with_context(what)?;
            run.weights_sha256 = Some(digest.clone());
            read.insert(name.clone(), digest);
        } else if RECORDS.contains(&file) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).with_context(what)?;
            let digest = sha256_reader(text.as_bytes())?;
            run.records.insert(file.to_string(), text);
            read.insert(name, digest);
        }
    }
    let toc = toc.with_context(|| {
        format!("{}: no {TOC} in the archive (not written by `gcl-repro cache export`)", archive.display())
    })?;
    toc.check_format(archive)?;
    for (name, digest) in &read {
        if toc.files.get(name).map(|(hash, _)| hash) != Some(digest) {
            bail!(
                "{}: {name}: its SHA-256 differs from the one the archive records (corrupted in transit)",
                archive.display()
            );
        }
    }
    let is_read = |name: &str| {
        name.rsplit_once('/')
            .is_some_and(|(dir, file)| dir.starts_with("runs/") && (file == FINAL_MODEL || RECORDS.contains(&file)))
    };
    if let Some(lost) = toc.files.keys().find(|n| is_read(n.as_str()) && !read.contains_key(*n)) {
        bail!("{}: {lost} is listed but missing (truncated archive?)", archive.display());
    }
    Ok(toc.runs.iter().filter_map(|key| runs.remove(key)).collect())
}

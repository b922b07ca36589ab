//! `gcl-repro cache export` / `cache import`: finished runs, and with `--partial` runs in
//! progress, as one compressed file, so results travel from a GPU host or a cluster to wherever
//! the report is built (a file-based `dvc push/pull`), and unfinished runs resume on another
//! machine (a preemptible job, a spot instance, a campaign carried from session to session).
//!
//! ```text
//! ARCHIVE (tar + gzip)
//!     gcl-export.json           format, engine version, and every file with its SHA-256 and size
//!     runs/<key>/<file>         a run's files as in the cache (weights and embeddings left
//!                               out with --without-weights, embeddings with --without-embeddings)
//!     partial/<key>/<file>      a run in progress at its last complete epoch: checkpoint (weights,
//!                               momentum, records), log, best weights so far, resolved settings
//!                               and key material (never its worker job file)
//!     derived/tsne-<hash>.json  cached t-SNE maps of those runs, so the report rebuilds
//!                               without the embeddings (left out with --without-embeddings)
//! ```
//! A partial run is imported into `partial/` only after its key material hashes to its key and
//! its checkpoint reads; it replaces a partial run of the same key only when it is further on
//! (a run never moves backward: an archive's partial run behind the cache's partial or finished
//! run is refused, naming both epochs). A finished run imported over a partial one replaces it.
//! Import unpacks into a scratch directory inside the cache, checks every file against the
//! archive's list and every run against its own `files.sha256`, refuses (importing nothing) if a
//! run differs from one already cached under the same key, and only then renames each run
//! into `runs/` (one atomic rename per run). A run imported without its weights carries a
//! `weights-omitted` marker, which `cache verify` honours.
//!
//! [`read_runs`] reads an archive's run records in place, for `compare`, without importing it.
use super::files::{
    CHECKPOINT, EMBEDDINGS, EMBEDDINGS_OMITTED, FINAL_MODEL, HASHES, JOB_FILE, KEY_MATERIAL, METRICS, SPEC,
    WEIGHTS_OMITTED,
};
use super::store::{checkpoint_epochs, sha256_file, sha256_reader, short_key, sorted_files, Cache, RunLock};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Name of the archive's table of contents.
pub const TOC: &str = "gcl-export.json";
/// Format 2 added partial runs and `without_embeddings`; format 1 archives still import.
const FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct Toc {
    format: u32,
    engine_version: u32,
    created_by: String,
    without_weights: bool,
    #[serde(default)]
    without_embeddings: bool,
    runs: Vec<String>,
    /// Runs in progress, under `partial/<key>/`.
    #[serde(default)]
    partial: Vec<String>,
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
        if !(1..=FORMAT).contains(&self.format) {
            bail!(
                "{}: export format {} is not a format this gcl-repro reads (1 to {FORMAT}): a newer gcl-repro wrote it",
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

/// What an export leaves out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Leave {
    /// Weights and embeddings of finished runs (`--without-weights`).
    pub weights: bool,
    /// Embeddings of finished runs and the cached t-SNE maps (`--without-embeddings`): what
    /// neither a later stage nor a table needs.
    pub embeddings: bool,
}

/// The archive entries of a finished run.
fn finished_entries(cache: &Cache, key: &str, leave: Leave) -> Result<Vec<(String, PathBuf)>> {
    let dir = cache.run_dir(key);
    if cache.result(key)?.is_none() {
        bail!("run {key} is not a finished run of {}", cache.root.display());
    }
    let problems: Vec<String> = cache.verify_run(key)?;
    if !problems.is_empty() {
        bail!("run {key} fails `cache verify` ({}); it is not exported", problems.join("; "));
    }
    if !leave.weights && dir.join(WEIGHTS_OMITTED).is_file() {
        bail!("run {key} has no weights here (it was imported without them); export with --without-weights");
    }
    let mut entries = Vec::new();
    for name in sorted_files(&dir)? {
        let left_out = (leave.weights && is_weights(&name)) || (leave.embeddings && name == EMBEDDINGS);
        if left_out || name == WEIGHTS_OMITTED || name == EMBEDDINGS_OMITTED {
            continue;
        }
        entries.push((format!("runs/{key}/{name}"), dir.join(&name)));
    }
    Ok(entries)
}

/// The archive entries of a partial run, and its lock, held until the archive is written so
/// that no training changes the files meanwhile.
fn partial_entries(cache: &Cache, key: &str) -> Result<(Vec<(String, PathBuf)>, RunLock)> {
    let dir = cache.partial_dir(key);
    let lock = cache.try_lock(key)?.with_context(|| {
        format!("partial run {key} is training now; wind it down first (SIGUSR1 or --deadline: it stops at its epoch end) and export again")
    })?;
    for needed in [CHECKPOINT, SPEC, KEY_MATERIAL] {
        if !dir.join(needed).is_file() {
            bail!(
                "partial run {key} has no {needed} (not one complete epoch yet, or started by an older gcl-repro): \
                 resume it with `gcl-repro run` until an epoch ends, then export again"
            );
        }
    }
    checkpoint_epochs(&dir).with_context(|| format!("partial run {key}: its checkpoint cannot be exported"))?;
    let names = sorted_files(&dir)?;
    // Temporary files of an atomic write in flight are dot-files; the job file is re-planned.
    let keep = |n: &String| n != JOB_FILE && !n.starts_with('.') && !n.ends_with(".tmp");
    let entries = names.into_iter().filter(keep).map(|n| (format!("partial/{key}/{n}"), dir.join(n))).collect();
    Ok((entries, lock))
}

/// Writes the finished runs `keys` and the partial runs `partial` of `cache` into `out`;
/// returns a summary line.
pub fn export(cache: &Cache, keys: &[String], partial: &[String], out: &Path, leave: Leave) -> Result<String> {
    let keys: BTreeSet<String> = keys.iter().cloned().collect();
    let partial: BTreeSet<String> = partial.iter().filter(|k| !keys.contains(*k)).cloned().collect();
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for key in &keys {
        entries.extend(finished_entries(cache, key, leave)?);
    }
    let mut locks = Vec::new();
    for key in &partial {
        let (e, lock) = partial_entries(cache, key)?;
        entries.extend(e);
        locks.push(lock);
    }
    if !leave.embeddings {
        for path in derived_of(cache, &keys)? {
            let name = path
                .file_name()
                .with_context(|| format!("{}: a derived file without a name", path.display()))?
                .to_string_lossy()
                .into_owned();
            entries.push((format!("derived/{name}"), path));
        }
    }
    let mut files = BTreeMap::new();
    for (name, path) in &entries {
        files.insert(name.clone(), (sha256_file(path)?, fs::metadata(path)?.len()));
    }
    let toc = Toc {
        format: FORMAT,
        engine_version: crate::ENGINE_VERSION,
        created_by: format!("gcl-repro {} ({})", env!("CARGO_PKG_VERSION"), env!("GCL_GIT_COMMIT")),
        without_weights: leave.weights,
        without_embeddings: leave.embeddings,
        runs: keys.iter().cloned().collect(),
        partial: partial.iter().cloned().collect(),
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
    drop(locks);
    let bytes = fs::metadata(out)?.len();
    let left_out = match (leave.weights, leave.embeddings) {
        (true, _) => " without weights",
        (false, true) => " without embeddings",
        _ => "",
    };
    Ok(format!(
        "exported {} run(s){}, {} file(s){left_out} to {} ({:.1} MiB)",
        keys.len(),
        if partial.is_empty() { String::new() } else { format!(" and {} partial run(s)", partial.len()) },
        toc.files.len(),
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
    /// Partial runs placed under `partial/`, with the epochs they hold.
    pub partial_added: Vec<(String, usize)>,
    /// Partial runs already here at the same epoch with identical files.
    pub partial_present: Vec<String>,
}

/// Imports an archive written by [`export`] (module docs for the checks and the atomicity).
pub fn import(cache: &Cache, archive: &Path) -> Result<Imported> {
    let scratch = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&cache.root)
        .context("cannot make a scratch directory in the cache")?;
    let toc = unpack_checked(archive, scratch.path())?;
    let staged = Cache { root: scratch.path().to_path_buf() };
    let present = check_staged_runs(cache, &staged, &toc, archive)?;
    let partial_plan = check_partial_runs(cache, &staged, &toc, archive)?;
    publish(cache, &staged, &toc, present, partial_plan)
}

/// Unpacks `archive` into `scratch` and checks it whole: plain files with relative paths only,
/// every file listed in its table of contents present with its SHA-256, nothing unlisted.
fn unpack_checked(archive: &Path, scratch: &Path) -> Result<Toc> {
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
        let dest = scratch.join(&name);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir)?;
        }
        entry.unpack(&dest).with_context(what)?;
        seen.insert(name);
    }
    let toc_text = fs::read_to_string(scratch.join(TOC))
        .with_context(|| format!("{}: no {TOC} in the archive", archive.display()))?;
    let toc: Toc =
        serde_json::from_str(&toc_text).with_context(|| format!("{}: unreadable {TOC}", archive.display()))?;
    toc.check_format(archive)?;
    // Only names that came out of the archive (checked above) are looked up, so the list cannot
    // point outside the scratch.
    for (name, (hash, size)) in &toc.files {
        let path = scratch.join(name);
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
    Ok(toc)
}

/// Each finished run of the archive against its own record, and against what the cache already
/// holds under its key; returns the keys the cache already has (identical files).
fn check_staged_runs(cache: &Cache, staged: &Cache, toc: &Toc, archive: &Path) -> Result<Vec<String>> {
    let mut present = Vec::new();
    for key in &toc.runs {
        if !is_relative_path(key) || key.contains('/') || !staged.run_dir(key).is_dir() {
            bail!("{}: run `{key}` is listed in {TOC} but has no directory runs/{key} in the archive; nothing was imported", archive.display());
        }
        // Marked before the check, so `verify_run` itself accepts the absent files.
        if toc.without_weights {
            fs::write(
                staged.run_dir(key).join(WEIGHTS_OMITTED),
                "imported with `cache export --without-weights`: weights and embeddings are not here\n",
            )?;
        }
        if toc.without_embeddings {
            fs::write(
                staged.run_dir(key).join(EMBEDDINGS_OMITTED),
                "imported with `cache export --without-embeddings`: the embeddings are not here\n",
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
            present.push(key.clone());
        }
    }
    Ok(present)
}

/// All checked: moves the new runs, the partial runs that are further on and the derived files
/// into the cache, holding the lock of every key whose partial directory changes.
fn publish(
    cache: &Cache,
    staged: &Cache,
    toc: &Toc,
    present: Vec<String>,
    partial_plan: Vec<(String, usize, Forward)>,
) -> Result<Imported> {
    let mut locks = Vec::new();
    for key in toc.runs.iter().chain(&toc.partial) {
        if cache.partial_dir(key).exists() {
            locks.push(cache.try_lock(key)?.with_context(|| {
                format!("run {key} is training in this cache now; stop it, then import again (nothing was imported)")
            })?);
        }
    }
    let mut result = Imported { present, ..Imported::default() };
    fs::create_dir_all(cache.root.join("derived"))?;
    for key in toc.runs.iter().filter(|k| !result.present.contains(k)) {
        fs::rename(staged.run_dir(key), cache.run_dir(key)).with_context(|| format!("publishing run {key}"))?;
        // A finished run supersedes the cache's partial one of the same key.
        if cache.partial_dir(key).exists() {
            fs::remove_dir_all(cache.partial_dir(key))?;
        }
        result.added.push(key.clone());
    }
    for (key, epochs, replace) in partial_plan {
        match replace {
            Forward::Same => result.partial_present.push(key),
            Forward::Ahead => {
                if cache.partial_dir(&key).exists() {
                    fs::remove_dir_all(cache.partial_dir(&key))?;
                }
                fs::rename(staged.partial_dir(&key), cache.partial_dir(&key))
                    .with_context(|| format!("placing partial run {key}"))?;
                result.partial_added.push((key, epochs));
            }
        }
    }
    drop(locks);
    for name in toc.files.keys().filter(|n| n.starts_with("derived/")) {
        let dest = cache.root.join(name);
        if !dest.exists() {
            fs::rename(staged.root.join(name), &dest)?;
        }
    }
    Ok(result)
}

/// What importing a partial run does to the cache's run of the same key.
enum Forward {
    /// The cache holds it at the same epoch with identical files.
    Same,
    /// The archive's is further on (or the cache has none): it takes its place.
    Ahead,
}

/// Check each partial run of the archive: its key material hashes to its key, its checkpoint
/// reads, and it is not behind what the cache holds under that key (a run never moves
/// backward). Returns (key, epochs the archive's run holds, what importing it does).
fn check_partial_runs(
    cache: &Cache,
    staged: &Cache,
    toc: &Toc,
    archive: &Path,
) -> Result<Vec<(String, usize, Forward)>> {
    let mut plan = Vec::new();
    for key in &toc.partial {
        let dir = staged.partial_dir(key);
        if !is_relative_path(key) || key.contains('/') || !dir.is_dir() || toc.runs.contains(key) {
            bail!("{}: partial run `{key}` is listed in {TOC} but has no directory partial/{key} of its own in the archive; nothing was imported", archive.display());
        }
        let material: serde_json::Value = fs::read_to_string(dir.join(KEY_MATERIAL))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .with_context(|| {
                format!("{}: partial run {key} has no readable {KEY_MATERIAL}; nothing was imported", archive.display())
            })?;
        if super::key::hash(&material) != *key {
            bail!(
                "{}: partial run {key}: its {KEY_MATERIAL} hashes to {}, not to its key (its files do not belong to that run); nothing was imported",
                archive.display(),
                short_key(&super::key::hash(&material))
            );
        }
        let theirs = checkpoint_epochs(&dir)
            .with_context(|| format!("{}: partial run {key}; nothing was imported", archive.display()))?;
        let behind = |what: &str, ours: usize| {
            anyhow::anyhow!(
                "{}: partial run {} (epoch {theirs}) is behind the {what} run here (epoch {ours}) under the same key; \
                 nothing was imported (a run never moves backward: export this cache instead, or remove its run first)",
                archive.display(),
                short_key(key)
            )
        };
        if let Some(done) = cache.result(key)? {
            return Err(behind("finished", done.epochs.len()));
        }
        let forward = if cache.partial_dir(key).join(CHECKPOINT).is_file() {
            let ours = cache.partial_epochs(key).with_context(|| format!("the cache's partial run {key}"))?;
            let same = sha256_file(&cache.partial_dir(key).join(CHECKPOINT))? == sha256_file(&dir.join(CHECKPOINT))?;
            match theirs.cmp(&ours) {
                std::cmp::Ordering::Less => return Err(behind("partial", ours)),
                std::cmp::Ordering::Equal if same => Forward::Same,
                std::cmp::Ordering::Equal => bail!(
                    "{}: partial run {} holds epoch {theirs} like the partial run here, but their checkpoints differ; \
                     nothing was imported (find out which is right, and remove the other)",
                    archive.display(),
                    short_key(key)
                ),
                std::cmp::Ordering::Greater => Forward::Ahead,
            }
        } else {
            Forward::Ahead
        };
        plan.push((key.clone(), theirs, forward));
    }
    Ok(plan)
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
/// every file but the records is only hashed as it streams past, and every file is checked
/// against the archive's table of contents.
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
        // Every file is hashed as it streams past (a damaged one is found wherever it lies).
        let Some((key, file)) = name.strip_prefix("runs/").and_then(|rest| rest.split_once('/')) else {
            read.insert(name, sha256_reader(&mut entry).with_context(what)?);
            continue;
        };
        let run = runs.entry(key.to_string()).or_insert_with(|| ArchivedRun {
            key: key.to_string(),
            records: BTreeMap::new(),
            weights_sha256: None,
        });
        let digest = if RECORDS.contains(&file) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).with_context(what)?;
            let digest = sha256_reader(text.as_bytes())?;
            run.records.insert(file.to_string(), text);
            digest
        } else {
            sha256_reader(&mut entry).with_context(what)?
        };
        if file == FINAL_MODEL {
            run.weights_sha256 = Some(digest.clone());
        }
        read.insert(name, digest);
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
    if let Some(lost) = toc.files.keys().find(|n| !read.contains_key(*n)) {
        bail!("{}: {lost} is listed but missing (truncated archive?)", archive.display());
    }
    Ok(toc.runs.iter().filter_map(|key| runs.remove(key)).collect())
}

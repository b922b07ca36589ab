//! The on-disk cache of runs.
//!
//! ```text
//! <cache>/runs/<key>/      complete runs only (made visible by one atomic rename)
//!     spec.toml            the resolved settings of the run
//!     key.json             the canonical material the key is the SHA-256 of
//!     metrics.json         `metrics::RunResult`
//!     log.jsonl            one record per epoch
//!     model.safetensors    final weights; best.safetensors: best-on-test weights
//!     embeddings.safetensors (stage 1) features of the train and test splits
//!     files.sha256         SHA-256 of every file above, for `cache verify`
//! <cache>/partial/<key>/   a run in progress or interrupted (resumes from its checkpoint)
//! <cache>/locks/<key>.lock held (flock) by the process training the run
//! ```
use super::files::{CHECKPOINT, EMBEDDINGS, EMBEDDINGS_OMITTED, HASHES, KEY_MATERIAL, METRICS, SPEC, WEIGHTS_OMITTED};
use crate::metrics::RunResult;
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Cached,
    Partial,
    Missing,
}

impl RunState {
    pub fn label(self) -> &'static str {
        match self {
            RunState::Cached => "cached",
            RunState::Partial => "partial",
            RunState::Missing => "to run",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Cache {
    pub root: PathBuf,
}

/// An exclusive claim on training one run; released when dropped or when the process dies
/// (an OS file lock, so a lock left by a killed process is recovered automatically).
pub struct RunLock {
    _file: File,
}

impl Cache {
    pub fn open(root: &Path) -> Result<Cache> {
        for sub in ["runs", "partial", "locks"] {
            fs::create_dir_all(root.join(sub))
                .with_context(|| format!("cannot create the cache directory {}", root.join(sub).display()))?;
        }
        Ok(Cache { root: root.to_path_buf() })
    }

    pub fn run_dir(&self, key: &str) -> PathBuf {
        self.root.join("runs").join(key)
    }

    pub fn partial_dir(&self, key: &str) -> PathBuf {
        self.root.join("partial").join(key)
    }

    pub fn state(&self, key: &str) -> RunState {
        if self.run_dir(key).join(METRICS).is_file() {
            RunState::Cached
        } else if self.partial_dir(key).is_dir() {
            RunState::Partial
        } else {
            RunState::Missing
        }
    }

    pub fn result(&self, key: &str) -> Result<Option<RunResult>> {
        let path = self.run_dir(key).join(METRICS);
        if !path.is_file() {
            return Ok(None);
        }
        // One line saying what is wrong with which file, then the two ways out.
        let parsed =
            fs::read_to_string(&path).map_err(anyhow::Error::from).and_then(|text| Ok(serde_json::from_str(&text)?));
        let r = parsed.map_err(|e| {
            anyhow!(
                "{} is not a valid result ({e}); `gcl-repro cache verify` tells whether it changed since the run finished, \
                 `gcl-repro run MANIFEST --force --only {}` re-trains the run",
                path.display(),
                short_key(key)
            )
        })?;
        Ok(Some(r))
    }

    /// Try to claim `key`; `None` when another live process holds it.
    pub fn try_lock(&self, key: &str) -> Result<Option<RunLock>> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        // SAFETY: flock on a valid, open file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            return Ok(Some(RunLock { _file: file }));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(err).with_context(|| format!("locking {}", path.display()))
        }
    }

    /// A run starts (or resumes): its resolved settings and key material go into its partial
    /// directory first, so a partial run says what it is (`cache export` carries them, and
    /// `cache import` checks the material against the key).
    pub fn begin(&self, key: &str, spec_toml: &str, key_material: &serde_json::Value) -> Result<()> {
        let partial = self.partial_dir(key);
        fs::create_dir_all(&partial)?;
        crate::atomic::write(&partial.join(SPEC), spec_toml)?;
        crate::atomic::write(&partial.join(KEY_MATERIAL), serde_json::to_string_pretty(key_material)?)?;
        Ok(())
    }

    /// Make a finished run visible: write its record files into the partial directory, hash
    /// everything, then rename the directory into `runs/` in one step.
    pub fn commit(
        &self,
        key: &str,
        result: &RunResult,
        spec_toml: &str,
        key_material: &serde_json::Value,
    ) -> Result<PathBuf> {
        let partial = self.partial_dir(key);
        fs::create_dir_all(&partial)?;
        fs::write(partial.join(METRICS), serde_json::to_string_pretty(result)?)?;
        fs::write(partial.join(SPEC), spec_toml)?;
        fs::write(partial.join(KEY_MATERIAL), serde_json::to_string_pretty(key_material)?)?;
        // The checkpoint is only needed to resume; a complete run keeps its final weights.
        let _ = fs::remove_file(partial.join(CHECKPOINT));
        let mut lines = String::new();
        for name in sorted_files(&partial)? {
            if name != HASHES {
                lines.push_str(&format!("{}  {}\n", sha256_file(&partial.join(&name))?, name));
            }
        }
        fs::write(partial.join(HASHES), lines)?;
        let dest = self.run_dir(key);
        if dest.exists() {
            // --force re-runs replace the old result.
            fs::remove_dir_all(&dest)?;
        }
        fs::rename(&partial, &dest).with_context(|| format!("publishing run {key}"))?;
        Ok(dest)
    }

    /// Forget a run (for --force): both its result and any partial state.
    pub fn remove(&self, key: &str) -> Result<()> {
        for d in [self.run_dir(key), self.partial_dir(key)] {
            if d.exists() {
                fs::remove_dir_all(&d)?;
            }
        }
        Ok(())
    }

    /// Keys of complete runs, sorted.
    pub fn keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = fs::read_dir(self.root.join("runs"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// How many epochs a partial run has completed: the epoch its checkpoint holds (0 before
    /// its first epoch ends). An unreadable checkpoint is an error naming it.
    pub fn partial_epochs(&self, key: &str) -> Result<usize> {
        checkpoint_epochs(&self.partial_dir(key))
    }

    /// Keys of partial runs, sorted.
    pub fn partial_keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = fs::read_dir(self.root.join("partial"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Resolve a key prefix (as printed by `plan` and `cache ls`) to one full key.
    pub fn resolve_prefix(&self, prefix: &str) -> Result<String> {
        let matches: Vec<String> = self.keys()?.into_iter().filter(|k| k.starts_with(prefix)).collect();
        match matches.len() {
            1 => Ok(matches[0].clone()),
            0 => bail!("no cached run has a key starting with `{prefix}` (see `gcl-repro cache ls`)"),
            n => bail!("{n} cached runs have keys starting with `{prefix}`; give more characters"),
        }
    }

    /// Check every stored file of a run against `files.sha256`; returns the problems found.
    pub fn verify_run(&self, key: &str) -> Result<Vec<String>> {
        let dir = self.run_dir(key);
        let mut problems = Vec::new();
        let listing = match fs::read_to_string(dir.join(HASHES)) {
            Ok(t) => t,
            Err(_) => return Ok(vec![format!("{key}: {HASHES} is missing")]),
        };
        let mut listed = std::collections::BTreeSet::new();
        // A run imported by `cache import` from a `--without-weights` archive has no weights.
        let weightless = dir.join(WEIGHTS_OMITTED).is_file();
        // ... and one from an archive exported `--without-embeddings` has no embeddings.
        let no_embeddings = dir.join(EMBEDDINGS_OMITTED).is_file();
        for line in listing.lines() {
            let Some((hash, name)) = line.split_once("  ") else {
                problems.push(format!("{key}: malformed line in {HASHES}: {line}"));
                continue;
            };
            listed.insert(name.to_string());
            let path = dir.join(name);
            match sha256_file(&path) {
                Ok(h) if h == hash => {}
                Ok(h) => problems.push(format!(
                    "{key}: {name}: its SHA-256 differs from the one recorded in {HASHES} when the run finished \
                     ({}... now, {}... recorded): the file was changed or corrupted",
                    short_key(&h),
                    short_key(hash)
                )),
                Err(_) if weightless && name.ends_with(".safetensors") => {}
                Err(_) if no_embeddings && name == EMBEDDINGS => {}
                Err(_) => problems.push(format!("{key}: {name} is missing")),
            }
        }
        for name in sorted_files(&dir)? {
            if ![HASHES, WEIGHTS_OMITTED, EMBEDDINGS_OMITTED].contains(&name.as_str()) && !listed.contains(&name) {
                problems.push(format!("{key}: {name} is not listed in {HASHES} (a file added after the run finished)"));
            }
        }
        Ok(problems)
    }
}

/// The epochs the checkpoint in the run directory `dir` holds (0 when it has none yet).
pub fn checkpoint_epochs(dir: &Path) -> Result<usize> {
    let path = dir.join(CHECKPOINT);
    if !path.is_file() {
        return Ok(0);
    }
    let (_, state): (_, crate::training::stage::TrainState) = crate::training::checkpoint::load(&path)?;
    Ok(state.epochs_done)
}

pub(crate) fn sorted_files(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// The first 12 characters of a key or hash, as `plan` and `cache ls` print them (all of it
/// when shorter, or when it is not the hex it should be).
pub fn short_key(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

pub fn sha256_file(path: &Path) -> Result<String> {
    sha256_reader(File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
}

/// SHA-256 of everything `f` yields, read in 1 MiB pieces.
pub fn sha256_reader(mut f: impl Read) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Evaluation, Provenance};

    fn dummy(key: &str) -> RunResult {
        RunResult {
            key: key.into(),
            stage: 1,
            parent: None,
            final_eval: Evaluation::default(),
            best_top1: 1.0,
            best_epoch: 1,
            best_eval: Evaluation::default(),
            selection_rule: String::new(),
            shot_rule: String::new(),
            train_class_counts: vec![],
            epochs: vec![],
            provenance: Provenance::default(),
        }
    }

    #[test]
    fn commit_is_visible_and_verifiable_and_corruption_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(cache.state("k1"), RunState::Missing);
        fs::create_dir_all(cache.partial_dir("k1")).unwrap();
        fs::write(cache.partial_dir("k1").join("log.jsonl"), "{}\n").unwrap();
        assert_eq!(cache.state("k1"), RunState::Partial);
        cache.commit("k1", &dummy("k1"), "seed = 1\n", &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(cache.state("k1"), RunState::Cached);
        assert!(!cache.partial_dir("k1").exists());
        assert_eq!(cache.result("k1").unwrap().unwrap().key, "k1");
        assert!(cache.verify_run("k1").unwrap().is_empty());
        fs::write(cache.run_dir("k1").join("log.jsonl"), "{\"x\":1}\n").unwrap();
        let problems = cache.verify_run("k1").unwrap();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("log.jsonl: its SHA-256 differs from the one recorded in files.sha256"),
            "{problems:?}"
        );
        assert_eq!(cache.resolve_prefix("k").unwrap(), "k1");
    }

    #[test]
    fn a_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = Cache::open(dir.path()).unwrap();
        let b = Cache::open(dir.path()).unwrap();
        let held = a.try_lock("k").unwrap().expect("first lock");
        // flock locks are per open file description: a second open in this process conflicts too.
        assert!(b.try_lock("k").unwrap().is_none());
        drop(held);
        assert!(b.try_lock("k").unwrap().is_some());
    }
}

//! The one entry point of a run trained outside the process that planned it: a `run --jobs N`
//! worker, a run at another CPU kernel level, or a Slurm array task. The planner writes the
//! resolved run (its [`RunNode`]: settings, key, stage, data identity and uses) into the run's
//! partial directory as [`JOB_FILE`]; `gcl-repro worker FILE` reads it back, checks that its
//! settings still give its key, and trains it. Nothing is re-expanded from manifests, so a
//! worker runs exactly what its parent planned, even if a manifest changed in between.
use super::graph::RunNode;
use crate::cache::{key, Cache};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub use crate::cache::files::JOB_FILE;

/// Write `node` as the job file of its partial directory; returns the file's path.
pub fn write_job(cache: &Cache, node: &RunNode) -> Result<PathBuf> {
    let path = cache.partial_dir(&node.key).join(JOB_FILE);
    let text = serde_json::to_string_pretty(node).context("serialising a run for its worker")?;
    crate::atomic::write(&path, text).with_context(|| format!("cannot write the worker job {}", path.display()))?;
    Ok(path)
}

/// Read a job file and check it: the settings it holds must hash to the key it names (a file
/// edited or damaged since it was written is refused, never trained under the wrong key).
pub fn read_job(path: &Path) -> Result<RunNode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the worker job {}", path.display()))?;
    let node: RunNode = serde_json::from_str(&text).with_context(|| {
        format!("{} is not a worker job (written by `run --jobs` or `plan --emit slurm`)", path.display())
    })?;
    let material = match &node.stage {
        super::graph::RunStage::One => key::stage1_material(&node.spec, &node.data_identity),
        super::graph::RunStage::Two { parent } => key::stage2_material(&node.spec, parent)
            .with_context(|| format!("{}: a stage-2 job without a stage 2", path.display()))?,
    };
    let computed = key::hash(&material);
    if computed != node.key {
        bail!(
            "{}: its settings give the key {computed}, not the {} it names; the file was changed since it was planned (plan or run again to rewrite it)",
            path.display(),
            node.key
        );
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::graph::{CellUse, RunStage};
    use crate::training::spec::RunSpec;

    fn stage1_node() -> RunNode {
        let spec = RunSpec::default().stage1_only();
        let key = key::hash(&key::stage1_material(&spec, "data-id"));
        let uses = vec![CellUse { manifest: "m".into(), cell: "r.c".into(), seed: 123 }];
        RunNode { key, stage: RunStage::One, spec, data_identity: "data-id".into(), manifest: "/x/m.toml".into(), uses }
    }

    #[test]
    fn a_job_round_trips_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let node = stage1_node();
        let path = write_job(&cache, &node).unwrap();
        assert_eq!(path, cache.partial_dir(&node.key).join(JOB_FILE));
        assert_eq!(read_job(&path).unwrap(), node);
        let text = std::fs::read_to_string(&path).unwrap().replacen("\"epochs\": 200", "\"epochs\": 3", 1);
        std::fs::write(&path, text).unwrap();
        let e = read_job(&path).unwrap_err().to_string();
        assert!(e.contains("the file was changed since it was planned"), "{e}");
        std::fs::write(&path, "{").unwrap();
        assert!(format!("{:#}", read_job(&path).unwrap_err()).contains("is not a worker job"));
    }
}

//! What a finished stage leaves beside its weights: the result record (metrics and provenance)
//! and the features of both splits for t-SNE figures.
use super::batches::{self, BatchSource};
use super::checkpoint;
use super::stage::TrainState;
use crate::data::Data;
use crate::metrics::{Provenance, RunResult, SHOT_RULE};
use crate::models::Network;
use anyhow::Result;
use std::path::Path;
use tch::{Device, Tensor};

/// The stored result of a stage (its device fields are filled in by the runner).
pub fn result(
    key: &str,
    stage: u8,
    parent: Option<String>,
    state: TrainState,
    data: &Data,
    started: chrono::DateTime<chrono::Utc>,
) -> RunResult {
    let finished = chrono::Utc::now();
    RunResult {
        key: key.to_string(),
        stage,
        parent,
        final_eval: state.last_eval.clone().unwrap_or_default(),
        best_top1: state.best_top1,
        best_epoch: state.best_epoch,
        best_eval: state.best_eval.clone().unwrap_or_default(),
        selection_rule: "final: last epoch (reported); best: highest test top-1 over epochs (the released code's choice, i.e. selection on the test set; kept for comparison only)".into(),
        shot_rule: SHOT_RULE.into(),
        train_class_counts: data.class_counts().to_vec(),
        epochs: state.records,
        provenance: Provenance {
            crate_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: source_commit().into(),
            libtorch_version: crate::device::libtorch_version(),
            cuda: None,
            device: String::new(),
            device_name: String::new(),
            threads: tch::get_num_threads() as usize,
            started: started.to_rfc3339(),
            finished: finished.to_rfc3339(),
            wall_seconds: state.elapsed_seconds,
            engine_version: crate::ENGINE_VERSION,
            cpu_numerics: crate::numerics::describe(),
        },
    }
}

/// At most this many evenly spaced samples per split are embedded (their dataset indices are
/// stored too).
const MAX_EMBEDDED: usize = 20_000;

/// Features (the classifier's input) of the train and test splits, for t-SNE figures.
pub fn embeddings(net: &Network, train: &dyn BatchSource, test: &dyn BatchSource, path: &Path) -> Result<()> {
    let feats = |split: &dyn BatchSource| -> Result<(Tensor, Tensor, Tensor)> {
        let order = batches::spread(split.len(), MAX_EMBEDDED);
        let index = Tensor::from_slice(&order.iter().map(|&i| i as i64).collect::<Vec<_>>());
        tch::no_grad(|| {
            let (mut parts, mut labels) = (Vec::new(), Vec::new());
            for batch in split.batches(order, 500, false, 0) {
                let (x, y) = batch?;
                parts.push(net.features(&x, false).to_device(Device::Cpu));
                labels.extend(Vec::<i64>::try_from(y.to_device(Device::Cpu))?);
            }
            Ok((Tensor::cat(&parts, 0), batches::labels_tensor(labels), index))
        })
    };
    let (tf, tl, ti) = feats(train)?;
    let (vf, vl, vi) = feats(test)?;
    let tensors = [
        ("train_features", tf),
        ("train_labels", tl),
        ("train_index", ti),
        ("test_features", vf),
        ("test_labels", vl),
        ("test_index", vi),
    ];
    let named: Vec<(String, Tensor)> = tensors.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    checkpoint::write_atomic(path, &named)
}

/// The commit the binary was built from, with `-dirty` when the source tree it was built in
/// still exists, is at that commit and has uncommitted changes to tracked files (the run may
/// then not be traceable to the commit alone), or `-tree?` when that tree is not here (e.g. a
/// binary carried to a GPU host). Asked of git once per process.
pub fn source_commit() -> &'static str {
    static COMMIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COMMIT.get_or_init(|| {
        let built = env!("GCL_GIT_COMMIT");
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(env!("CARGO_MANIFEST_DIR"))
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        match (git(&["rev-parse", "--short=12", "HEAD"]), git(&["status", "--porcelain", "--untracked-files=no"])) {
            (Some(head), Some(status)) if head == built => {
                format!("{built}{}", if status.is_empty() { "" } else { "-dirty" })
            }
            (Some(_), Some(_)) => format!("{built}-dirty"), // the tree is at another commit than the build's
            _ => format!("{built}-tree?"),
        }
    })
}

#[cfg(test)]
mod provenance_tests {
    #[test]
    fn source_commit_is_the_build_commit_with_the_tree_state() {
        let c = super::source_commit();
        let built = env!("GCL_GIT_COMMIT");
        let rest = c.strip_prefix(built).unwrap_or_else(|| panic!("{c} does not start with {built}"));
        assert!(["", "-dirty", "-tree?"].contains(&rest), "{c}");
    }
}

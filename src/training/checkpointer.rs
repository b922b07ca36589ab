//! The checkpointer of the epoch loop: after every epoch the stage's tensors, the momentum
//! buffers and the [`TrainState`] go to the run's checkpoint and its record to the log; a
//! restarted run continues from them (`resume`), its log cut back to the epochs they hold.
use super::checkpoint;
use super::sgd::Sgd;
use super::stage::{Stage, TrainState};
use super::RunEnv;
use crate::metrics::EpochRecord;
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::path::Path;
use tch::{Device, Tensor};

/// Checkpoint names of the momentum buffers: `momentum.<index of the parameter>`.
const MOMENTUM: &str = "momentum.";

/// The stage's tensors and the momentum buffers (`momentum.<i>`), with the state.
pub fn save(path: &Path, stage: &dyn Stage, opt: &Sgd, state: &mut TrainState) -> Result<()> {
    let buffers = opt.buffers();
    state.momentum_present = buffers.iter().map(|b| b.is_some()).collect();
    let mut tensors = stage.tensors();
    for (i, b) in buffers.into_iter().enumerate() {
        if let Some(b) = b {
            tensors.push((format!("{MOMENTUM}{i}"), b));
        }
    }
    checkpoint::save(path, &tensors, &*state)
}

/// Continue from the checkpoint at `path`. A checkpoint that cannot be read or does not fit the
/// run (another version's, or damaged) is one error naming it and how to start over; nothing is
/// discarded silently, since the partial run may hold hours of training.
pub fn resume(env: &RunEnv, stage: &dyn Stage, opt: &mut Sgd, path: &Path) -> Result<TrainState> {
    let restored = checkpoint::load(path).and_then(|(named, st): (_, TrainState)| {
        restore(stage, opt, named, &st, env.device)
            .with_context(|| format!("checkpoint {} does not fit this run", path.display()))?;
        Ok(st)
    });
    restored.map_err(|e| {
        anyhow!("{e:#}; delete the run's partial directory {} to restart it from its first epoch", env.dir.display())
    })
}

/// Put a checkpoint's tensors back into the stage and its momentum buffers into the optimiser,
/// after checking that every one is there with the shape it needs.
fn restore(
    stage: &dyn Stage,
    opt: &mut Sgd,
    named: Vec<(String, Tensor)>,
    st: &TrainState,
    device: Device,
) -> Result<()> {
    let params = opt.params();
    if st.momentum_present.len() != params.len() {
        bail!("its optimiser state covers {} parameters, this run trains {}", st.momentum_present.len(), params.len());
    }
    // A momentum buffer has its parameter's shape and dtype.
    let mut expected = stage.tensors();
    for (i, p) in params.iter().enumerate().filter(|(i, _)| st.momentum_present[*i]) {
        expected.push((format!("{MOMENTUM}{i}"), p.shallow_clone()));
    }
    checkpoint::check_fits(&named, &expected)?;
    let (momentum, tensors): (Vec<_>, Vec<_>) = named.into_iter().partition(|(n, _)| n.starts_with(MOMENTUM));
    stage.restore(&tensors)?;
    let mut buffers: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
    for (name, t) in momentum {
        // Only the buffers the state lists were checked against their parameters.
        let index = name[MOMENTUM.len()..].parse::<usize>().ok().filter(|&i| st.momentum_present.get(i) == Some(&true));
        let Some(i) = index else { bail!("tensor `{name}` is not a momentum buffer its optimiser state lists") };
        buffers[i] = Some(t.to_device(device));
    }
    opt.set_buffers(buffers)
}

pub fn append_log(path: &Path, record: &EpochRecord) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{}", serde_json::to_string(record)?)?;
    Ok(())
}

/// On resume, the log is cut back to the epochs the checkpoint holds (a killed epoch may have
/// been logged without its checkpoint).
pub fn rewrite_log(path: &Path, records: &[EpochRecord]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    std::fs::write(path, text)?;
    Ok(())
}

//! Per-epoch checkpoints, written atomically: one safetensors file holding the model's
//! variables, the optimiser's momentum buffers and a JSON state (epoch, metrics so far). It is
//! written to a temporary name and renamed, so a run killed at any moment finds either the
//! previous complete checkpoint or the new one, never a torn file.
use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use tch::{Kind, Tensor};

const STATE: &str = "__state_json__";

/// Save named tensors plus a serialisable state to `path` atomically.
pub fn save<S: Serialize>(path: &Path, tensors: &[(String, Tensor)], state: &S) -> Result<()> {
    let json = serde_json::to_vec(state)?;
    let state_tensor = Tensor::from_slice(&json);
    let mut named: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    named.push((STATE.to_string(), state_tensor));
    write_atomic(path, &named)
}

/// Write named tensors as one safetensors file, atomically (`crate::atomic`).
pub fn write_atomic(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let named: Vec<(&str, Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    crate::atomic::write_with(path, |tmp| Tensor::write_safetensors(&named, tmp).with_context(|| format!("writing {}", tmp.display())))
}

/// Load what `save` wrote: the tensors (by name) and the state.
pub fn load<S: DeserializeOwned>(path: &Path) -> Result<(Vec<(String, Tensor)>, S)> {
    let mut named = Tensor::read_safetensors(path)
        .with_context(|| format!("reading checkpoint {} (delete it to restart the run)", path.display()))?;
    let pos = named.iter().position(|(n, _)| n == STATE).context("checkpoint has no state record")?;
    let (_, st) = named.remove(pos);
    let bytes: Vec<u8> = Vec::try_from(st.to_kind(Kind::Uint8))?;
    let state = serde_json::from_slice(&bytes).context("checkpoint state is not valid JSON")?;
    Ok((named, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ck.safetensors");
        let t = Tensor::randn([3, 4], (Kind::Float, tch::Device::Cpu));
        save(&p, &[("w".to_string(), t.shallow_clone())], &vec![1u32, 2, 3]).unwrap();
        let (named, state): (_, Vec<u32>) = load(&p).unwrap();
        assert_eq!(state, vec![1, 2, 3]);
        assert!(named[0].1.equal(&t));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }
}

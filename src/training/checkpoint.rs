//! Per-epoch checkpoints, written atomically: one safetensors file holding the model's
//! variables, the optimiser's momentum buffers and a JSON state (epoch, metrics so far). It is
//! written to a temporary name and renamed, so a run killed at any moment finds either the
//! previous complete checkpoint or the new one, never a torn file.
use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
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
    let named: Vec<(&str, Tensor)> =
        tensors.iter().map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    crate::atomic::write_with(path, |tmp| {
        Tensor::write_safetensors(&named, tmp).with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Load what `save` wrote: the tensors (by name) and the state. Every error names `path`.
pub fn load<S: DeserializeOwned>(path: &Path) -> Result<(Vec<(String, Tensor)>, S)> {
    let mut named = read(path)?;
    let pos = named.iter().position(|(n, _)| n == STATE).with_context(|| {
        format!("checkpoint {} has no `{STATE}` record (gcl-repro's training did not write it)", path.display())
    })?;
    let (_, st) = named.remove(pos);
    let state = Vec::<u8>::try_from(st.to_kind(Kind::Uint8))
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))
        .with_context(|| {
            format!("checkpoint {}: its `{STATE}` record is not the state this gcl-repro writes", path.display())
        })?;
    Ok((named, state))
}

/// Every tensor of a safetensors file; a truncated or foreign file is an error naming it.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path).with_context(|| format!("{} is not a readable safetensors file", path.display()))
}

/// Check that `stored` holds every tensor of `expected` under its name, with its shape and
/// dtype; extra tensors are allowed. Done before copying stored tensors into a model's: tch's
/// `copy_` panics on a shape it cannot broadcast and silently broadcasts one it can.
pub fn check_fits(stored: &[(String, Tensor)], expected: &[(String, Tensor)]) -> Result<()> {
    let stored: HashMap<&str, &Tensor> = stored.iter().map(|(n, t)| (n.as_str(), t)).collect();
    for (name, want) in expected {
        let Some(got) = stored.get(name.as_str()) else { bail!("it has no tensor `{name}`") };
        if got.size() != want.size() {
            bail!("tensor `{name}` has shape {:?}, the model expects {:?}", got.size(), want.size());
        }
        if got.kind() != want.kind() {
            bail!("tensor `{name}` is {:?}, the model expects {:?}", got.kind(), want.kind());
        }
    }
    Ok(())
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

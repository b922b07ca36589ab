//! PyTorch weights in: a `state_dict` saved as safetensors, loaded by name into a [`Network`].
//!
//! Our variable names are PyTorch's (the released CIFAR `resnet_cifar.py`: `conv1`, `layer1.0.bn1`,
//! `linear.weight`; torchvision's ResNets: `layer1.0.downsample.0`, `fc.weight`), so a state_dict
//! maps one to one:
//! - DataParallel's `module.` prefix is dropped, and so is our own run files' `backbone.`/`head.`
//!   prefix (a run's `model.safetensors` loads the same way);
//! - `num_batches_tracked` (a BatchNorm counter PyTorch keeps and tch does not) is ignored;
//! - the cosine head's `linear.weight` is `(in, out)` in the released `NormedLinear` and here.
//!
//! `.pth`/`.pth.tar` pickles (the released code's `torch.save({'state_dict': ...})`) are converted
//! first by `scripts/torch_to_safetensors.py` with the venv's torch: reading a pickle needs Python.
//! Every name that does not map is one error listing the names on both sides.
use super::Network;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use tch::Tensor;

/// The prefixes our run files put before PyTorch's names, by var store.
const OUR_PREFIXES: [&str; 2] = ["backbone.", "head."];

/// SHA-256 of a file's bytes (hex): how a weights file enters a run's key.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read weights {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// A state_dict name as PyTorch's model would call it: without `module.` (DataParallel) and
/// without our run files' `backbone.`/`head.`.
fn torch_name(name: &str) -> &str {
    let name = name.strip_prefix("module.").unwrap_or(name);
    OUR_PREFIXES.iter().find_map(|p| name.strip_prefix(p)).unwrap_or(name)
}

/// Read a safetensors state_dict, with a pointer to the converter for a PyTorch pickle.
fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let pickle = matches!(path.extension().and_then(|e| e.to_str()), Some("pth" | "pt" | "tar" | "pkl"));
    if pickle {
        bail!(
            "weights {} are a PyTorch pickle; convert them first: `.venv/bin/python scripts/torch_to_safetensors.py {} OUT.safetensors`",
            path.display(),
            path.display()
        );
    }
    Tensor::read_safetensors(path).with_context(|| {
        format!(
            "reading weights {} (a safetensors state_dict; a .pth checkpoint is converted by scripts/torch_to_safetensors.py)",
            path.display()
        )
    })
}

/// `names` as a short list: the first 12, then how many more.
fn listing(names: &BTreeSet<&str>) -> String {
    let mut text = names.iter().take(12).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if names.len() > 12 {
        let _ = write!(text, " and {} more", names.len() - 12);
    }
    text
}

/// Copy the state_dict in `path` into every variable of `net` (parameters and BatchNorm
/// statistics). The file must name exactly the network's variables (see the module docs).
pub fn load_state_dict(net: &Network, path: &Path) -> Result<()> {
    let mut file: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, t) in read(path)? {
        if !name.ends_with("num_batches_tracked") {
            file.insert(torch_name(&name).to_string(), t);
        }
    }
    let ours: Vec<(String, Tensor)> =
        net.named_variables().into_iter().map(|(n, t)| (torch_name(&n).to_string(), t)).collect();
    let our_names: BTreeSet<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    let file_names: BTreeSet<&str> = file.keys().map(String::as_str).collect();
    let missing: BTreeSet<&str> = our_names.difference(&file_names).copied().collect();
    let extra: BTreeSet<&str> = file_names.difference(&our_names).copied().collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "weights {} do not fit this network: {} of its names are not in the network ({}); {} of the network's names are not in the file ({}). \
             The file must be a state_dict of the same architecture and head (cosine heads: `linear.weight` only; linear heads: `.weight` and `.bias`)",
            path.display(),
            extra.len(),
            if extra.is_empty() { "none".into() } else { listing(&extra) },
            missing.len(),
            if missing.is_empty() { "none".into() } else { listing(&missing) },
        );
    }
    let wrong: Vec<String> = ours
        .iter()
        .filter(|(n, var)| file[n].size() != var.size())
        .map(|(n, var)| format!("`{n}` is {:?} in the file, {:?} in the network", file[n].size(), var.size()))
        .collect();
    if !wrong.is_empty() {
        bail!("weights {}: shapes differ: {}", path.display(), wrong.join("; "));
    }
    tch::no_grad(|| {
        for (name, var) in &ours {
            var.shallow_clone().copy_(&file[name].to_kind(var.kind()).to_device(var.device()));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Arch, Head, ModelSpec};
    use tch::{Device, Kind};

    fn net(head: Head, classes: i64) -> Network {
        Network::new(&ModelSpec { arch: Arch::ResnetSmall, head, ..ModelSpec::default() }, classes, Device::Cpu)
    }

    /// Row-major copies to write (CPU convolution weights are channels-last).
    fn contiguous(named: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
        named.into_iter().map(|(n, t)| (n, t.contiguous())).collect()
    }

    /// A state_dict written with PyTorch's names (DataParallel prefix, `num_batches_tracked`,
    /// float64) loads into a fresh network and reproduces the source's outputs.
    #[test]
    fn torch_names_load_and_reproduce_outputs() {
        tch::manual_seed(11);
        let dir = tempfile::tempdir().unwrap();
        let src = net(Head::Normed, 4);
        let mut named: Vec<(String, Tensor)> = src
            .named_variables()
            .into_iter()
            .map(|(n, t)| (format!("module.{}", torch_name(&n)), t.to_kind(Kind::Double).contiguous()))
            .collect();
        named.push(("module.bn1.num_batches_tracked".into(), Tensor::from(7i64)));
        let path = dir.path().join("sd.safetensors");
        Tensor::write_safetensors(&named, &path).unwrap();
        let dst = net(Head::Normed, 4);
        load_state_dict(&dst, &path).unwrap();
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let (a, b) = (src.logits(&src.features(&x, false)), dst.logits(&dst.features(&x, false)));
        assert!(a.equal(&b));
        assert_eq!(sha256_file(&path).unwrap().len(), 64);
    }

    #[test]
    fn names_that_do_not_map_are_listed_on_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("linear.safetensors");
        let named: Vec<(String, Tensor)> = contiguous(net(Head::Linear, 4).named_variables());
        Tensor::write_safetensors(&named, &path).unwrap();
        let err = format!("{:#}", load_state_dict(&net(Head::Normed, 4), &path).unwrap_err());
        assert!(err.contains("linear.safetensors") && err.contains("`linear.bias`"), "{err}");
        assert!(
            err.contains("1 of its names are not in the network") && err.contains("0 of the network's names"),
            "{err}"
        );

        let path = dir.path().join("five.safetensors");
        Tensor::write_safetensors(&contiguous(net(Head::Normed, 5).named_variables()), &path).unwrap();
        let err = format!("{:#}", load_state_dict(&net(Head::Normed, 4), &path).unwrap_err());
        assert!(err.contains("`linear.weight` is [64, 5] in the file, [64, 4] in the network"), "{err}");

        let err = format!("{:#}", load_state_dict(&net(Head::Normed, 4), Path::new("ckpt.pth.tar")).unwrap_err());
        assert!(err.contains("scripts/torch_to_safetensors.py ckpt.pth.tar"), "{err}");
    }
}

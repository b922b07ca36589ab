//! The network of a run with its variables in two stores, backbone and classifier, so stage 2
//! can freeze one; saving and loading by stable names.
use super::checkpoint;
use crate::config::RunSpec;
use crate::models::Network;
use anyhow::{Context as _, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Tensor};

pub struct Model {
    pub backbone: nn::VarStore,
    pub head: nn::VarStore,
    pub net: Network,
}

impl Model {
    pub fn new(spec: &RunSpec, num_classes: usize, device: Device) -> Model {
        let backbone = nn::VarStore::new(device);
        let head = nn::VarStore::new(device);
        let net = Network::new(&backbone.root(), &head.root(), &spec.model, num_classes as i64);
        Model { backbone, head, net }
    }

    /// All variables (parameters and BatchNorm statistics) by stable, prefixed names.
    pub fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (prefix, vs) in [("backbone.", &self.backbone), ("head.", &self.head)] {
            for (name, t) in vs.variables() {
                out.push((format!("{prefix}{name}"), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Copy stored tensors into this model's variables; every variable must be present.
    pub fn load_named(&self, named: &[(String, Tensor)]) -> Result<()> {
        let stored: HashMap<&str, &Tensor> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        tch::no_grad(|| -> Result<()> {
            for (name, mut var) in self.named_variables() {
                let src = stored.get(name.as_str()).with_context(|| format!("stored weights lack `{name}`"))?;
                var.copy_(&src.to_device(var.device()));
            }
            Ok(())
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        checkpoint::write_atomic(path, &self.named_variables())
    }

    pub fn load(&self, path: &Path) -> Result<()> {
        let named = Tensor::read_safetensors(path).with_context(|| format!("reading weights {}", path.display()))?;
        self.load_named(&named)
    }
}

/// Trainable tensors sorted by name, so optimiser state lines up across processes.
pub fn trainable(vs: &nn::VarStore) -> Vec<Tensor> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, t)| t).collect()
}

//! Stage 2's classifier re-balancing methods on the frozen backbone (Kang et al. 2020;
//! MiSLAS, Zhong et al. 2021). Each [`Rebalance`] variant owns its settings; `prepare` turns it
//! into a [`Rebalancer`]: the tensors stage 2 trains (with their learning-rate factors), any
//! tensors it adds to the model (LWS's per-class scales), and its output on the head's output.
//!
//! - `crt`: re-train the classifier (from the stage-1 one or re-initialised) at
//!   `lr * classifier_lr_factor`.
//! - `lws`: learnable weight scaling: one scale per class `s_j` (init 1) on the frozen classifier,
//!   output `s_j o_j`.
//! - `tau_norm`: `w_j / ||w_j||^tau` post hoc, no training.
//! - `crt_lws`: MiSLAS's stage 2: the classifier at `lr * classifier_lr_factor` and the per-class
//!   scales at `lr`, trained together.
use crate::models::{trainable, Network};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

crate::registry::tagged_settings! {
    /// The re-balancing method of stage 2, chosen by `method` in `stage2.rebalance`. One line
    /// per method registers it (its name, defaults, manifest schema and merge rules).
    #[serde(tag = "method", rename_all = "snake_case")]
    pub enum Rebalance by "method", name, names {
        Crt(Crt),
        Lws(Lws),
        TauNorm(TauNorm),
        CrtLws(Crt),
    }
}

impl Default for Rebalance {
    fn default() -> Self {
        Rebalance::Crt(Crt::default())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Crt {
    pub init: ClassifierInit,
    /// The classifier's learning rate is `lr * classifier_lr_factor` (MiSLAS's `lr_factor`).
    pub classifier_lr_factor: f64,
}

impl Default for Crt {
    fn default() -> Self {
        Crt { init: ClassifierInit::Finetune, classifier_lr_factor: 1.0 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lws {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TauNorm {
    pub tau: f64,
}

impl Default for TauNorm {
    fn default() -> Self {
        TauNorm { tau: 1.0 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierInit {
    /// Start from the stage-1 classifier (released GCL code).
    #[default]
    Finetune,
    /// Re-initialise the classifier (Kang et al. 2020).
    Reinit,
}

/// A prepared re-balancing method (module docs).
pub struct Rebalancer {
    /// LWS's per-class scales `[C]`, if the method has them.
    scale: Option<Tensor>,
    params: Vec<Tensor>,
    lr_factors: Vec<f64>,
    trains: bool,
}

/// Name of the LWS scales in checkpoints and stored weights.
const SCALE: &str = "lws.scale";

impl Rebalance {
    /// Set up the classifier of `net` (its backbone already frozen) for this method.
    pub fn prepare(&self, net: &mut Network, device: Device) -> Rebalancer {
        let classes = net.num_classes();
        let scales = || Tensor::ones([classes], (Kind::Float, device)).set_requires_grad(true);
        match self {
            Rebalance::Crt(c) => {
                c.init.apply(net);
                let params = trainable(&net.head_vars);
                Rebalancer { scale: None, lr_factors: vec![c.classifier_lr_factor; params.len()], params, trains: true }
            }
            Rebalance::CrtLws(c) => {
                c.init.apply(net);
                let mut params = trainable(&net.head_vars);
                let mut lr_factors = vec![c.classifier_lr_factor; params.len()];
                let scale = scales();
                params.push(scale.shallow_clone());
                lr_factors.push(1.0);
                Rebalancer { scale: Some(scale), params, lr_factors, trains: true }
            }
            Rebalance::Lws(_) => {
                net.head_vars.freeze();
                let scale = scales();
                Rebalancer {
                    params: vec![scale.shallow_clone()],
                    lr_factors: vec![1.0],
                    scale: Some(scale),
                    trains: true,
                }
            }
            Rebalance::TauNorm(t) => {
                net.head_vars.freeze();
                net.tau_normalize(t.tau);
                Rebalancer { scale: None, params: vec![], lr_factors: vec![], trains: false }
            }
        }
    }
}

impl ClassifierInit {
    /// Re-initialise the classifier in place, in the head's own var store, so that it is
    /// what stage 2 trains and stores. (Engine 3 and earlier swapped in an empty store here, so a
    /// `reinit` stage 2 trained no classifier at all.)
    fn apply(self, net: &mut Network) {
        if self == ClassifierInit::Reinit {
            // A fresh classifier (Kang et al. 2020) instead of fine-tuning the stage-1 one.
            net.reset_head();
        }
    }
}

impl Rebalancer {
    /// The tensors to optimise and their learning-rate factors.
    pub fn params(&self) -> (Vec<Tensor>, Vec<f64>) {
        (self.params.iter().map(Tensor::shallow_clone).collect(), self.lr_factors.clone())
    }

    /// Whether the method trains at all (tau-norm does not).
    pub fn trains(&self) -> bool {
        self.trains
    }

    /// The classifier's output from the head's output.
    pub fn output(&self, head_out: Tensor) -> Tensor {
        match &self.scale {
            Some(s) => head_out * s.unsqueeze(0),
            None => head_out,
        }
    }

    /// The tensors the method adds to the model's, by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.scale.iter().map(|s| (SCALE.to_string(), s.shallow_clone())).collect()
    }

    /// Split stored tensors into the model's and restore the method's own.
    pub fn restore<'t>(&self, named: &'t [(String, Tensor)]) -> Result<Vec<&'t (String, Tensor)>> {
        let (own, model): (Vec<_>, Vec<_>) = named.iter().partition(|(n, _)| n == SCALE);
        match (&self.scale, own.first()) {
            (Some(s), Some((_, t))) => tch::no_grad(|| {
                s.shallow_clone().copy_(t);
            }),
            (Some(_), None) => anyhow::bail!("stored weights lack `{SCALE}`"),
            _ => {}
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Arch, Head, ModelSpec};

    fn model() -> Network {
        tch::manual_seed(4);
        Network::new(
            &ModelSpec { arch: Arch::ResnetSmall, head: Head::Linear, ..ModelSpec::default() },
            10,
            Device::Cpu,
        )
    }

    #[test]
    fn each_method_trains_what_it_owns() {
        let mut m = model();
        m.backbone_vars.freeze();
        let crt = Rebalance::Crt(Crt { init: ClassifierInit::Finetune, classifier_lr_factor: 0.5 })
            .prepare(&mut m, Device::Cpu);
        let (p, f) = crt.params();
        assert_eq!((p.len(), f), (2, vec![0.5, 0.5]), "linear head: weight and bias");
        assert!(crt.tensors().is_empty() && crt.trains());

        let mut m = model();
        let lws = Rebalance::Lws(Lws {}).prepare(&mut m, Device::Cpu);
        let (p, f) = lws.params();
        assert_eq!((p.len(), p[0].size(), f), (1, vec![10], vec![1.0]));
        assert!(trainable(&m.head_vars).is_empty(), "LWS freezes the classifier");
        let out = Tensor::randn([3, 10], (Kind::Float, Device::Cpu));
        assert!(lws.output(out.shallow_clone()).equal(&out), "scales start at 1");
        tch::no_grad(|| {
            let _ = lws.tensors()[0].1.shallow_clone().fill_(3.0);
        });
        assert!(lws.output(out.shallow_clone()).allclose(&(&out * 3.0), 1e-6, 1e-6, false));

        let mut m = model();
        let both = Rebalance::CrtLws(Crt { classifier_lr_factor: 0.2, ..Crt::default() }).prepare(&mut m, Device::Cpu);
        assert_eq!(both.params().1, vec![0.2, 0.2, 1.0]);

        let mut m = model();
        let tau = Rebalance::TauNorm(TauNorm { tau: 1.5 }).prepare(&mut m, Device::Cpu);
        assert!(!tau.trains() && tau.params().0.is_empty() && trainable(&m.head_vars).is_empty());
    }

    #[test]
    fn reinit_replaces_the_classifier_and_restore_round_trips() {
        let mut m = model();
        let before = m.named_variables().into_iter().find(|(n, _)| n == "head.linear.weight").unwrap().1.copy();
        let r = Rebalance::CrtLws(Crt { init: ClassifierInit::Reinit, ..Crt::default() }).prepare(&mut m, Device::Cpu);
        let after = m
            .named_variables()
            .into_iter()
            .find(|(n, _)| n == "head.linear.weight")
            .expect("the re-initialised classifier is stored")
            .1;
        assert!(!after.allclose(&before, 1e-6, 1e-6, false));
        // What stage 2 optimises is the re-initialised classifier itself (and the scales).
        let (params, _) = r.params();
        assert_eq!(params.len(), 3);
        assert!(
            params[0].is_set_to(&after) || params[1].is_set_to(&after),
            "the optimiser steps the stored classifier"
        );
        let stored = vec![
            (SCALE.to_string(), Tensor::full([10], 2.0, (Kind::Float, Device::Cpu))),
            ("other".to_string(), Tensor::zeros([1], (Kind::Float, Device::Cpu))),
        ];
        let rest = r.restore(&stored).unwrap();
        assert_eq!(rest.len(), 1);
        assert!(r.tensors()[0].1.equal(&Tensor::full([10], 2.0, (Kind::Float, Device::Cpu))));
        let err = r.restore(&stored[1..]).unwrap_err().to_string();
        assert!(err.contains("lws.scale"), "{err}");
    }

    #[test]
    fn settings_are_tagged_by_method() {
        let r: Rebalance = toml::from_str("method = 'tau_norm'\ntau = 1.5\n").unwrap();
        assert_eq!(r, Rebalance::TauNorm(TauNorm { tau: 1.5 }));
        let r: Rebalance = toml::from_str("method = 'crt_lws'\nclassifier_lr_factor = 0.5\n").unwrap();
        assert_eq!(r, Rebalance::CrtLws(Crt { classifier_lr_factor: 0.5, ..Crt::default() }));
        let err = toml::from_str::<Rebalance>("method = 'lws'\ntau = 1.5\n").unwrap_err().to_string();
        assert!(err.contains("tau"), "{err}");
    }
}

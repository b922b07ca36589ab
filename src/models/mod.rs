//! Networks: a backbone (CIFAR ResNet-32 / small, torchvision ResNet-50 / 152, optionally with
//! BBN's two branches) and a classifier head, built from `config::ModelSpec`.
//!
//! The backbone's variables live in one var store and the head's in another, so stage 2 can
//! freeze the backbone (`VarStore::freeze`) and the optimiser can take either set. An optimiser
//! must step only the variables with `requires_grad()`: tch keeps frozen variables in
//! `trainable_variables()`.
pub mod bbn;
pub mod heads;
pub mod resnet;
pub mod resnet_cifar;

use std::path::Path;

use anyhow::{bail, Context};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::config::{Arch, Head, ModelSpec};
use heads::{Classifier, LinearInit};
use resnet::ResNet;
use resnet_cifar::ResNetCifar;

#[derive(Debug)]
enum Backbone {
    Cifar(ResNetCifar),
    ImageNet(ResNet),
}

impl Backbone {
    fn trunk(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Backbone::Cifar(m) => m.trunk(x, train),
            Backbone::ImageNet(m) => m.trunk(x, train),
        }
    }

    fn last_block(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Backbone::Cifar(m) => m.last_block().forward_t(x, train),
            Backbone::ImageNet(m) => m.last_block().forward_t(x, train),
        }
    }

    fn dim(&self) -> i64 {
        match self {
            Backbone::Cifar(_) => ResNetCifar::FEATURE_DIM,
            Backbone::ImageNet(_) => ResNet::FEATURE_DIM,
        }
    }
}

/// Global average pooling `[B, C, H, W] -> [B, C]`.
fn pool(x: &Tensor) -> Tensor {
    x.mean_dim([2i64, 3].as_slice(), false, None::<tch::Kind>)
}

/// Backbone + classifier head.
#[derive(Debug)]
pub struct Network {
    backbone: Backbone,
    /// BBN's re-balancing branch (a twin of the backbone's last block), if `spec.bbn`.
    rb_block: Option<Box<dyn ModuleT>>,
    head: Classifier,
    head_kind: Head,
    head_name: &'static str,
    linear_init: LinearInit,
}

impl Network {
    /// Build under two var-store paths so stage 2 can freeze the backbone: the backbone's
    /// variables under `backbone_vs`, the classifier's under `head_vs` (as `linear.*` for the
    /// CIFAR nets, the released code's name, and `fc.*` for the torchvision nets).
    pub fn new(backbone_vs: &nn::Path, head_vs: &nn::Path, spec: &ModelSpec, num_classes: i64) -> Network {
        let (backbone, head_name, linear_init) = match spec.arch {
            Arch::Resnet32 => (Backbone::Cifar(ResNetCifar::new(backbone_vs, 5)), "linear", LinearInit::KaimingNormal),
            Arch::ResnetSmall => (Backbone::Cifar(ResNetCifar::new(backbone_vs, 1)), "linear", LinearInit::KaimingNormal),
            Arch::Resnet50 => (Backbone::ImageNet(ResNet::new(backbone_vs, ResNet::RESNET50)), "fc", LinearInit::TorchDefault),
            Arch::Resnet152 => (Backbone::ImageNet(ResNet::new(backbone_vs, ResNet::RESNET152)), "fc", LinearInit::TorchDefault),
        };
        let rb_block: Option<Box<dyn ModuleT>> = spec.bbn.then(|| {
            let p = backbone_vs / "rb_block";
            match &backbone {
                Backbone::Cifar(m) => Box::new(m.twin_of_last_block(&p)) as Box<dyn ModuleT>,
                Backbone::ImageNet(m) => Box::new(m.twin_of_last_block(&p)) as Box<dyn ModuleT>,
            }
        });
        let dim = backbone.dim() * if spec.bbn { 2 } else { 1 };
        let head = Classifier::new(&(head_vs / head_name), spec.head, dim, num_classes, linear_init);
        Network { backbone, rb_block, head, head_kind: spec.head, head_name, linear_init }
    }

    /// Pooled features `[B, D]` (BBN: both branches on `x`, concatenated, `D` = twice the
    /// backbone's width).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let t = self.backbone.trunk(x, train);
        let f = pool(&self.backbone.last_block(&t, train));
        match &self.rb_block {
            Some(rb) => Tensor::cat(&[f, pool(&rb.forward_t(&t, train))], 1),
            None => f,
        }
    }

    /// BBN's cumulative-learning features: the conventional branch on `x_conv`, the
    /// re-balancing branch on `x_rebal`, mixed by `alpha` (see `bbn` for the training loop).
    /// Panics if the network was not built with `bbn = true`.
    pub fn bbn_features(&self, x_conv: &Tensor, x_rebal: &Tensor, alpha: f64, train: bool) -> Tensor {
        let rb = self.rb_block.as_ref().expect("bbn_features needs a network built with model.bbn = true");
        let f_c = pool(&self.backbone.last_block(&self.backbone.trunk(x_conv, train), train));
        let f_r = pool(&rb.forward_t(&self.backbone.trunk(x_rebal, train), train));
        bbn::mix_branches(&f_c, &f_r, alpha)
    }

    /// Head output: cosine in [-1, 1] for `Head::Normed` (unscaled; the loss applies `scale`),
    /// raw logits for `Head::Linear`.
    pub fn logits(&self, features: &Tensor) -> Tensor {
        self.head.forward(features)
    }

    pub fn feature_dim(&self) -> i64 {
        self.backbone.dim() * if self.rb_block.is_some() { 2 } else { 1 }
    }

    pub fn num_classes(&self) -> i64 {
        self.head.num_classes()
    }

    /// Load ImageNet-pretrained torchvision weights (safetensors, torchvision names; see
    /// `resnet` for the conversion one-liner) into the backbone. `fc.*` and
    /// `num_batches_tracked` entries are ignored; BBN's `rb_block.*` is initialised from the
    /// backbone's last block.
    pub fn load_pretrained(&self, backbone_vs: &nn::VarStore, path: &Path) -> anyhow::Result<()> {
        let tensors = Tensor::read_safetensors(path)
            .with_context(|| format!("reading pretrained weights {} (a safetensors file)", path.display()))?;
        let file: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut vars: Vec<(String, Tensor)> = backbone_vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in vars {
            let source_name = match (name.strip_prefix("rb_block."), &self.backbone) {
                (Some(rest), Backbone::ImageNet(m)) => format!("{}.{rest}", m.last_block_name()),
                _ => name.clone(),
            };
            let Some(src) = file.get(&source_name) else {
                bail!(
                    "pretrained weights {}: no tensor `{source_name}` (needed by this {} backbone); \
                     the file must hold a torchvision state_dict of the same architecture",
                    path.display(),
                    arch_name(&self.backbone)
                );
            };
            if src.size() != var.size() {
                bail!(
                    "pretrained weights {}: tensor `{source_name}` has shape {:?}, the model expects {:?}",
                    path.display(),
                    src.size(),
                    var.size()
                );
            }
            tch::no_grad(|| {
                var.shallow_clone().copy_(&src.to_kind(var.kind()).to_device(var.device()));
            });
        }
        Ok(())
    }

    /// Replace the classifier by a freshly initialised one under `head_vs` (cRT "reinit"). With
    /// an unchanged class count the existing head variables are re-initialised in place (so the
    /// head var store holds no stale copies); otherwise new ones are created.
    pub fn reset_head(&mut self, head_vs: &nn::Path, num_classes: i64) {
        let dim = self.feature_dim();
        let scratch = nn::VarStore::new(head_vs.device());
        let fresh = Classifier::new(&(scratch.root() / self.head_name), self.head_kind, dim, num_classes, self.linear_init);
        if self.head.same_shape(&fresh) {
            self.head.copy_values_from(&fresh);
        } else {
            self.head = Classifier::new(&(head_vs / self.head_name), self.head_kind, dim, num_classes, self.linear_init);
        }
    }

    /// tau-normalisation (Kang et al. 2020): from now on the classifier uses
    /// `w_j / ||w_j||^tau`. Linear head: the weights are replaced in place (applying it twice
    /// compounds). Normed head: the cosine head normalises `w_j` by `||w_j||^tau` instead of
    /// `||w_j||` (tau = 1 is the plain cosine head; on a cosine classifier tau-norm would
    /// otherwise be a no-op).
    pub fn tau_normalize(&self, tau: f64) {
        self.head.tau_normalize(tau);
    }

    /// LWS: create a learnable per-class scale vector (`lws_scale`, init 1) under `path`, which
    /// from now on multiplies the head output, and return it (the only tensor to optimise).
    pub fn lws_scales(&mut self, path: &nn::Path) -> Tensor {
        self.head.enable_lws(path)
    }
}

fn arch_name(b: &Backbone) -> &'static str {
    match b {
        Backbone::Cifar(_) => "CIFAR ResNet",
        Backbone::ImageNet(_) => "torchvision ResNet",
    }
}

/// MisLAS stage 2: make the BatchNorm shift (bias/beta) parameters of a frozen backbone
/// trainable again (set requires_grad on exactly those variables). A BatchNorm shift is a
/// `*.bias` variable with a `*.running_mean` sibling (the backbones' convolutions have no bias).
pub fn unfreeze_bn_shift(backbone_vs: &nn::VarStore) {
    let vars = backbone_vs.variables();
    for (name, var) in &vars {
        if let Some(prefix) = name.strip_suffix(".bias") {
            if vars.contains_key(&format!("{prefix}.running_mean")) {
                let _ = var.set_requires_grad(true);
            }
        }
    }
}

//! Networks: a backbone (CIFAR ResNet-32 / small, torchvision ResNet-50 / 152, optionally with
//! BBN's two branches) and a classifier head, built from `models::spec::ModelSpec`.
//!
//! A [`Network`] owns its variables in two var stores, the backbone's and the classifier's, so
//! stage 2 can freeze the backbone (`VarStore::freeze`) and the optimiser can take either set. An
//! optimiser must step only the variables with `requires_grad()` ([`trainable`]): tch keeps
//! frozen variables in `trainable_variables()`.
pub mod bbn;
pub mod heads;
pub mod import;
pub mod parts;
pub mod precision;
pub mod resnet;
pub mod resnet_cifar;
pub mod spec;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use heads::{Classifier, LinearInit};
use parts::Frozen;
pub use precision::Precision;
use resnet::{Bottleneck, BottleneckShape, ConvInit, ResNet};
use resnet_cifar::ResNetCifar;
pub use spec::{Arch, Head, ModelSpec};

#[derive(Debug)]
enum Backbone {
    Cifar(ResNetCifar),
    ImageNet(ResNet),
}

impl Backbone {
    fn trunk(&self, x: &Tensor, train: bool, frozen: &Frozen) -> Tensor {
        match self {
            Backbone::Cifar(m) => m.trunk(x, train, frozen),
            Backbone::ImageNet(m) => m.trunk(x, train, frozen),
        }
    }

    fn last_block(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Backbone::Cifar(m) => m.last_block().forward_t(x, train),
            Backbone::ImageNet(m) => m.last_block().forward_t(x, train),
        }
    }

    fn last_block_name(&self) -> &str {
        match self {
            Backbone::Cifar(m) => m.last_block_name(),
            Backbone::ImageNet(m) => m.last_block_name(),
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

/// Backbone + classifier head, with their variables.
#[derive(Debug)]
pub struct Network {
    /// The backbone's variables (BBN's re-balancing branch included).
    pub backbone_vars: nn::VarStore,
    /// The classifier's variables (`linear.*` for the CIFAR nets, the released code's name, and
    /// `fc.*` for the torchvision nets).
    pub head_vars: nn::VarStore,
    backbone: Backbone,
    /// BBN's re-balancing branch (a twin of the backbone's last block), if `spec.bbn`.
    rb_block: Option<Box<dyn ModuleT>>,
    /// `model.added_block`: the released Places `Block` (`layer5`) after the backbone.
    added_block: Option<Bottleneck>,
    /// `model.freeze`: parts without gradients whose BatchNorm runs in eval mode.
    frozen: Frozen,
    head: Classifier,
    head_kind: Head,
    head_name: &'static str,
    linear_init: LinearInit,
    /// Convolutions in channels-last (NHWC) memory order: on CPU, where oneDNN convolves NHWC
    /// without reordering every input and weight (measured: ResNet-32 step 30% faster here).
    channels_last: bool,
    /// `model.precision`: the forward passes' numbers (`precision`).
    precision: Precision,
    device: Device,
}

/// `x` (`[B, C, H, W]`) with channels-last strides (the values unchanged); no copy when it has
/// them already.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    if is_channels_last(x) {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-d tensor is laid out NHWC (stride 1 along channels).
pub fn is_channels_last(x: &Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4 && stride[1] == 1 && stride[3] == size[1] && stride[2] == size[1] * size[3]
}

impl Network {
    /// A freshly initialised network on `device` (its initialisation draws from libtorch's
    /// generator).
    pub fn new(spec: &ModelSpec, num_classes: i64, device: Device) -> Network {
        let backbone_vars = nn::VarStore::new(device);
        let head_vars = nn::VarStore::new(device);
        let (backbone_vs, head_vs) = (&backbone_vars.root(), &head_vars.root());
        let (backbone, head_name, linear_init) = match spec.arch {
            Arch::Resnet32 => (Backbone::Cifar(ResNetCifar::new(backbone_vs, 5)), "linear", LinearInit::KaimingNormal),
            Arch::ResnetSmall => {
                (Backbone::Cifar(ResNetCifar::new(backbone_vs, 1)), "linear", LinearInit::KaimingNormal)
            }
            Arch::Resnet50 | Arch::Resnet152 | Arch::ResnetTiny => {
                // `model.drop_blocks` shortens the last stage (the released resnet152_fe).
                let mut layers = [0usize; 4];
                layers.copy_from_slice(&parts::stage_blocks(spec.arch, spec.drop_blocks));
                (Backbone::ImageNet(ResNet::new(backbone_vs, layers)), "fc", LinearInit::TorchDefault)
            }
        };
        let added_block = spec.added_block.then(|| {
            let shape = BottleneckShape {
                c_in: ResNet::FEATURE_DIM,
                planes: ResNet::FEATURE_DIM / Bottleneck::EXPANSION,
                stride: 1,
            };
            Bottleneck::with_init(&(backbone_vs / parts::ADDED_BLOCK), shape, ConvInit::TorchDefault)
        });
        // BBN's classifier is a plain `nn.Linear(2D, C)` with PyTorch's default init (the
        // released BBN `network.py`), not the CIFAR code's Kaiming-normal `_weights_init`.
        let linear_init = if spec.bbn { LinearInit::TorchDefault } else { linear_init };
        let rb_block: Option<Box<dyn ModuleT>> = spec.bbn.then(|| {
            let p = backbone_vs / "rb_block";
            match &backbone {
                Backbone::Cifar(m) => Box::new(m.twin_of_last_block(&p)) as Box<dyn ModuleT>,
                Backbone::ImageNet(m) => Box::new(m.twin_of_last_block(&p)) as Box<dyn ModuleT>,
            }
        });
        let dim = backbone.dim() * if spec.bbn { 2 } else { 1 };
        let head = Classifier::new(&(head_vs / head_name), spec.head, dim, num_classes, linear_init);
        let frozen = Frozen::new(&spec.freeze);
        for (name, var) in backbone_vars.variables() {
            if frozen.covers(&name) {
                let _ = var.set_requires_grad(false);
            }
        }
        let channels_last = device == Device::Cpu;
        if channels_last {
            // Same values, NHWC strides; later copies into the variables (resume, imports) keep them.
            tch::no_grad(|| {
                for (_, mut var) in backbone_vars.variables() {
                    if var.dim() == 4 {
                        let nhwc = to_channels_last(&var);
                        var.set_data(&nhwc);
                    }
                }
            });
        }
        Network {
            backbone_vars,
            head_vars,
            backbone,
            rb_block,
            added_block,
            frozen,
            head,
            head_kind: spec.head,
            head_name,
            linear_init,
            channels_last,
            precision: spec.precision,
            device,
        }
    }

    /// The images as the convolutions want them ([`Network::channels_last`]).
    fn input(&self, x: &Tensor) -> Tensor {
        if self.channels_last {
            to_channels_last(x)
        } else {
            x.shallow_clone()
        }
    }

    /// All variables (parameters and BatchNorm statistics) by stable, prefixed names.
    pub fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (prefix, vs) in [("backbone.", &self.backbone_vars), ("head.", &self.head_vars)] {
            for (name, t) in vs.variables() {
                out.push((format!("{prefix}{name}"), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Copy stored tensors into this network's variables; every variable must be present.
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

    /// Load weights stored by name (a run's `model.safetensors`).
    pub fn load(&self, path: &Path) -> Result<()> {
        let named = Tensor::read_safetensors(path).with_context(|| format!("reading weights {}", path.display()))?;
        self.load_named(&named)
    }

    /// Pooled features `[B, D]` (BBN: both branches on `x`, concatenated, `D` = twice the
    /// backbone's width).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.precision.forward(self.device, || self.features_here(x, train))
    }

    /// [`Network::features`] at whatever precision the caller set.
    fn features_here(&self, x: &Tensor, train: bool) -> Tensor {
        let t = self.backbone.trunk(&self.input(x), train, &self.frozen);
        let mut last = self.backbone.last_block(&t, self.frozen.train(self.backbone.last_block_name(), train));
        if let Some(block) = &self.added_block {
            last = block.forward_t(&last, self.frozen.train(parts::ADDED_BLOCK, train));
        }
        let f = pool(&last);
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
        // `parts::check` keeps BBN apart from freezing and the added block.
        let none = Frozen::default();
        self.precision.forward(self.device, || {
            let f_c = pool(&self.backbone.last_block(&self.backbone.trunk(&self.input(x_conv), train, &none), train));
            let f_r = pool(&rb.forward_t(&self.backbone.trunk(&self.input(x_rebal), train, &none), train));
            bbn::mix_branches(&f_c, &f_r, alpha)
        })
    }

    /// Head output: cosine in [-1, 1] for `Head::Normed` (unscaled; the loss applies `scale`),
    /// raw logits for `Head::Linear`.
    pub fn logits(&self, features: &Tensor) -> Tensor {
        self.precision.forward(self.device, || self.head.forward(features))
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
    pub fn load_pretrained(&self, path: &Path) -> Result<()> {
        let tensors = Tensor::read_safetensors(path)
            .with_context(|| format!("reading pretrained weights {} (a safetensors file)", path.display()))?;
        let file: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut vars: Vec<(String, Tensor)> = self.backbone_vars.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in vars {
            if name.starts_with(&format!("{}.", parts::ADDED_BLOCK)) && self.added_block.is_some() {
                continue; // the added block is never pretrained (the released `Block`)
            }
            let source_name = match name.strip_prefix("rb_block.") {
                Some(rest) => format!("{}.{rest}", self.backbone.last_block_name()),
                None => name.clone(),
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

    /// Re-initialise the classifier in place (cRT "reinit"): fresh values drawn as at
    /// construction, written into the existing head variables (so they stay what the head var
    /// store holds, trains and saves).
    pub fn reset_head(&mut self) {
        let scratch = nn::VarStore::new(self.head_vars.device());
        let (dim, classes) = (self.feature_dim(), self.num_classes());
        let fresh = Classifier::new(&(scratch.root() / self.head_name), self.head_kind, dim, classes, self.linear_init);
        self.head.copy_values_from(&fresh);
    }

    /// tau-normalisation (Kang et al. 2020): from now on the classifier uses
    /// `w_j / ||w_j||^tau`. Linear head: the weights are replaced in place (applying it twice
    /// compounds). Normed head: the cosine head normalises `w_j` by `||w_j||^tau` instead of
    /// `||w_j||` (tau = 1 is the plain cosine head; on a cosine classifier tau-norm would
    /// otherwise be a no-op).
    pub fn tau_normalize(&self, tau: f64) {
        self.head.tau_normalize(tau);
    }
}

/// Trainable tensors of a var store sorted by name, so optimiser state lines up across processes.
pub fn trainable(vs: &nn::VarStore) -> Vec<Tensor> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, t)| t).collect()
}

fn arch_name(b: &Backbone) -> &'static str {
    match b {
        Backbone::Cifar(_) => "CIFAR ResNet",
        Backbone::ImageNet(_) => "torchvision ResNet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn build(arch: Arch, head: Head, bbn: bool, classes: i64) -> Network {
        Network::new(&ModelSpec { arch, head, bbn, ..ModelSpec::default() }, classes, Device::Cpu)
    }

    fn trainable_count(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// Counts printed by `python scripts/resnet_cifar.py` for the released PyTorch definition.
    #[test]
    fn cifar_parameter_counts_equal_pytorch_definition() {
        let cases = [
            (Arch::Resnet32, Head::Linear, 10, 464_154),
            (Arch::Resnet32, Head::Normed, 10, 464_144),
            (Arch::Resnet32, Head::Linear, 100, 470_004),
            (Arch::ResnetSmall, Head::Linear, 10, 75_290),
        ];
        for (arch, head, classes, expected) in cases {
            let net = build(arch, head, false, classes);
            assert_eq!(
                trainable_count(&net.backbone_vars) + trainable_count(&net.head_vars),
                expected,
                "{arch:?} {head:?} {classes}"
            );
        }
    }

    #[test]
    fn resnet32_shapes_and_cosine_range() {
        tch::manual_seed(0);
        let net = build(Arch::Resnet32, Head::Normed, false, 10);
        let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
        let f = net.features(&x, true);
        assert_eq!(f.size(), vec![3, 64]);
        assert_eq!(net.feature_dim(), 64);
        let cos = net.logits(&f);
        assert_eq!(cos.size(), vec![3, 10]);
        assert!(cos.abs().max().double_value(&[]) <= 1.0 + 1e-6);
        // Anchors start at unit norm (uniform(-1, 1), then renormalised per class).
        let w = net.head_vars.variables()["linear.weight"].shallow_clone();
        assert_eq!(w.size(), vec![64, 10]);
        let norms = w.norm_scalaropt_dim(2.0, [0], false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    }

    fn fixture_keys(arch: &str) -> Vec<(String, Vec<i64>)> {
        let path = format!("{}/tests/fixtures/torchvision_{arch}_keys.txt", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .filter(|l| !l.contains("num_batches_tracked"))
            .map(|l| {
                let (name, shape) = l.split_once(' ').unwrap();
                (name.to_string(), shape.split('x').map(|d| d.parse().unwrap()).collect())
            })
            .collect()
    }

    fn our_keys(bvs: &nn::VarStore, hvs: &nn::VarStore) -> Vec<(String, Vec<i64>)> {
        let mut keys: Vec<(String, Vec<i64>)> =
            bvs.variables().iter().chain(hvs.variables().iter()).map(|(k, v)| (k.clone(), v.size())).collect();
        keys.sort();
        keys
    }

    /// Names and shapes equal torchvision's state_dict (fixture written by
    /// scripts/torchvision_keys.py), except `num_batches_tracked`, a counter tch does not keep.
    #[test]
    fn resnet50_and_152_match_torchvision_state_dict() {
        for (arch, name) in [(Arch::Resnet50, "resnet50"), (Arch::Resnet152, "resnet152")] {
            let net = build(arch, Head::Linear, false, 1000);
            let mut expected = fixture_keys(name);
            expected.sort();
            assert_eq!(our_keys(&net.backbone_vars, &net.head_vars), expected, "{name}");
        }
    }

    #[test]
    fn resnet50_forward_224_gives_1000_logits() {
        tch::manual_seed(0);
        let net = build(Arch::Resnet50, Head::Linear, false, 1000);
        let x = Tensor::randn([1, 3, 224, 224], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| net.logits(&net.features(&x, false)));
        assert_eq!(out.size(), vec![1, 1000]);
        assert_eq!(net.feature_dim(), 2048);
    }

    #[test]
    fn bbn_branches_mix_and_eval_concatenates() {
        tch::manual_seed(0);
        let net = build(Arch::ResnetSmall, Head::Linear, true, 10);
        assert_eq!(net.feature_dim(), 128);
        assert!(net.backbone_vars.variables().contains_key("rb_block.conv1.weight"));
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let eval = net.features(&x, false);
        assert_eq!(eval.size(), vec![2, 128]);
        // alpha = 1/2 on the same input is the plain concatenation used at test time.
        let half = net.bbn_features(&x, &x, 0.5, false);
        assert!(eval.allclose(&half, 1e-6, 1e-6, false));
        // alpha = 1: only the conventional branch (on x) survives, doubled.
        let one = net.bbn_features(&x, &y, 1.0, false);
        assert!(one.narrow(1, 0, 64).allclose(&(eval.narrow(1, 0, 64) * 2.0), 1e-5, 1e-6, false));
        assert_eq!(one.narrow(1, 64, 64).abs().max().double_value(&[]), 0.0);
        assert_eq!(bbn::cumulative_alpha(0, 200), 1.0);
        assert!((bbn::cumulative_alpha(100, 200) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn tau_normalize_linear_and_cosine() {
        tch::manual_seed(1);
        let net = build(Arch::ResnetSmall, Head::Linear, false, 5);
        let w = net.head_vars.variables()["linear.weight"].shallow_clone();
        let before = w.norm_scalaropt_dim(2.0, [1], false);
        net.tau_normalize(0.5);
        let after = w.norm_scalaropt_dim(2.0, [1], false);
        // ||w / ||w||^tau|| = ||w||^(1 - tau).
        assert!(after.allclose(&before.pow_tensor_scalar(0.5), 1e-5, 1e-6, false));

        let net = build(Arch::ResnetSmall, Head::Normed, false, 5);
        let w = net.head_vars.variables()["linear.weight"].shallow_clone();
        tch::no_grad(|| {
            let _ = w.shallow_clone().narrow(1, 0, 1).fill_(2.0); // anchor 0: norm 16 (64 entries of 2)
        });
        let f = Tensor::randn([4, 64], (Kind::Float, Device::Cpu));
        let plain = net.logits(&f);
        net.tau_normalize(0.0);
        let unnormalised = net.logits(&f);
        // tau = 0: anchors not normalised at all, so class 0's output is 16 times its cosine.
        assert!(unnormalised.narrow(1, 0, 1).allclose(&(plain.narrow(1, 0, 1) * 16.0), 1e-4, 1e-5, false));
        net.tau_normalize(1.0);
        assert!(net.logits(&f).allclose(&plain, 1e-6, 1e-6, false));
    }

    #[test]
    fn reset_head_reinitialises_in_place() {
        tch::manual_seed(2);
        let mut net = build(Arch::ResnetSmall, Head::Linear, false, 10);
        let w = net.head_vars.variables()["linear.weight"].shallow_clone();
        let before = w.copy();
        net.reset_head();
        assert_eq!(net.head_vars.variables().len(), 2, "no stale head copies");
        assert!(!w.allclose(&before, 1e-6, 1e-6, false), "the stored variable itself is re-initialised");
    }

    #[test]
    fn named_variables_round_trip_through_a_file() {
        tch::manual_seed(5);
        let dir = tempfile::tempdir().unwrap();
        let (a, b) =
            (build(Arch::ResnetSmall, Head::Normed, false, 4), build(Arch::ResnetSmall, Head::Normed, false, 4));
        let path = dir.path().join("w.safetensors");
        let stored = a.named_variables();
        // Contiguous copies: on CPU the convolution weights are channels-last (safetensors wants
        // plain row-major; `checkpoint::write_atomic` does the same).
        let named: Vec<(&str, Tensor)> = stored.iter().map(|(n, t)| (n.as_str(), t.contiguous())).collect();
        Tensor::write_safetensors(&named, &path).unwrap();
        b.load(&path).unwrap();
        for ((na, ta), (nb, tb)) in a.named_variables().iter().zip(b.named_variables().iter()) {
            assert_eq!(na, nb);
            assert!(ta.equal(tb), "{na}");
        }
        assert!(a.named_variables().iter().any(|(n, _)| n == "head.linear.weight"));
        let err = build(Arch::Resnet32, Head::Normed, false, 4).load(&path).unwrap_err().to_string();
        assert!(err.contains("stored weights lack"), "{err}");
    }

    #[test]
    fn load_pretrained_round_trip_bbn_twin_and_errors() {
        tch::manual_seed(3);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("small.safetensors");
        let src = build(Arch::ResnetSmall, Head::Linear, false, 10);
        let named: Vec<(String, Tensor)> =
            src.backbone_vars.variables().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
        Tensor::write_safetensors(&named, &file).unwrap();

        let dst = build(Arch::ResnetSmall, Head::Linear, true, 10);
        dst.load_pretrained(&file).unwrap();
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let want = src.features(&x, false);
        let got = dst.features(&x, false);
        // Both BBN branches start as the pretrained last block.
        assert!(got.narrow(1, 0, 64).allclose(&want, 1e-5, 1e-6, false));
        assert!(got.narrow(1, 64, 64).allclose(&want, 1e-5, 1e-6, false));

        let r32 = build(Arch::Resnet32, Head::Linear, false, 10);
        let err = r32.load_pretrained(&file).unwrap_err().to_string();
        assert!(err.contains("small.safetensors") && err.contains("layer1.1."), "{err}");

        let missing = dir.path().join("absent.safetensors");
        let err = format!("{:#}", src.load_pretrained(&missing).unwrap_err());
        assert!(err.contains("absent.safetensors"), "{err}");
    }
}

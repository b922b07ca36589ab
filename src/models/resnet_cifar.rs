//! The CIFAR ResNets of He et al. (2016, §4.2) as used by LDAM, BBN and GCL: a 3x3 stem with 16
//! channels, three stages of basic blocks (16, 32, 64 channels; the 2nd and 3rd halve the
//! resolution), global average pooling to a 64-d feature.
//!
//! The shortcut is "option A" (parameter-free): where a block changes the resolution or the
//! width, the input is subsampled with stride 2 (`x[:, :, ::2, ::2]`) and padded with zero
//! channels. Weights follow the released code's `_weights_init`: Kaiming-normal (fan-in, ReLU
//! gain) for every convolution; BatchNorm scale 1, shift 0.
//!
//! Variable names follow the released PyTorch definition (`conv1`, `bn1`, `layer1.0.conv1`, ...;
//! see `scripts/resnet_cifar.py`), so its parameter count and state-dict keys match ours.
use super::parts::Frozen;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Kaiming-normal, fan-in, ReLU gain: `torch.nn.init.kaiming_normal_` with its defaults.
pub(crate) const KAIMING_NORMAL_FAN_IN: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// `nn.BatchNorm2d` as PyTorch builds it: scale 1, shift 0 (running mean 0, var 1, momentum 0.1,
/// eps 1e-5). tch's `BatchNormConfig::default()` starts the scale uniform in [0, 1) instead,
/// which every model here must not inherit.
pub(crate) fn batch_norm2d(p: nn::Path, channels: i64) -> BatchNorm2d {
    let cfg = nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        momentum: BatchNorm2d::MOMENTUM,
        eps: BatchNorm2d::EPS,
        ..Default::default()
    };
    BatchNorm2d(nn::batch_norm2d(p, channels, cfg))
}

/// tch's BatchNorm, synchronised over the ranks of a data-parallel run that asks for it
/// (`data_parallel.batchnorm = "sync"`, [`crate::distributed`]) when training; per-rank
/// statistics otherwise, as every single-process run.
#[derive(Debug)]
pub(crate) struct BatchNorm2d(nn::BatchNorm);

impl BatchNorm2d {
    const MOMENTUM: f64 = 0.1;
    const EPS: f64 = 1e-5;
}

impl nn::ModuleT for BatchNorm2d {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match crate::distributed::current() {
            Some(group) if train && group.syncs_batch_norm() => {
                group.batch_norm(xs, &self.0, Self::MOMENTUM, Self::EPS)
            }
            _ => self.0.forward_t(xs, train),
        }
    }
}

fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig { stride, padding: 1, bias: false, ws_init: KAIMING_NORMAL_FAN_IN, ..Default::default() };
    nn::conv2d(p, c_in, c_out, 3, cfg)
}

/// Geometry of one basic block; kept so BBN can build a twin of the last block.
#[derive(Clone, Copy, Debug)]
pub struct BlockShape {
    pub c_in: i64,
    pub planes: i64,
    pub stride: i64,
}

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Debug)]
pub struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: BatchNorm2d,
    conv2: nn::Conv2D,
    bn2: BatchNorm2d,
    shape: BlockShape,
}

impl BasicBlock {
    pub fn new(p: &nn::Path, shape: BlockShape) -> BasicBlock {
        let BlockShape { c_in, planes, stride } = shape;
        BasicBlock {
            conv1: conv3x3(p / "conv1", c_in, planes, stride),
            bn1: batch_norm2d(p / "bn1", planes),
            conv2: conv3x3(p / "conv2", planes, planes, 1),
            bn2: batch_norm2d(p / "bn2", planes),
            shape,
        }
    }

    /// Option A: stride-2 subsampling plus `planes / 4` zero channels on each side.
    fn shortcut(&self, x: &Tensor) -> Tensor {
        let BlockShape { c_in, planes, stride } = self.shape;
        if stride == 1 && c_in == planes {
            return x.shallow_clone();
        }
        let sub = x.slice(2, 0, None, 2).slice(3, 0, None, 2);
        let pad = planes / 4;
        sub.constant_pad_nd([0, 0, 0, 0, pad, pad])
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // ReLU in place (as torchvision's `ReLU(inplace=True)`): neither BatchNorm's nor the
        // sum's backward needs its output, and the values are the same; one buffer less each.
        let mut out = x.apply(&self.conv1).apply_t(&self.bn1, train);
        let out = out.relu_().apply(&self.conv2).apply_t(&self.bn2, train);
        let mut sum = out + self.shortcut(x);
        sum.relu_()
    }
}

/// CIFAR ResNet with `blocks_per_stage` basic blocks in each of the three stages
/// (5 gives ResNet-32, 1 gives the small CPU variant).
#[derive(Debug)]
pub struct ResNetCifar {
    conv1: nn::Conv2D,
    bn1: BatchNorm2d,
    /// All residual blocks in order (`layer1.0` ... `layer3.{n-1}`).
    blocks: Vec<BasicBlock>,
    /// Var-store name of each block (`layer1.0`, ...), for `model.freeze`.
    block_names: Vec<String>,
}

impl ResNetCifar {
    pub const FEATURE_DIM: i64 = 64;

    pub fn new(p: &nn::Path, blocks_per_stage: usize) -> ResNetCifar {
        let mut blocks = Vec::new();
        let mut block_names = Vec::new();
        let mut c_in = 16;
        for (stage, (planes, first_stride)) in [(16, 1), (32, 2), (64, 2)].into_iter().enumerate() {
            let layer = p / format!("layer{}", stage + 1);
            for i in 0..blocks_per_stage {
                let stride = if i == 0 { first_stride } else { 1 };
                blocks.push(BasicBlock::new(&(&layer / i), BlockShape { c_in, planes, stride }));
                block_names.push(format!("layer{}.{i}", stage + 1));
                c_in = planes;
            }
        }
        ResNetCifar { conv1: conv3x3(p / "conv1", 3, 16, 1), bn1: batch_norm2d(p / "bn1", 16), blocks, block_names }
    }

    /// Var-store name of the last block (`layer3.{n-1}`).
    pub fn last_block_name(&self) -> &str {
        self.block_names.last().expect("a CIFAR ResNet has at least one block")
    }

    /// Stem and every block but the last (the part BBN's two branches share); frozen parts run
    /// in eval mode.
    pub fn trunk(&self, x: &Tensor, train: bool, frozen: &Frozen) -> Tensor {
        let mut out = x.apply(&self.conv1).apply_t(&self.bn1, frozen.train("bn1", train));
        let _ = out.relu_();
        let n = self.blocks.len() - 1;
        for (block, name) in self.blocks[..n].iter().zip(&self.block_names) {
            out = out.apply_t(block, frozen.train(name, train));
        }
        out
    }

    pub fn last_block(&self) -> &BasicBlock {
        self.blocks.last().expect("a CIFAR ResNet has at least one block")
    }

    /// A fresh block with the geometry of the last one (BBN's re-balancing branch).
    pub fn twin_of_last_block(&self, p: &nn::Path) -> BasicBlock {
        BasicBlock::new(p, self.last_block().shape)
    }
}

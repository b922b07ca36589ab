//! ResNet-50 and ResNet-152 exactly as torchvision lays them out (ResNet v1.5: the stride sits
//! on the 3x3 convolution of a bottleneck), with torchvision's variable names (`conv1`, `bn1`,
//! `layer1.0.conv1`, ..., `layer1.0.downsample.0` / `.1`), so ImageNet-pretrained weights load
//! by name. The classifier (`fc`) is built by `heads`, under the head's own var store.
//!
//! Getting the pretrained weights (torch cannot write safetensors itself):
//! ```text
//! pip install safetensors torchvision
//! python -c "import torchvision, safetensors.torch as st; st.save_file(torchvision.models.resnet152(weights='IMAGENET1K_V1').state_dict(), 'r152.safetensors')"
//! ```
//! (`num_batches_tracked` buffers and `fc.*` in that file are ignored on load.)
//!
//! Init as torchvision: Kaiming-normal with fan-out for convolutions, BatchNorm scale 1, shift 0.
use super::parts::Frozen;
use super::resnet_cifar::{batch_norm2d, BatchNorm2d};
use tch::nn::{self, ModuleT};
use tch::Tensor;

const KAIMING_NORMAL_FAN_OUT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// How a block's convolutions start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvInit {
    /// torchvision's ResNet: Kaiming-normal, fan-out, ReLU gain.
    Torchvision,
    /// PyTorch's `nn.Conv2d` default, `kaiming_uniform_(a = sqrt(5))`: uniform in
    /// `±1 / sqrt(fan_in)`. A block built outside a ResNet, like the released Places `Block`.
    TorchDefault,
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, init: ConvInit) -> nn::Conv2D {
    let ws_init = match init {
        ConvInit::Torchvision => KAIMING_NORMAL_FAN_OUT,
        ConvInit::TorchDefault => {
            let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
            nn::Init::Uniform { lo: -bound, up: bound }
        }
    };
    let cfg = nn::ConvConfig { stride, padding: k / 2, bias: false, ws_init, ..Default::default() };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

/// Geometry of one bottleneck (output width `4 * planes`).
#[derive(Clone, Copy, Debug)]
pub struct BottleneckShape {
    pub c_in: i64,
    pub planes: i64,
    pub stride: i64,
}

/// 1x1 reduce, 3x3 (strided), 1x1 expand by 4; projection shortcut where the shape changes.
#[derive(Debug)]
pub struct Bottleneck {
    conv1: nn::Conv2D,
    bn1: BatchNorm2d,
    conv2: nn::Conv2D,
    bn2: BatchNorm2d,
    conv3: nn::Conv2D,
    bn3: BatchNorm2d,
    downsample: Option<(nn::Conv2D, BatchNorm2d)>,
    shape: BottleneckShape,
}

impl Bottleneck {
    pub const EXPANSION: i64 = 4;

    pub fn new(p: &nn::Path, shape: BottleneckShape) -> Bottleneck {
        Self::with_init(p, shape, ConvInit::Torchvision)
    }

    pub fn with_init(p: &nn::Path, shape: BottleneckShape, init: ConvInit) -> Bottleneck {
        let BottleneckShape { c_in, planes, stride } = shape;
        let c_out = planes * Self::EXPANSION;
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = p / "downsample";
            (conv(&d / 0, c_in, c_out, 1, stride, init), batch_norm2d(&d / 1, c_out))
        });
        Bottleneck {
            conv1: conv(p / "conv1", c_in, planes, 1, 1, init),
            bn1: batch_norm2d(p / "bn1", planes),
            conv2: conv(p / "conv2", planes, planes, 3, stride, init),
            bn2: batch_norm2d(p / "bn2", planes),
            conv3: conv(p / "conv3", planes, c_out, 1, 1, init),
            bn3: batch_norm2d(p / "bn3", c_out),
            downsample,
            shape,
        }
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train).relu();
        let out = out.apply(&self.conv3).apply_t(&self.bn3, train);
        let identity = match &self.downsample {
            Some((c, bn)) => x.apply(c).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (out + identity).relu()
    }
}

/// Torchvision ResNet with bottleneck blocks; `layers` = blocks per stage
/// (`[3, 4, 6, 3]` for ResNet-50, `[3, 8, 36, 3]` for ResNet-152).
#[derive(Debug)]
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: BatchNorm2d,
    blocks: Vec<Bottleneck>,
    /// Var-store name of each block (`layer1.0`, ...), for `model.freeze`.
    block_names: Vec<String>,
    /// Var-store name of the last block (e.g. `layer4.2`), for BBN's pretrained twin.
    last_block_name: String,
}

impl ResNet {
    pub const FEATURE_DIM: i64 = 2048;

    pub fn new(p: &nn::Path, layers: [usize; 4]) -> ResNet {
        let mut blocks = Vec::new();
        let mut block_names = Vec::new();
        let mut c_in = 64;
        let mut last_block_name = String::new();
        for (stage, &n) in layers.iter().enumerate() {
            let planes = 64 << stage;
            let layer = p / format!("layer{}", stage + 1);
            for i in 0..n {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                blocks.push(Bottleneck::new(&(&layer / i), BottleneckShape { c_in, planes, stride }));
                c_in = planes * Bottleneck::EXPANSION;
                last_block_name = format!("layer{}.{}", stage + 1, i);
                block_names.push(last_block_name.clone());
            }
        }
        ResNet {
            conv1: conv(p / "conv1", 3, 64, 7, 2, ConvInit::Torchvision),
            bn1: batch_norm2d(p / "bn1", 64),
            blocks,
            block_names,
            last_block_name,
        }
    }

    /// Stem (7x7/2 conv, max-pool 3/2) and every block but the last; frozen parts run in eval
    /// mode.
    pub fn trunk(&self, x: &Tensor, train: bool, frozen: &Frozen) -> Tensor {
        let mut out = x.apply(&self.conv1).apply_t(&self.bn1, frozen.train("bn1", train)).relu();
        out = out.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let n = self.blocks.len() - 1;
        for (block, name) in self.blocks[..n].iter().zip(&self.block_names) {
            out = out.apply_t(block, frozen.train(name, train));
        }
        out
    }

    pub fn last_block(&self) -> &Bottleneck {
        self.blocks.last().expect("a ResNet has at least one block")
    }

    pub fn last_block_name(&self) -> &str {
        &self.last_block_name
    }

    pub fn twin_of_last_block(&self, p: &nn::Path) -> Bottleneck {
        Bottleneck::new(p, self.last_block().shape)
    }
}

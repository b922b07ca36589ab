//! The model settings of a run (`model = { ... }` in a manifest): the backbone's architecture,
//! the classifier head, and where the weights start from. They live beside the networks they
//! configure; `training::spec::RunSpec` holds them as `model`.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// CIFAR ResNet-32 (3 x 5 basic blocks, 16/32/64 channels, option-A shortcut).
    #[default]
    Resnet32,
    /// A small CIFAR ResNet (3 x 1 basic blocks) for the CPU quick start.
    ResnetSmall,
    Resnet50,
    Resnet152,
    /// A torchvision-layout bottleneck ResNet with blocks `[1, 1, 1, 2]`: the ResNet-50/152 code
    /// path (names, pretrained loading, freezing, the added block) at a fraction of the cost,
    /// for smoke tests on generated images.
    ResnetTiny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Plain linear classifier with bias.
    Linear,
    /// Cosine classifier: normalised features times normalised anchors, no bias (GCL).
    #[default]
    Normed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSpec {
    pub arch: Arch,
    pub head: Head,
    /// BBN: bilateral branches (conventional + re-balancing) with cumulative learning.
    pub bbn: bool,
    /// Start from ImageNet-pretrained weights (safetensors file under the data root).
    pub pretrained: Option<String>,
    /// Start from the weights of a PyTorch state_dict (safetensors; `.pth` checkpoints are
    /// converted by `scripts/torch_to_safetensors.py`), every variable included: backbone,
    /// head and BatchNorm statistics (`models::import`). A manifest's relative path is relative
    /// to the manifest's folder. The file enters the key by its content ([`Self::init_sha256`]),
    /// not by its path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    /// SHA-256 of `init_from`'s bytes: filled in when a manifest is expanded (or set by hand to
    /// pin the file); a run refuses a file whose content no longer matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_sha256: Option<String>,
    /// Parts of the backbone kept fixed in stage 1: named by their variable prefix (`conv1`,
    /// `bn1`, a stage `layer3`, a block `layer4.0`; `models::part_names` lists an arch's parts).
    /// Their parameters get no gradient and their BatchNorm runs in eval mode (running
    /// statistics used, never updated), as a feature extractor under `model.eval()` in the
    /// released Places-LT script.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// Remove the backbone's last N blocks (torchvision archs): the released `resnet152_fe`
    /// (GCLLoss `Places-LT/models/resnet_places.py`) is ResNet-152 with layer4 cut to 2 blocks,
    /// `layer4.2`'s pretrained weights deleted before loading.
    #[serde(skip_serializing_if = "is_zero")]
    pub drop_blocks: usize,
    /// One more trainable bottleneck after the backbone (torchvision archs): `layer5`,
    /// 2048 -> 512 -> 2048, stride 1, no projection, PyTorch's default initialisation (the
    /// released `Block`, GCLLoss `Places-LT/models/resnet_places.py`). Never pretrained.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub added_block: bool,
    /// The forward passes' numbers: `fp32` (the released recipe) or `bf16` autocast
    /// (`models::precision`). Left out of the key when `fp32`, so fp32 keys are unchanged.
    #[serde(skip_serializing_if = "super::Precision::is_fp32")]
    pub precision: super::Precision,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            arch: Arch::Resnet32,
            head: Head::Normed,
            bbn: false,
            pretrained: None,
            init_from: None,
            init_sha256: None,
            freeze: Vec::new(),
            drop_blocks: 0,
            added_block: false,
            precision: super::Precision::Fp32,
        }
    }
}

impl ModelSpec {
    /// Set `init_from` to `path` and record its content's SHA-256 (`init_sha256`); an
    /// `init_sha256` set before must match the file.
    pub fn pin_init_from(&mut self, path: &std::path::Path) -> anyhow::Result<()> {
        self.pin_init_from_digest(path, super::import::sha256_file(path)?)
    }

    /// [`Self::pin_init_from`] with the file's digest already computed.
    pub fn pin_init_from_digest(&mut self, path: &std::path::Path, digest: String) -> anyhow::Result<()> {
        if let Some(pinned) = &self.init_sha256 {
            if *pinned != digest {
                anyhow::bail!(
                    "model.init_from {}: its SHA-256 is {digest}, but model.init_sha256 pins {pinned}; the file changed (restore it, or update or remove init_sha256)",
                    path.display()
                );
            }
        }
        self.init_from = Some(path.display().to_string());
        self.init_sha256 = Some(digest);
        Ok(())
    }
}

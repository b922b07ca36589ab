//! Named parts of a backbone, and which of them a run keeps fixed (`model.freeze`).
//!
//! A part is a variable-name prefix at a dot boundary: the stem (`conv1`, `bn1`), a stage
//! (`layer3`) or one block (`layer4.0`), plus `layer5` when `model.added_block` is set. A frozen
//! part gets no gradient and its BatchNorm layers run in eval mode, as a released feature
//! extractor under `model.eval()` and `torch.no_grad()` (GCLLoss `Places-LT/pla_train_backbone.py`).
use super::spec::{Arch, ModelSpec};
use anyhow::{bail, Result};

/// Blocks per stage of an arch after `model.drop_blocks` (taken from the last stage).
pub fn stage_blocks(arch: Arch, drop_blocks: usize) -> Vec<usize> {
    let mut stages: Vec<usize> = match arch {
        Arch::Resnet32 => vec![5, 5, 5],
        Arch::ResnetSmall => vec![1, 1, 1],
        Arch::Resnet50 => vec![3, 4, 6, 3],
        Arch::Resnet152 => vec![3, 8, 36, 3],
        // The ResNet-50 code path at a fraction of the cost (smoke tests).
        Arch::ResnetTiny => vec![1, 1, 1, 2],
    };
    if let Some(last) = stages.last_mut() {
        *last = last.saturating_sub(drop_blocks);
    }
    stages
}

/// Whether an arch has torchvision's layout (bottleneck stages `layer1`..`layer4`).
pub fn is_torchvision(arch: Arch) -> bool {
    matches!(arch, Arch::Resnet50 | Arch::Resnet152 | Arch::ResnetTiny)
}

/// Every part a `model.freeze` entry may name, in forward order.
pub fn part_names(model: &ModelSpec) -> Vec<String> {
    let mut names = vec!["conv1".to_string(), "bn1".to_string()];
    for (s, &n) in stage_blocks(model.arch, model.drop_blocks).iter().enumerate() {
        names.push(format!("layer{}", s + 1));
        names.extend((0..n).map(|i| format!("layer{}.{i}", s + 1)));
    }
    if model.added_block {
        names.push(ADDED_BLOCK.to_string());
    }
    names
}

/// Var-store name of the added block (the released `Block.layer5`).
pub const ADDED_BLOCK: &str = "layer5";

/// The checks of the model settings that need no data: frozen parts exist, the block surgery
/// fits the arch. Each error names the setting and the fix.
pub fn check(model: &ModelSpec) -> Result<()> {
    if (model.added_block || model.drop_blocks > 0) && !is_torchvision(model.arch) {
        bail!("model.added_block and model.drop_blocks need a torchvision-layout arch (resnet50, resnet152, resnet_tiny), not {:?}; remove them or change model.arch", model.arch);
    }
    if model.bbn && (model.added_block || model.drop_blocks > 0 || !model.freeze.is_empty()) {
        bail!("model.bbn cannot be combined with model.freeze, model.drop_blocks or model.added_block (BBN's branches share the backbone's last block); remove one of them");
    }
    let stages = stage_blocks(model.arch, 0);
    let last = *stages.last().unwrap_or(&0);
    if model.drop_blocks >= last {
        bail!(
            "model.drop_blocks = {} would leave the last stage of {:?} empty (it has {last} blocks); use at most {}",
            model.drop_blocks,
            model.arch,
            last.saturating_sub(1)
        );
    }
    let parts = part_names(model);
    for name in &model.freeze {
        if !parts.contains(name) {
            let stages: Vec<&str> = parts.iter().map(String::as_str).filter(|p| !p.contains('.')).collect();
            bail!(
                "model.freeze: `{name}` is not a part of this {:?} backbone (after drop_blocks = {}); name one of {}; or a block such as `layer1.0`",
                model.arch,
                model.drop_blocks,
                stages.join(", ")
            );
        }
    }
    Ok(())
}

/// The frozen parts of a network.
#[derive(Clone, Debug, Default)]
pub struct Frozen {
    parts: Vec<String>,
}

impl Frozen {
    pub fn new(parts: &[String]) -> Frozen {
        Frozen { parts: parts.to_vec() }
    }

    /// Whether the variable or module `name` lies inside a frozen part.
    pub fn covers(&self, name: &str) -> bool {
        self.parts.iter().any(|p| name == p || name.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('.')))
    }

    /// The mode a module runs in: training only when the run trains and the module is not frozen.
    pub fn train(&self, name: &str, train: bool) -> bool {
        train && !self.covers(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_at_dot_boundaries_only() {
        let f = Frozen::new(&["layer1".into(), "layer4.0".into(), "bn1".into()]);
        assert!(f.covers("layer1") && f.covers("layer1.0.conv1.weight") && f.covers("layer4.0.bn3.running_mean"));
        assert!(!f.covers("layer10.0.conv1.weight") && !f.covers("layer4.1.conv1.weight") && !f.covers("bn10"));
        assert!(f.covers("bn1.weight") && !f.covers("conv1.weight"));
        assert!(!f.train("layer1.0", true) && f.train("layer4.1", true) && !f.train("layer4.1", false));
    }

    #[test]
    fn part_names_follow_the_arch_and_the_surgery() {
        let mut m = ModelSpec { arch: Arch::Resnet152, ..ModelSpec::default() };
        let parts = part_names(&m);
        assert!(parts.contains(&"layer4.2".to_string()) && parts.contains(&"layer3.35".to_string()));
        assert!(!parts.contains(&"layer5".to_string()));
        m.drop_blocks = 1;
        m.added_block = true;
        let parts = part_names(&m);
        assert!(!parts.contains(&"layer4.2".to_string()) && parts.contains(&"layer4.1".to_string()));
        assert_eq!(parts.last().map(String::as_str), Some("layer5"));
        assert_eq!(stage_blocks(Arch::Resnet152, 1), vec![3, 8, 36, 2], "the released resnet152_fe");
    }

    #[test]
    fn bad_settings_are_one_clear_error() {
        let m = ModelSpec { arch: Arch::Resnet152, freeze: vec!["layer9".into()], ..ModelSpec::default() };
        let e = check(&m).unwrap_err().to_string();
        assert!(
            e.contains("model.freeze: `layer9`") && e.contains("conv1, bn1, layer1, layer2, layer3, layer4;"),
            "{e}"
        );
        let m = ModelSpec { arch: Arch::Resnet32, added_block: true, ..ModelSpec::default() };
        assert!(check(&m).unwrap_err().to_string().contains("torchvision-layout"));
        let m = ModelSpec { arch: Arch::ResnetTiny, drop_blocks: 2, ..ModelSpec::default() };
        assert!(check(&m).unwrap_err().to_string().contains("use at most 1"));
        let m = ModelSpec { arch: Arch::Resnet32, bbn: true, freeze: vec!["conv1".into()], ..ModelSpec::default() };
        assert!(check(&m).unwrap_err().to_string().contains("model.bbn cannot"));
        let ok = ModelSpec {
            arch: Arch::Resnet152,
            drop_blocks: 1,
            added_block: true,
            freeze: vec!["layer4".into(), "conv1".into()],
            ..ModelSpec::default()
        };
        check(&ok).unwrap();
    }
}

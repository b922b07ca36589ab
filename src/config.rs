//! The resolved settings of one run: everything that determines its result.
//!
//! A manifest (see `manifest`) is expanded into one [`RunSpec`] per cell and seed. A spec is
//! plain data: a method is a combination of settings, never a code path of its own. Every field
//! has a default, so a spec written with or without its defaults resolves to the same value, and
//! hence the same cache key (`cache`). The defaults are the released GCL CIFAR code's *schedule
//! and optimiser* (200 epochs, batch 64, SGD 0.9 / 2e-4, lr 0.1 with 5 warm-up epochs, x0.1
//! after 160 and 180) and its network (ResNet-32 with the cosine head), trained with plain CE:
//! no GCL, no mixup, no stage 2. GCL's own method is written where it is used (the tables' rows;
//! [`RunSpec::released_gcl`] is the whole released recipe, which `explain` compares against).
//!
//! All structs deny unknown fields: a misspelt key is an error, never silently ignored.
use serde::{Deserialize, Serialize};

use crate::data::samplers::Cben;
pub use crate::data::samplers::SamplerSpec;
use crate::losses::Gcl;
pub use crate::losses::{CloudSchedule, LasShape, LossSpec};
pub use crate::models::spec::{Arch, Head, ModelSpec};
pub use crate::training::rebalance::{ClassifierInit, Rebalance};

/// One run: a stage-1 training and, optionally, a stage-2 classifier re-balancing on top.
/// The cache stores the two stages as separate runs so that stage-2 variants share stage 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub stage1: Stage1Spec,
    /// `None`: the run ends after stage 1 ("without re-training").
    pub stage2: Option<Stage2Spec>,
    /// Seed of everything random in the run (init, sampling, augmentation, noise, mixup).
    pub seed: u64,
    /// Smoke scale: epochs shrunk for CPU pipeline checks; results are labelled as such.
    pub scale: Scale,
    /// The CPU numeric path (kernel level, threads); see `numerics`.
    pub cpu: CpuSpec,
}

/// The CPU numeric path of a run. Unset fields leave the machine's choice (recorded in each
/// result's provenance); set ones are part of the key and make a CPU run give the same numbers
/// on every x86-64 machine that has the level (`numerics`). GPU runs ignore them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuSpec {
    /// Vector kernels of libtorch (`ATEN_CPU_CAPABILITY`) and oneDNN (`DNNL_MAX_CPU_ISA`).
    pub isa: Option<CpuIsa>,
    /// Intra-op threads (they split reductions, so their number changes the last bits).
    pub threads: Option<usize>,
}

/// A CPU kernel level. Every x86-64 CPU of the last decade has `avx2` (with FMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuIsa {
    /// No vector kernels (libtorch's scalar fallbacks; oneDNN up to SSE4.1).
    Default,
    Avx2,
    Avx512,
}

impl CpuIsa {
    pub fn name(self) -> &'static str {
        match self {
            CpuIsa::Default => "default",
            CpuIsa::Avx2 => "avx2",
            CpuIsa::Avx512 => "avx512",
        }
    }
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            dataset: DatasetSpec::default(),
            model: ModelSpec::default(),
            stage1: Stage1Spec::default(),
            stage2: None,
            seed: 123,
            scale: Scale::Full,
            cpu: CpuSpec::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    #[default]
    Full,
    Smoke,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DatasetName {
    #[default]
    Cifar10,
    Cifar100,
    /// Built-in, deterministic, CIFAR-shaped long-tailed set (no files).
    Synthetic,
    ImagenetLt,
    PlacesLt,
    Inat2018,
}

/// Class-size profile of the long-tailed train split (Cao et al. 2019).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// `n_i = int(n_max * (1/gamma)^(i/(C-1)))`, truncated.
    #[default]
    Exp,
    /// The first `C/2` classes keep `n_max`, the rest `int(n_max / gamma)`.
    Step,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetSpec {
    pub name: DatasetName,
    /// gamma = n_max / n_min. 1 keeps the balanced set.
    pub imbalance: f64,
    pub profile: Profile,
    /// Seed of the subset selection; 0 reproduces the published protocol (numpy's RandomState(0)).
    pub subset_seed: u64,
    /// Synthetic set only: number of classes, images of the largest class, test images per class.
    pub classes: usize,
    pub max_per_class: usize,
    pub test_per_class: usize,
    /// List-file datasets: list files relative to the data root, and an optional path remap
    /// `["from_prefix", "to_prefix"]` (Places-LT ships with two path conventions).
    pub train_list: Option<String>,
    pub test_list: Option<String>,
    pub path_remap: Option<(String, String)>,
    /// List-file datasets: the directory the list's image paths are relative to, itself
    /// relative to the data root (default: the data root).
    pub image_root: Option<String>,
    /// List-file datasets: colour jitter (brightness, contrast, saturation 0.4) in the
    /// training transform, as Kang et al. and MiSLAS; GCL's released Places-LT loader has it
    /// commented out (`Places-LT/datasets/places.py`), so its recipe sets `false`.
    #[serde(skip_serializing_if = "is_true")]
    pub color_jitter: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec {
            name: DatasetName::Cifar10,
            imbalance: 100.0,
            profile: Profile::Exp,
            subset_seed: 0,
            classes: 10,
            max_per_class: 500,
            test_per_class: 100,
            train_list: None,
            test_list: None,
            path_remap: None,
            image_root: None,
            color_jitter: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// Linear warm-up, then step decays at `milestones` (the CIFAR recipe).
    #[default]
    WarmupStep,
    /// `0.5 * lr * (1 + cos(pi * epoch / epochs))`.
    Cosine,
}

/// Optimiser and learning-rate schedule of one stage (SGD with momentum).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: LrSchedule,
    pub warmup_epochs: usize,
    pub milestones: Vec<usize>,
    pub lr_decay: f64,
    /// Warm-up starts at `warmup_start * lr` and rises linearly to `lr` (0: the GCL/LDAM code's
    /// `lr * epoch / warmup`; BBN's `WarmupMultiStepLR`: 1/3).
    pub warmup_start: f64,
    /// Nesterov momentum (BBN's optimiser; GCL, LDAM and MiSLAS use plain momentum).
    pub nesterov: bool,
}

impl Default for OptimSpec {
    fn default() -> Self {
        OptimSpec {
            epochs: 200,
            batch_size: 64,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 2e-4,
            schedule: LrSchedule::WarmupStep,
            warmup_epochs: 5,
            milestones: vec![160, 180],
            lr_decay: 0.1,
            warmup_start: 0.0,
            nesterov: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stage1Spec {
    // Optimiser and schedule (serde's `flatten` cannot be combined with deny_unknown_fields,
    // so the fields are spelled out here and gathered by `optim()`).
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: LrSchedule,
    pub warmup_epochs: usize,
    pub milestones: Vec<usize>,
    pub lr_decay: f64,
    pub warmup_start: f64,
    pub nesterov: bool,
    pub loss: LossSpec,
    pub sampler: SamplerSpec,
    /// Mixup with `lam ~ Beta(alpha, alpha)` once per batch; on in the released GCL code.
    pub mixup: bool,
    pub mixup_alpha: f64,
    /// Deferred re-weighting (LDAM-DRW): from this epoch on, the loss is weighted per class by
    /// the effective number with beta 0.9999.
    pub drw_epoch: Option<usize>,
    /// Standard CIFAR augmentation (pad 4 + random crop + flip).
    pub augment: bool,
}

impl Default for Stage1Spec {
    fn default() -> Self {
        let o = OptimSpec::default();
        Stage1Spec {
            epochs: o.epochs,
            batch_size: o.batch_size,
            lr: o.lr,
            momentum: o.momentum,
            weight_decay: o.weight_decay,
            schedule: o.schedule,
            warmup_epochs: o.warmup_epochs,
            milestones: o.milestones,
            lr_decay: o.lr_decay,
            warmup_start: o.warmup_start,
            nesterov: o.nesterov,
            loss: LossSpec::default(),
            sampler: SamplerSpec::default(),
            mixup: false,
            mixup_alpha: 1.0,
            drw_epoch: None,
            augment: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stage2Spec {
    /// How the classifier is re-balanced (`rebalance = { method = "crt", ... }`); each method
    /// owns its settings (`training::rebalance`).
    pub rebalance: Rebalance,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: LrSchedule,
    pub warmup_epochs: usize,
    pub milestones: Vec<usize>,
    pub lr_decay: f64,
    pub warmup_start: f64,
    pub nesterov: bool,
    pub loss: LossSpec,
    pub sampler: SamplerSpec,
    pub mixup: bool,
    pub mixup_alpha: f64,
    /// MiSLAS's `shift_bn`: the frozen backbone's BatchNorm layers run in train mode during
    /// stage 2, so their running statistics are re-estimated on the stage-2 batches (PyTorch's
    /// momentum 0.1); no backbone parameter is trained. Off: BatchNorm stays in eval mode.
    pub shift_bn: bool,
    /// Which stage-1 checkpoint stage 2 starts from: the final epoch or the best on test
    /// (the released code's choice, which is model selection on the test set).
    pub from_checkpoint: CheckpointChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointChoice {
    #[default]
    Final,
    BestOnTest,
}

impl Default for Stage2Spec {
    fn default() -> Self {
        Stage2Spec {
            rebalance: Rebalance::default(),
            epochs: 30,
            batch_size: 64,
            // Released code: 0.1 * lr_max * (1 + cos) * 0.1 => peak 0.002 with lr_max 0.1.
            lr: 0.002,
            momentum: 0.9,
            weight_decay: 2e-4,
            schedule: LrSchedule::Cosine,
            warmup_epochs: 0,
            milestones: vec![],
            lr_decay: 0.1,
            warmup_start: 0.0,
            nesterov: false,
            // Released stage 2: GCL with s = 20, margin 0.1, inside the focal factor (gamma 1).
            loss: LossSpec::Gcl(Gcl { scale: 20.0, margin: 0.1, focal_gamma: 1.0, ..Gcl::default() }),
            sampler: SamplerSpec::Cben(Cben::default()),
            mixup: true,
            mixup_alpha: 1.0,
            shift_bn: false,
            from_checkpoint: CheckpointChoice::Final,
        }
    }
}

macro_rules! optim_of {
    ($t:ty) => {
        impl $t {
            pub fn optim(&self) -> OptimSpec {
                OptimSpec {
                    epochs: self.epochs,
                    batch_size: self.batch_size,
                    lr: self.lr,
                    momentum: self.momentum,
                    weight_decay: self.weight_decay,
                    schedule: self.schedule,
                    warmup_epochs: self.warmup_epochs,
                    milestones: self.milestones.clone(),
                    lr_decay: self.lr_decay,
                    warmup_start: self.warmup_start,
                    nesterov: self.nesterov,
                }
            }
        }
    };
}
optim_of!(Stage1Spec);
optim_of!(Stage2Spec);

impl RunSpec {
    /// The released GCL CIFAR recipe in full (gcl-notes.md §1-3): `RunSpec::default()` plus the
    /// released stage-1 method (cosine head, GCL s = 30, c = 0.5, mixup) and the released stage 2.
    /// `explain` marks every setting that differs from it.
    pub fn released_gcl() -> RunSpec {
        let mut spec = RunSpec::default();
        spec.model.head = Head::Normed;
        spec.stage1.loss = LossSpec::Gcl(Gcl { scale: 30.0, noise_mul: 0.5, ..Gcl::default() });
        spec.stage1.mixup = true;
        spec.stage2 = Some(Stage2Spec::default());
        spec
    }

    /// The spec of this run's stage 1 alone (what the stage-1 cache key is computed from).
    pub fn stage1_only(&self) -> RunSpec {
        RunSpec { stage2: None, ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_gives_the_released_schedule_and_network_with_plain_ce() {
        let spec: RunSpec = toml::from_str("").unwrap();
        assert_eq!(spec, RunSpec::default());
        assert_eq!(spec.stage1.epochs, 200);
        assert_eq!(spec.stage1.milestones, vec![160, 180]);
        assert_eq!((spec.model.head, spec.stage1.mixup, spec.stage2.is_none()), (Head::Normed, false, true));
        assert!(matches!(spec.stage1.loss, LossSpec::Ce(_)), "{:?}", spec.stage1.loss);
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = toml::from_str::<RunSpec>("[stage1]\nsampeler = 'cb'\n").unwrap_err();
        assert!(err.to_string().contains("sampeler"), "{err}");
    }

    #[test]
    fn round_trip_through_toml() {
        let mut spec = RunSpec { stage2: Some(Stage2Spec::default()), ..RunSpec::default() };
        spec.stage1.loss = LossSpec::Gcl(Gcl::default());
        let text = toml::to_string(&spec).unwrap();
        let back: RunSpec = toml::from_str(&text).unwrap();
        assert_eq!(spec, back);
    }
}

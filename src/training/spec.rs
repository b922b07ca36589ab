//! The resolved settings of one run: everything that determines its result. The settings of
//! each part live beside it (`data::spec`, `models::spec`, `losses`, `data::samplers`,
//! `training::rebalance`, `numerics`); this file assembles them and holds the stages' own.
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

use super::rebalance::Rebalance;
use crate::data::samplers::{Cben, SamplerSpec};
use crate::data::spec::DatasetSpec;
use crate::distributed::DataParallel;
use crate::losses::{Gcl, LossSpec};
use crate::models::spec::{Head, ModelSpec};
use crate::numerics::CpuSpec;

/// One run: a stage-1 training and, optionally, a stage-2 classifier re-balancing on top.
/// The cache stores the two stages as separate runs so that stage-2 variants share stage 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub stage1: Stage1Spec,
    /// `None`: the run ends after stage 1 ("without re-training").
    #[serde(deserialize_with = "stage2_over_its_defaults")]
    pub stage2: Option<Stage2Spec>,
    /// Seed of everything random in the run (init, sampling, augmentation, noise, mixup).
    pub seed: u64,
    /// Smoke scale: epochs shrunk for CPU pipeline checks; results are labelled as such.
    pub scale: Scale,
    /// The CPU numeric path (kernel level, threads); see `numerics`.
    pub cpu: CpuSpec,
    /// Several processes training this run together (`distributed`); left out when 1.
    #[serde(skip_serializing_if = "DataParallel::is_single")]
    pub data_parallel: DataParallel,
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
            data_parallel: DataParallel::default(),
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
pub enum LrSchedule {
    /// Linear warm-up, then step decays at `milestones` (the CIFAR recipe).
    #[default]
    WarmupStep,
    /// `0.5 * lr * (1 + cos(pi * epoch / epochs))`.
    Cosine,
}

/// Optimiser and learning-rate schedule of one stage (SGD with momentum). Written once and
/// flattened into each stage's table, so a manifest writes `stage1.lr`, never `stage1.optim.lr`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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

/// Mixup: each batch is blended with a shuffled copy of itself, `lam ~ Beta(alpha, alpha)` once
/// per batch. Flattened into each stage's table as its two keys, `mixup` and `mixup_alpha`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mixup {
    #[serde(rename = "mixup")]
    pub on: bool,
    #[serde(rename = "mixup_alpha")]
    pub alpha: f64,
}

impl Mixup {
    pub const OFF: Mixup = Mixup { on: false, alpha: 1.0 };

    /// The Beta parameter when mixup is on; `None` when it is off.
    pub fn alpha_if_on(self) -> Option<f64> {
        self.on.then_some(self.alpha)
    }
}

impl Default for Mixup {
    fn default() -> Self {
        Mixup::OFF
    }
}

// serde can deny unknown fields beside flattened ones: the keys no field took are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stage1Spec {
    #[serde(flatten)]
    pub optim: OptimSpec,
    pub loss: LossSpec,
    pub sampler: SamplerSpec,
    /// Off by default; on in the released GCL code.
    #[serde(flatten)]
    pub mixup: Mixup,
    /// Deferred re-weighting (LDAM-DRW): from this epoch on, the loss is weighted per class by
    /// the effective number with beta 0.9999.
    pub drw_epoch: Option<usize>,
    /// Standard CIFAR augmentation (pad 4 + random crop + flip).
    pub augment: bool,
}

impl Default for Stage1Spec {
    fn default() -> Self {
        Stage1Spec {
            optim: OptimSpec::default(),
            loss: LossSpec::default(),
            sampler: SamplerSpec::default(),
            mixup: Mixup::OFF,
            drw_epoch: None,
            augment: true,
        }
    }
}

/// Stage 2's settings. Its defaults differ from stage 1's inside the flattened parts too (the
/// optimiser, mixup), which serde would fill from their own types' defaults; so it is read
/// through [`RunSpec`], whose `stage2` lays the given keys over `Stage2Spec::default()` first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stage2Spec {
    /// How the classifier is re-balanced (`rebalance = { method = "crt", ... }`); each method
    /// owns its settings (`training::rebalance`).
    pub rebalance: Rebalance,
    #[serde(flatten)]
    pub optim: OptimSpec,
    pub loss: LossSpec,
    pub sampler: SamplerSpec,
    #[serde(flatten)]
    pub mixup: Mixup,
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
            optim: OptimSpec {
                epochs: 30,
                // Released code: 0.1 * lr_max * (1 + cos) * 0.1 => peak 0.002 with lr_max 0.1.
                lr: 0.002,
                schedule: LrSchedule::Cosine,
                warmup_epochs: 0,
                milestones: vec![],
                ..OptimSpec::default()
            },
            // Released stage 2: GCL with s = 20, margin 0.1, inside the focal factor (gamma 1).
            loss: LossSpec::Gcl(Gcl { scale: 20.0, margin: 0.1, focal_gamma: 1.0, ..Gcl::default() }),
            sampler: SamplerSpec::Cben(Cben::default()),
            mixup: Mixup { on: true, alpha: 1.0 },
            shift_bn: false,
            from_checkpoint: CheckpointChoice::Final,
        }
    }
}

/// `stage2` of a [`RunSpec`]: the given keys laid over `Stage2Spec::default()`, so a key left
/// out takes stage 2's default, the flattened ones included (a given table replaces the default
/// one whole, as for any key).
fn stage2_over_its_defaults<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Stage2Spec>, D::Error> {
    use serde::de::Error;
    let Some(given) = Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? else {
        return Ok(None);
    };
    let Ok(serde_json::Value::Object(mut table)) = serde_json::to_value(Stage2Spec::default()) else {
        unreachable!("Stage2Spec serialises to a JSON object")
    };
    table.extend(given);
    Stage2Spec::deserialize(serde_json::Value::Object(table)).map(Some).map_err(D::Error::custom)
}

impl RunSpec {
    /// The released GCL CIFAR recipe in full (gcl-notes.md §1-3): `RunSpec::default()` plus the
    /// released stage-1 method (cosine head, GCL s = 30, c = 0.5, mixup) and the released stage 2.
    /// `explain` marks every setting that differs from it.
    pub fn released_gcl() -> RunSpec {
        let mut spec = RunSpec::default();
        spec.model.head = Head::Normed;
        spec.stage1.loss = LossSpec::Gcl(Gcl { scale: 30.0, noise_mul: 0.5, ..Gcl::default() });
        spec.stage1.mixup = Mixup { on: true, alpha: 1.0 };
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
        assert_eq!(spec.stage1.optim.epochs, 200);
        assert_eq!(spec.stage1.optim.milestones, vec![160, 180]);
        assert_eq!((spec.model.head, spec.stage1.mixup, spec.stage2.is_none()), (Head::Normed, Mixup::OFF, true));
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

    #[test]
    fn a_partial_stage2_takes_stage2_defaults_in_its_flattened_parts() {
        let spec: RunSpec = toml::from_str("[stage2]\nepochs = 5\n").unwrap();
        let s2 = spec.stage2.unwrap();
        let want = Stage2Spec::default();
        assert_eq!(s2.optim, OptimSpec { epochs: 5, ..want.optim.clone() });
        assert_eq!(
            (s2.optim.lr, s2.optim.schedule, s2.mixup),
            (0.002, LrSchedule::Cosine, Mixup { on: true, alpha: 1.0 })
        );
        assert_eq!(Stage2Spec { optim: OptimSpec { epochs: 30, ..s2.optim.clone() }, ..s2 }, want);
        let err = toml::from_str::<RunSpec>("[stage2]\nlr = 0.1\nshfit_bn = true\n").unwrap_err();
        assert!(err.to_string().contains("shfit_bn"), "{err}");
    }

    #[test]
    fn flattened_settings_are_written_as_keys_of_their_stage() {
        let spec = RunSpec::released_gcl();
        let json = serde_json::to_value(&spec).unwrap();
        for stage in ["stage1", "stage2"] {
            let keys: Vec<&str> = json[stage].as_object().unwrap().keys().map(String::as_str).collect();
            for key in ["epochs", "lr", "nesterov", "mixup", "mixup_alpha"] {
                assert!(keys.contains(&key), "{stage} lacks `{key}`: {keys:?}");
            }
            assert!(!keys.contains(&"optim") && !keys.contains(&"on"), "{stage}: {keys:?}");
        }
        assert_eq!(json["stage1"]["mixup"], serde_json::json!(true));
    }
}

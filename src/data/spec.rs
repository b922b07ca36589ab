//! The dataset settings of a run (`[dataset]` in a manifest): which set, how long its tail is and
//! where its files lie. `training::spec::RunSpec` holds them as `dataset`; [`super::load`] reads them.
use serde::{Deserialize, Serialize};

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

//! Datasets: CIFAR-10/100 (official binaries), their long-tailed subsets, the built-in
//! synthetic set, and list-file datasets (ImageNet-LT, Places-LT, iNaturalist 2018).
//!
//! The training engine calls [`load`] (images as uint8 CPU tensors) and [`identity`] (what the
//! cache key records about the data).
pub mod catalog;
pub mod cifar;
pub mod class_stats;
pub mod fetch;
pub mod images;
pub mod listfile;
pub mod longtail;
pub mod mt19937;
pub mod prepare;
pub mod samplers;
pub mod spec;
pub mod synthetic;
pub mod verify;

use crate::data::spec::{DatasetName, DatasetSpec, Profile};
use anyhow::Result;
use cifar::Cifar;
use std::path::{Path, PathBuf};

/// A split held in memory as uint8 images (CPU tensors).
#[derive(Debug)]
pub struct ImageSet {
    /// uint8 `[N, 3, 32, 32]`.
    pub images: tch::Tensor,
    pub labels: Vec<i64>,
}

impl ImageSet {
    /// From CHW pixel bytes of `labels.len()` 32x32 RGB images.
    pub fn from_pixels(pixels: &[u8], labels: Vec<i64>) -> ImageSet {
        assert_eq!(pixels.len(), labels.len() * cifar::PIXELS, "pixel buffer does not match the label count");
        let images = tch::Tensor::from_slice(pixels).view([labels.len() as i64, 3, 32, 32]);
        ImageSet { images, labels }
    }
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The images as CHW bytes (contiguous copy).
    pub fn pixels(&self) -> Vec<u8> {
        let flat = self.images.contiguous().view([-1]);
        Vec::<u8>::try_from(&flat).expect("uint8 image tensor")
    }
}

/// A long-tailed train split and its balanced test split.
#[derive(Debug)]
pub struct LtData {
    /// The long-tailed train subset, in protocol order (class by class).
    pub train: ImageSet,
    /// The balanced test set.
    pub test: ImageSet,
    pub num_classes: usize,
    /// Train images per class.
    pub class_counts: Vec<usize>,
    /// Per-channel normalisation (applied by the training engine after augmentation).
    pub mean: [f64; 3],
    pub std: [f64; 3],
    /// See [`identity`].
    pub identity: String,
}

/// CIFAR normalisation of the released code (gcl-notes.md §3), used for CIFAR-10 and -100.
pub const CIFAR_MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
pub const CIFAR_STD: [f64; 3] = [0.2023, 0.1994, 0.2010];

fn cifar_kind(name: DatasetName) -> Option<Cifar> {
    match name {
        DatasetName::Cifar10 => Some(Cifar::C10),
        DatasetName::Cifar100 => Some(Cifar::C100),
        _ => None,
    }
}

fn list_file_error(spec: &DatasetSpec) -> anyhow::Error {
    anyhow::anyhow!(
        "dataset {:?} is a list-file dataset: it is served by the streaming image loader (data::images), not loaded into memory by data::load",
        spec.name
    )
}

/// A list-file dataset (ImageNet-LT, Places-LT, iNaturalist 2018): the parsed train and test
/// lists and where their images are. Images are decoded batch by batch (`images::loader`).
pub struct ListData {
    pub train: std::sync::Arc<listfile::ListDataset>,
    pub test: std::sync::Arc<listfile::ListDataset>,
    pub image_root: PathBuf,
    pub num_classes: usize,
    pub class_counts: Vec<usize>,
    pub identity: String,
}

/// Any dataset the training engine can use: held in memory (CIFAR, synthetic) or streamed
/// from image files (list-file datasets).
pub enum Data {
    Memory(LtData),
    Lists(ListData),
}

impl From<LtData> for Data {
    fn from(d: LtData) -> Data {
        Data::Memory(d)
    }
}

impl Data {
    pub fn num_classes(&self) -> usize {
        match self {
            Data::Memory(d) => d.num_classes,
            Data::Lists(d) => d.num_classes,
        }
    }

    pub fn class_counts(&self) -> &[usize] {
        match self {
            Data::Memory(d) => &d.class_counts,
            Data::Lists(d) => &d.class_counts,
        }
    }

    /// Train labels in dataset order (what samplers draw from).
    pub fn train_labels(&self) -> Vec<i64> {
        match self {
            Data::Memory(d) => d.train.labels.clone(),
            Data::Lists(d) => d.train.labels(),
        }
    }
}

/// Load any dataset: CIFAR and synthetic into memory ([`load`]), list-file datasets as parsed
/// lists whose images are decoded while training.
pub fn load_any(spec: &DatasetSpec, data_root: &Path) -> Result<Data> {
    if spec.name == DatasetName::Synthetic || cifar_kind(spec.name).is_some() {
        return Ok(Data::Memory(load(spec, data_root)?));
    }
    let remap = listfile::PathRemap::from_config(spec.path_remap.as_ref());
    let list = |what: &str, rel: &Option<String>| -> Result<std::sync::Arc<listfile::ListDataset>> {
        let rel = rel.as_ref().ok_or_else(|| {
            anyhow::anyhow!("dataset {:?} needs `{what}` (a list file relative to the data root)", spec.name)
        })?;
        Ok(std::sync::Arc::new(listfile::ListDataset::from_file(&data_root.join(rel), remap.as_ref())?))
    };
    let (train, test) = (list("train_list", &spec.train_list)?, list("test_list", &spec.test_list)?);
    let num_classes = train.num_classes.max(test.num_classes);
    let mut class_counts = train.class_counts.clone();
    class_counts.resize(num_classes, 0);
    let image_root = match &spec.image_root {
        Some(r) => data_root.join(r),
        None => data_root.to_path_buf(),
    };
    Ok(Data::Lists(ListData {
        train,
        test,
        image_root,
        num_classes,
        class_counts,
        identity: identity(spec, data_root)?,
    }))
}

/// Identity of a list-file dataset: the SHA-256 of its train and test list files (the lists fix
/// which images and labels are used) and the path remap.
fn list_identity(spec: &DatasetSpec, data_root: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut parts = vec![format!("{:?}", spec.name).to_lowercase()];
    for (what, list) in [("train_list", &spec.train_list), ("test_list", &spec.test_list)] {
        let rel = list.as_ref().ok_or_else(|| {
            anyhow::anyhow!("dataset {:?} needs `{what}` (a list file relative to the data root)", spec.name)
        })?;
        let path = data_root.join(rel);
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the {what} {} ({e}); put the split lists under the data root (see README: datasets)",
                path.display()
            )
        })?;
        parts.push(format!("{what}={rel}:sha256={}", hex::encode(Sha256::digest(&bytes))));
    }
    if let Some((from, to)) = &spec.path_remap {
        parts.push(format!("remap={from}->{to}"));
    }

    Ok(parts.join(" "))
}

/// Load the dataset a spec names (cifar10, cifar100, synthetic) from `data_root`.
///
/// CIFAR: a prepared file `<data_root>/prepared/<name>` ([`prepared_file_name`]) is used when
/// present (what travels to a GPU host); otherwise the official binaries, verified on first use.
pub fn load(spec: &DatasetSpec, data_root: &Path) -> Result<LtData> {
    if spec.name == DatasetName::Synthetic {
        return synthetic::generate(spec);
    }
    let kind = cifar_kind(spec.name).ok_or_else(|| list_file_error(spec))?;
    let prepared = prepared_path(spec, data_root)?;
    if prepared.is_file() {
        return prepare::read(&prepared, spec);
    }
    load_cifar(kind, spec, data_root)
}

/// CIFAR-10/100 from the official binaries: the long-tailed train subset and the test set.
pub fn load_cifar(kind: Cifar, spec: &DatasetSpec, data_root: &Path) -> Result<LtData> {
    let identity = cifar_identity(kind, spec, data_root)?;
    let (train_px, train_labels) = cifar::read_split(kind, data_root, true)?;
    let kept = cifar_train_indices(kind, spec, &train_labels)?;
    let mut pixels = Vec::with_capacity(kept.len() * cifar::PIXELS);
    let mut labels = Vec::with_capacity(kept.len());
    for &i in &kept {
        pixels.extend_from_slice(&train_px[i * cifar::PIXELS..(i + 1) * cifar::PIXELS]);
        labels.push(train_labels[i]);
    }
    let (test_px, test_labels) = cifar::read_split(kind, data_root, false)?;
    let class_counts = counts_of(&labels, kind.num_classes());
    Ok(LtData {
        train: ImageSet::from_pixels(&pixels, labels),
        test: ImageSet::from_pixels(&test_px, test_labels),
        num_classes: kind.num_classes(),
        class_counts,
        mean: CIFAR_MEAN,
        std: CIFAR_STD,
        identity,
    })
}

/// The kept train indices of the long-tailed protocol, given the full train labels.
pub fn cifar_train_indices(kind: Cifar, spec: &DatasetSpec, train_labels: &[i64]) -> Result<Vec<usize>> {
    let n_max = train_labels.len() / kind.num_classes();
    let counts = longtail::class_counts(spec.profile, n_max, kind.num_classes(), spec.imbalance)?;
    longtail::select_indices(train_labels, &counts, spec.subset_seed)
}

/// Images per class of a label vector.
pub fn counts_of(labels: &[i64], num_classes: usize) -> Vec<usize> {
    let mut c = vec![0usize; num_classes];
    for &l in labels {
        c[l as usize] += 1;
    }
    c
}

/// A string identifying the data that determines results, cheap to compute without loading
/// images (it goes into the cache key). Identical settings give identical strings.
///
/// CIFAR-10: the official MD5s of its files (the files are verified against them at load) plus
/// profile, imbalance and subset seed. CIFAR-100: the same with the files' computed MD5s (no
/// trusted per-file MD5 exists; hashed once, then remembered). A prepared file carries the
/// identity it was made with, which equals the one computed from the binaries.
/// Synthetic: the generator version and its parameters.
pub fn identity(spec: &DatasetSpec, data_root: &Path) -> Result<String> {
    if spec.name == DatasetName::Synthetic {
        return Ok(synthetic::identity(spec));
    }
    let Some(kind) = cifar_kind(spec.name) else { return list_identity(spec, data_root) };
    let prepared = prepared_path(spec, data_root)?;
    if prepared.is_file() && !kind.dir(data_root).is_dir() {
        return Ok(prepare::read_header(&prepared)?.identity);
    }
    cifar_identity(kind, spec, data_root)
}

/// The data identity of a run as the run graph knows it: the [`identity`] string that goes into
/// the cache key, or why it cannot be computed here (files absent under this data root). A run
/// with unavailable data has no key: it is neither planned nor looked up, only reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataIdentity {
    Known(String),
    Unavailable { dataset: DatasetName, reason: String },
}

impl DataIdentity {
    pub fn of(spec: &DatasetSpec, data_root: &Path) -> DataIdentity {
        match identity(spec, data_root) {
            Ok(id) => DataIdentity::Known(id),
            Err(e) => DataIdentity::Unavailable { dataset: spec.name, reason: format!("{e:#}") },
        }
    }

    pub fn known(&self) -> Option<&str> {
        match self {
            DataIdentity::Known(id) => Some(id),
            DataIdentity::Unavailable { .. } => None,
        }
    }
}

/// Version of the long-tailed selection protocol as implemented here.
const PROTOCOL: &str = "cao2019-lt/v1";

fn cifar_identity(kind: Cifar, spec: &DatasetSpec, data_root: &Path) -> Result<String> {
    let files: Vec<String> = match kind {
        Cifar::C10 => kind.files().iter().map(|f| format!("{}:{}", f.name, f.md5.unwrap_or_default())).collect(),
        Cifar::C100 => cifar::verify_files(kind, data_root)?.into_iter().map(|(n, m)| format!("{n}:{m}")).collect(),
    };
    Ok(format!(
        "{} {PROTOCOL} profile={} imbalance={} subset_seed={} files={}",
        kind.name(),
        profile_name(spec.profile),
        spec.imbalance,
        spec.subset_seed,
        files.join(",")
    ))
}

pub fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Exp => "exp",
        Profile::Step => "step",
    }
}

/// File name of the prepared form of a spec, e.g. `cifar10-exp-100-seed0.gcl`.
/// Synthetic: `synthetic-c10-m500-t100-exp-50-seed0.gcl`.
pub fn prepared_file_name(spec: &DatasetSpec) -> Result<String> {
    let name = match spec.name {
        DatasetName::Synthetic => {
            format!("synthetic-c{}-m{}-t{}", spec.classes, spec.max_per_class, spec.test_per_class)
        }
        other => cifar_kind(other).ok_or_else(|| list_file_error(spec))?.name().to_string(),
    };
    Ok(format!("{name}-{}-{}-seed{}.gcl", profile_name(spec.profile), spec.imbalance, spec.subset_seed))
}

/// `<data_root>/prepared/<prepared_file_name>`.
pub fn prepared_path(spec: &DatasetSpec, data_root: &Path) -> Result<PathBuf> {
    Ok(data_root.join("prepared").join(prepared_file_name(spec)?))
}

/// Summary of a long-tailed train split (for `gcl-repro data info`).
pub struct SplitInfo {
    pub class_counts: Vec<usize>,
    /// CIFAR: the kept train indices (0-based positions in data_batch_1..5 concatenated),
    /// class by class. Synthetic: none (its images are generated, not selected).
    pub indices: Option<Vec<usize>>,
    pub identity: String,
}

/// Counts (and, for CIFAR, kept indices) of the long-tailed train split, reading labels only.
pub fn split_info(spec: &DatasetSpec, data_root: &Path) -> Result<SplitInfo> {
    if spec.name == DatasetName::Synthetic {
        return Ok(SplitInfo {
            class_counts: synthetic::train_counts(spec)?,
            indices: None,
            identity: synthetic::identity(spec),
        });
    }
    let kind = cifar_kind(spec.name).ok_or_else(|| list_file_error(spec))?;
    if !kind.dir(data_root).is_dir() {
        let prepared = prepared_path(spec, data_root)?;
        if prepared.is_file() {
            let h = prepare::read_header(&prepared)?;
            return Ok(SplitInfo { class_counts: h.class_counts, indices: h.train_indices, identity: h.identity });
        }
    }
    let (_, labels) = cifar::read_split(kind, data_root, true)?;
    let kept = cifar_train_indices(kind, spec, &labels)?;
    let kept_labels: Vec<i64> = kept.iter().map(|&i| labels[i]).collect();
    Ok(SplitInfo {
        class_counts: counts_of(&kept_labels, kind.num_classes()),
        indices: Some(kept),
        identity: cifar_identity(kind, spec, data_root)?,
    })
}

/// The text `gcl-repro data info` prints: per-class counts, total and imbalance ratio.
pub fn format_info(spec: &DatasetSpec, info: &SplitInfo) -> String {
    let mut s = format!(
        "dataset {:?}, profile {}, imbalance {}, subset_seed {}\n",
        spec.name,
        profile_name(spec.profile),
        spec.imbalance,
        spec.subset_seed
    );
    s += "class  train images\n";
    for (c, n) in info.class_counts.iter().enumerate() {
        s += &format!("{c:>5}  {n}\n");
    }
    let total: usize = info.class_counts.iter().sum();
    s += &format!("total  {total}\nimbalance ratio  {}\n", longtail::imbalance_ratio(&info.class_counts));
    s += &format!("identity  {}\n", info.identity);
    s
}

/// A byte-count progress bar with rate and ETA (hidden when stderr is not a terminal).
pub fn byte_bar(len: u64, msg: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_file_datasets_point_to_the_streaming_loader() {
        let spec = DatasetSpec { name: DatasetName::PlacesLt, ..DatasetSpec::default() };
        let err = load(&spec, Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(err.contains("streaming image loader"), "{err}");
    }

    #[test]
    fn prepared_name_and_identity_follow_the_spec() {
        let spec = DatasetSpec::default();
        assert_eq!(prepared_file_name(&spec).unwrap(), "cifar10-exp-100-seed0.gcl");
        let a = identity(&spec, Path::new("/nonexistent")).unwrap();
        assert!(a.contains("data_batch_1.bin:5dd7e06a14cb22eb9f671a540d1b7c25") && a.contains("imbalance=100"), "{a}");
        let b = identity(&DatasetSpec { imbalance: 50.0, ..spec.clone() }, Path::new("/nonexistent")).unwrap();
        assert_ne!(a, b);
    }
}

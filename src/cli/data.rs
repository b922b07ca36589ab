//! `gcl-repro data ...`: inspect, download and prepare datasets.
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Per-class counts of the long-tailed train split (and, for CIFAR, its kept indices).
    Info {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Write the kept train indices here, one per line (class 0's in shuffled order, then class 1's, ...).
        #[arg(long)]
        indices_out: Option<PathBuf>,
    },
    /// Download the official CIFAR archive into the data root (verified, unpacked atomically).
    Fetch {
        /// cifar10 or cifar100.
        #[arg(value_parser = parse_cifar)]
        dataset: gcl_repro::data::cifar::Cifar,
        /// A mirror of the archive (default: the official cs.toronto.edu URL).
        #[arg(long)]
        url: Option<String>,
        /// Expected MD5 of the archive at --url (default: the official archive's).
        #[arg(long)]
        md5: Option<String>,
    },
    /// Write the long-tailed split and its test set as one compressed file (for GPU hosts).
    Prepare {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Output file (default: <data-root>/prepared/<name>-<profile>-<imbalance>-seed<seed>.gcl, where `load` finds it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the long-tailed split and its test set as a safetensors file that Python reads
    /// (`train_images`/`test_images` uint8 [N, 3, 32, 32], `train_labels`/`test_labels` int64,
    /// `counts` int64 [C], `mean`/`std` float64 [3]): how an independent PyTorch script trains
    /// on exactly our data, the synthetic sets included (`scripts/fidelity_torch.py`'s `data_file`).
    Export {
        #[command(flatten)]
        dataset: DatasetArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert iNaturalist 2018's official JSON annotations to a `path label` list file.
    ConvertInat {
        /// The official annotations (train2018.json or val2018.json).
        json: PathBuf,
        /// The list file to write (e.g. <data-root>/splits/iNaturalist18_train.txt).
        out: PathBuf,
    },
}

/// The dataset settings of `data::spec::DatasetSpec` as flags.
#[derive(clap::Args)]
pub struct DatasetArgs {
    /// cifar10, cifar100 or synthetic.
    #[arg(long, default_value = "cifar10", value_parser = parse_snake::<gcl_repro::data::spec::DatasetName>)]
    dataset: gcl_repro::data::spec::DatasetName,
    /// gamma = n_max / n_min.
    #[arg(long, default_value_t = 100.0)]
    imbalance: f64,
    /// exp or step.
    #[arg(long, default_value = "exp", value_parser = parse_snake::<gcl_repro::data::spec::Profile>)]
    profile: gcl_repro::data::spec::Profile,
    /// Seed of the subset selection (0: the published protocol); for synthetic, the generator seed.
    #[arg(long, default_value_t = 0)]
    subset_seed: u64,
    /// Synthetic only: number of classes.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Synthetic only: train images of the largest class.
    #[arg(long, default_value_t = 500)]
    max_per_class: usize,
    /// Synthetic only: test images per class.
    #[arg(long, default_value_t = 100)]
    test_per_class: usize,
}

impl DatasetArgs {
    fn spec(&self) -> gcl_repro::data::spec::DatasetSpec {
        gcl_repro::data::spec::DatasetSpec {
            name: self.dataset,
            imbalance: self.imbalance,
            profile: self.profile,
            subset_seed: self.subset_seed,
            classes: self.classes,
            max_per_class: self.max_per_class,
            test_per_class: self.test_per_class,
            ..Default::default()
        }
    }
}

/// Parse a snake_case setting name the way manifests spell it.
pub fn parse_snake<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

fn parse_cifar(s: &str) -> std::result::Result<gcl_repro::data::cifar::Cifar, String> {
    match s {
        "cifar10" => Ok(gcl_repro::data::cifar::Cifar::C10),
        "cifar100" => Ok(gcl_repro::data::cifar::Cifar::C100),
        _ => Err(format!("unknown dataset '{s}': fetch knows cifar10 and cifar100")),
    }
}

pub fn exec(cmd: Command, ctx: &super::Context) -> Result<()> {
    use gcl_repro::data;
    let data_root = ctx.data_root.as_path();
    match cmd {
        Command::Info { dataset, indices_out } => {
            let spec = dataset.spec();
            let info = data::split_info(&spec, data_root)?;
            print!("{}", data::format_info(&spec, &info));
            if let Some(path) = indices_out {
                let indices = info.indices.ok_or_else(|| {
                    anyhow::anyhow!("--indices-out: the {:?} set is generated, it has no selected indices", spec.name)
                })?;
                let text: String = indices.iter().map(|i| format!("{i}\n")).collect();
                std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                println!("wrote {} indices to {}", indices.len(), path.display());
            }
            Ok(())
        }
        Command::Fetch { dataset, url, md5 } => {
            let dir = data::fetch::fetch(dataset, data_root, url.as_deref(), md5.as_deref())?;
            data::cifar::verify_files(dataset, data_root)?;
            println!("installed and verified {}", dir.display());
            Ok(())
        }
        Command::ConvertInat { json, out } => {
            let n = data::listfile::convert_inat_json(&json, &out)?;
            println!("wrote {n} lines to {}", out.display());
            Ok(())
        }
        Command::Export { dataset, out } => {
            let d = data::load(&dataset.spec(), data_root)?;
            let labels = |v: &[i64]| tch::Tensor::from_slice(v);
            let counts: Vec<i64> = d.class_counts.iter().map(|&n| n as i64).collect();
            let named = [
                ("train_images", d.train.images.shallow_clone()),
                ("train_labels", labels(&d.train.labels)),
                ("test_images", d.test.images.shallow_clone()),
                ("test_labels", labels(&d.test.labels)),
                ("counts", tch::Tensor::from_slice(&counts)),
                ("mean", tch::Tensor::from_slice(&d.mean)),
                ("std", tch::Tensor::from_slice(&d.std)),
            ];
            gcl_repro::atomic::write_with(&out, |tmp| Ok(tch::Tensor::write_safetensors(&named, tmp)?))?;
            println!(
                "wrote {} ({} train, {} test images, {} classes)",
                out.display(),
                d.train.len(),
                d.test.len(),
                d.num_classes
            );
            Ok(())
        }
        Command::Prepare { dataset, out } => {
            let spec = dataset.spec();
            let out = match out {
                Some(p) => p,
                None => data::prepared_path(&spec, data_root)?,
            };
            let size = data::prepare::prepare(&spec, data_root, &out)?;
            println!("wrote {} ({:.1} MiB)", out.display(), size as f64 / (1u64 << 20) as f64);
            Ok(())
        }
    }
}

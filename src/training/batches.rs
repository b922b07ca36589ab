//! Where training batches come from: the device-resident uint8 sets (CIFAR, synthetic), or
//! list-file datasets decoded from JPEG files batch by batch (ImageNet-LT, Places-LT, iNat).
//! The training loop only sees ordered batches of normalised images and their labels.
use super::augment::DeviceImages;
use crate::data::images::loader::{ImageLoader, LoaderOptions};
use crate::data::listfile::ListDataset;
use crate::data::Data;
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

pub type Batches<'a> = Box<dyn Iterator<Item = Result<(Tensor, Tensor)>> + 'a>;

pub trait BatchSource {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The samples at `order` (dataset indices), `batch_size` at a time, in order, on the
    /// training device; augmented when `augment`. Randomness derives from `seed`.
    fn batches(&self, order: Vec<usize>, batch_size: usize, augment: bool, seed: u64) -> Batches<'_>;
}

impl BatchSource for DeviceImages {
    fn len(&self) -> usize {
        DeviceImages::len(self)
    }

    fn batches(&self, order: Vec<usize>, batch_size: usize, augment: bool, _seed: u64) -> Batches<'_> {
        // Augmentation draws from libtorch's generator, which the trainer seeds every epoch.
        // The epoch's order goes to the device once; each batch is a slice of it there (a copy
        // from the host per batch would make a GPU wait for the previous step every step).
        let device = self.images.device();
        let idx: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let all = Tensor::from_slice(&idx).to_device(device);
        let (n, bs) = (idx.len() as i64, batch_size.max(1) as i64);
        Box::new(
            (0..n)
                .step_by(bs as usize)
                .map(move |start| Ok(self.batch(&all.narrow(0, start, bs.min(n - start)), augment))),
        )
    }
}

/// A list-file split decoded by the prefetching JPEG loader (ImageNet normalisation inside).
pub struct ListSource {
    pub data: Arc<ListDataset>,
    pub root: PathBuf,
    pub device: Device,
    /// `dataset.color_jitter` of the run (the training transform's colour jitter).
    pub color_jitter: bool,
}

impl BatchSource for ListSource {
    fn len(&self) -> usize {
        self.data.len()
    }

    fn batches(&self, order: Vec<usize>, batch_size: usize, augment: bool, seed: u64) -> Batches<'_> {
        let opts = LoaderOptions {
            batch_size: batch_size.max(1),
            color_jitter: self.color_jitter,
            ..LoaderOptions::default()
        };
        match ImageLoader::new(self.data.clone(), self.root.clone(), opts) {
            Ok(loader) => {
                let device = self.device;
                Box::new(
                    loader
                        .epoch(order, augment, seed)
                        .map(move |r| r.map(|(x, y)| (x.to_device(device), y.to_device(device)))),
                )
            }
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }
}

/// The train and test sources of a dataset on `device`.
pub fn sources(data: &Data, device: Device, color_jitter: bool) -> (Box<dyn BatchSource>, Box<dyn BatchSource>) {
    match data {
        Data::Memory(d) => (
            Box::new(DeviceImages::new(&d.train.images, &d.train.labels, d.mean, d.std, device)),
            Box::new(DeviceImages::new(&d.test.images, &d.test.labels, d.mean, d.std, device)),
        ),
        Data::Lists(d) => (
            Box::new(ListSource { data: d.train.clone(), root: d.image_root.clone(), device, color_jitter }),
            Box::new(ListSource { data: d.test.clone(), root: d.image_root.clone(), device, color_jitter }),
        ),
    }
}

/// Evenly spaced indices, at most `max` of `n` (all when n <= max).
pub fn spread(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    (0..max).map(|i| i * n / max).collect()
}

/// Labels as a CPU tensor, for the embedding files.
pub fn labels_tensor(labels: Vec<i64>) -> Tensor {
    Tensor::from_slice(&labels).to_kind(Kind::Int64)
}

//! The device-resident CIFAR pipeline: the uint8 train and test sets live on the training
//! device, and each batch is gathered, augmented (4-pixel zero padding + random 32x32 crop +
//! horizontal flip) and normalised there, so no host-side loader sits on the critical path.
use tch::{Device, Kind, Tensor};

pub struct DeviceImages {
    /// uint8 [N, 3, H, W] on the training device.
    pub images: Tensor,
    /// int64 [N] on the training device.
    pub labels: Tensor,
    mean: Tensor,
    std: Tensor,
}

impl DeviceImages {
    pub fn new(images: &Tensor, labels: &[i64], mean: [f64; 3], std: [f64; 3], device: Device) -> DeviceImages {
        let stat = |v: [f64; 3]| Tensor::from_slice(&v).to_kind(Kind::Float).view([1, 3, 1, 1]).to_device(device);
        DeviceImages {
            images: images.to_device(device),
            labels: Tensor::from_slice(labels).to_device(device),
            mean: stat(mean),
            std: stat(std),
        }
    }

    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A batch of the images at `idx` (an int64 tensor on the device): float, normalised,
    /// augmented when `augment` is set. Randomness comes from libtorch's generator, which the
    /// trainer seeds at every epoch.
    pub fn batch(&self, idx: &Tensor, augment: bool) -> (Tensor, Tensor) {
        let x = self.images.index_select(0, idx);
        let y = self.labels.index_select(0, idx);
        let x = if augment { pad_crop_flip(&x, 4) } else { x };
        let x = (x.to_kind(Kind::Float) / 255.0 - &self.mean) / &self.std;
        (x, y)
    }
}

/// Zero-pad by `pad` pixels, take a random crop of the original size per image, flip half of
/// the images horizontally. Done with two gathers so it is a handful of kernels per batch.
pub fn pad_crop_flip(x: &Tensor, pad: i64) -> Tensor {
    let (b, c, h, w) = x.size4().expect("images are [B, C, H, W]");
    let dev = x.device();
    let padded = x.constant_pad_nd([pad, pad, pad, pad]);
    let oy = Tensor::randint(2 * pad + 1, [b, 1], (Kind::Int64, dev));
    let ox = Tensor::randint(2 * pad + 1, [b, 1], (Kind::Int64, dev));
    let rows = (oy + Tensor::arange(h, (Kind::Int64, dev)).view([1, h])).view([b, 1, h, 1]);
    let cols = (ox + Tensor::arange(w, (Kind::Int64, dev)).view([1, w])).view([b, 1, 1, w]);
    let x = padded.gather(2, &rows.expand([b, c, h, w + 2 * pad], false), false);
    let x = x.gather(3, &cols.expand([b, c, h, w], false), false);
    let flip = Tensor::rand([b, 1, 1, 1], (Kind::Float, dev)).lt(0.5);
    x.flip([3]).where_self(&flip, &x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_a_shifted_window_of_the_padded_image() {
        tch::manual_seed(0);
        let x = Tensor::arange(2 * 3 * 8 * 8, (Kind::Int64, Device::Cpu)).view([2, 3, 8, 8]).to_kind(Kind::Uint8);
        let y = pad_crop_flip(&x, 2);
        assert_eq!(y.size(), vec![2, 3, 8, 8]);
        let padded = x.constant_pad_nd([2, 2, 2, 2]);
        for b in 0..2 {
            let yb = y.get(b);
            // Some offset (dy, dx) and flip must reproduce the output exactly.
            let mut found = false;
            for dy in 0..5 {
                for dx in 0..5 {
                    let win = padded.get(b).narrow(1, dy, 8).narrow(2, dx, 8);
                    if win.equal(&yb) || win.flip([2]).equal(&yb) {
                        found = true;
                    }
                }
            }
            assert!(found, "image {b} is not a crop of the padded image");
        }
    }

    #[test]
    fn batch_is_normalised() {
        let imgs = Tensor::full([4, 3, 2, 2], 255, (Kind::Uint8, Device::Cpu));
        let d = DeviceImages::new(&imgs, &[0, 1, 2, 3], [0.5; 3], [0.25; 3], Device::Cpu);
        let (x, y) = d.batch(&Tensor::from_slice(&[3i64, 1]), false);
        assert_eq!(Vec::<i64>::try_from(y).unwrap(), vec![3, 1]);
        assert!((x.mean(Kind::Float).double_value(&[]) - 2.0).abs() < 1e-6);
    }
}

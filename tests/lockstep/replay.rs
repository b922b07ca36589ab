//! What the two lockstep tests share (included by `#[path]`): the file a PyTorch recorder wrote,
//! and the replay of its recorded stream through our pieces: each epoch's batches from the
//! recorded order, crops and flips, and a step's mixup loss from its recorded draws.
use std::collections::HashMap;

use gcl_repro::data::{CIFAR_MEAN, CIFAR_STD};
use gcl_repro::losses::Criterion;
use gcl_repro::training::augment::{crop_flip_at, DeviceImages};
use gcl_repro::training::batches::BatchSource;
use gcl_repro::training::step::{mixup_step, MixupDraws};
use tch::{Device, Kind, Tensor};

/// Zero padding of the released RandomCrop(32, padding=4).
pub const PAD: i64 = 4;

/// What a recorder script wrote (`np.savez`).
pub struct Reference(pub HashMap<String, Tensor>);

impl Reference {
    pub fn read(path: &std::path::Path) -> Reference {
        Reference(
            Tensor::read_npz(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
                .into_iter()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> &Tensor {
        self.0.get(key).unwrap_or_else(|| panic!("the reference has no `{key}`"))
    }

    pub fn f64s(&self, key: &str) -> Vec<f64> {
        Vec::try_from(self.get(key).to_kind(Kind::Double).reshape([-1])).unwrap()
    }

    pub fn i64s(&self, key: &str) -> Vec<i64> {
        Vec::try_from(self.get(key).to_kind(Kind::Int64).view([-1])).unwrap()
    }

    /// Every tensor under `prefix`, by the rest of its key.
    pub fn under(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.0.iter().filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.shallow_clone()))).collect()
    }
}

/// One epoch's batches as our pipeline forms them from the order and crops recorded under
/// `epoch_key` (`<epoch_key>/order`, `oy`, `ox`, `flip`): the images in loader order cut by our
/// `crop_flip_at` at the recorded offsets and flips, then batched and normalised by `DeviceImages`.
pub fn epoch_batches(r: &Reference, epoch_key: &str, batch: usize) -> Vec<(Tensor, Tensor)> {
    let key = |k: &str| format!("{epoch_key}/{k}");
    let order = r.i64s(&key("order"));
    let column = |k: &str| r.get(&key(k)).to_kind(Kind::Int64).view([-1, 1]);
    let flip = r.get(&key("flip")).ne(0).view([-1, 1, 1, 1]);
    let images = r.get("data/images").index_select(0, &Tensor::from_slice(&order));
    let crops = crop_flip_at(&images, PAD, &column("oy"), &column("ox"), &flip);
    let labels = r.i64s("data/labels");
    let crop_labels: Vec<i64> = order.iter().map(|&i| labels[i as usize]).collect();
    let source = DeviceImages::new(&crops, &crop_labels, CIFAR_MEAN, CIFAR_STD, Device::Cpu);
    let batches: Vec<(Tensor, Tensor)> =
        source.batches((0..order.len()).collect(), batch, false, 0).map(|b| b.unwrap()).collect();
    batches
}

/// The loss of our `mixup_step` (the mixup branch of `supervised_step`) given the lambda,
/// permutation and the two terms' GCL samples recorded under `step_key` (`<step_key>/lam`,
/// `perm`, `eps_a`, `eps_b`).
pub fn replayed_mixup_loss(
    r: &Reference,
    step_key: &str,
    criterion: &Criterion,
    forward: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    y: &Tensor,
) -> Tensor {
    let key = |k: &str| format!("{step_key}/{k}");
    let noise = Some((r.get(&key("eps_a")), r.get(&key("eps_b"))));
    let draws = MixupDraws { lam: r.f64s(&key("lam"))[0], perm: r.get(&key("perm")), noise };
    mixup_step(criterion, forward, x, y, &draws).loss
}

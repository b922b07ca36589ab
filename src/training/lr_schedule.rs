//! Learning-rate schedules, as functions of the 1-based epoch.
use super::spec::{LrSchedule, OptimSpec};

/// The learning rate used throughout epoch `epoch` (1-based), as the released CIFAR code sets
/// it once at the start of each epoch.
pub fn lr_at(o: &OptimSpec, epoch: usize) -> f64 {
    match o.schedule {
        LrSchedule::WarmupStep => {
            if o.warmup_epochs > 0 && epoch <= o.warmup_epochs {
                // Linear warm-up from `warmup_start * lr`, epoch counted from 1: with start 0 the
                // GCL/LDAM code's `lr * epoch / warmup`; BBN's `WarmupMultiStepLR` (factor 1/3)
                // gives `lr * (1/3 (1 - e/W) + e/W)`.
                let t = epoch as f64 / o.warmup_epochs as f64;
                o.lr * (o.warmup_start * (1.0 - t) + t)
            } else {
                let passed = o.milestones.iter().filter(|&&m| epoch > m).count();
                o.lr * o.lr_decay.powi(passed as i32)
            }
        }
        LrSchedule::Cosine => {
            // 0.5 * lr * (1 + cos(pi * (epoch - 1) / epochs)): the peak `lr` at the first epoch.
            let t = (epoch.saturating_sub(1)) as f64 / o.epochs.max(1) as f64;
            0.5 * o.lr * (1.0 + crate::portable::cos(std::f64::consts::PI * t))
        }
    }
}

/// The released CIFAR stage-1 schedule (gcl-notes.md §3): 200 epochs, a linear warm-up over the
/// first 5 (`lr * epoch / 5`), x0.1 after epochs 160 and 180.
pub const RELEASED_EPOCHS: usize = 200;
pub const RELEASED_WARMUP_EPOCHS: usize = 5;
pub const RELEASED_MILESTONES: [usize; 2] = [160, 180];

/// A shorter run's stage-1 schedule: the one rule for every place that shrinks the released one
/// (the quick start, smoke scale, `bench fidelity`; `tests/schedule_rule.rs` holds the manifests
/// to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compressed {
    pub warmup_epochs: usize,
    pub milestones: Vec<usize>,
}

/// The released schedule shrunk to `epochs`. The warm-up is about the start, not the length: from
/// random weights the first epoch's loss is high (4 to 9 on the quick start, in our engine and in
/// the released recipe's PyTorch alike), and the released recipe climbs out of that over five
/// passes whose rate rises from lr/5. So the warm-up is kept whole (5 epochs, first rate lr/5)
/// wherever it fits in a quarter of the run, and takes a quarter (rounded down) of a shorter one;
/// scaled with the length (5 * epochs / 200) it would vanish below 40 epochs. With a 2-epoch
/// warm-up some quick-start runs stayed stuck in both engines; with 5 none did
/// (`results/collapse/`). The decays keep their place in the run: after 80 % and 90 % of it,
/// rounded; one at or past the last epoch never takes effect and is left out.
pub fn compress(epochs: usize) -> Compressed {
    let warmup_epochs = RELEASED_WARMUP_EPOCHS.min(epochs / 4);
    let milestones = RELEASED_MILESTONES
        .iter()
        .map(|&m| (m as f64 * epochs as f64 / RELEASED_EPOCHS as f64).round() as usize)
        .filter(|&m| m < epochs)
        .collect();
    Compressed { warmup_epochs, milestones }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::spec::{Stage1Spec, Stage2Spec};

    #[test]
    fn compression_keeps_the_warmup_whole_where_a_quarter_of_the_run_holds_it() {
        let c = |w: usize, m: &[usize]| Compressed { warmup_epochs: w, milestones: m.to_vec() };
        assert_eq!(compress(200), c(5, &[160, 180]), "the released schedule itself");
        assert_eq!(compress(30), c(5, &[24, 27]), "the quick start");
        assert_eq!(compress(20), c(5, &[16, 18]), "the shortest run with the whole warm-up");
        assert_eq!(compress(19), c(4, &[15, 17]));
        assert_eq!(compress(8), c(2, &[6, 7]));
        assert_eq!(compress(3), c(0, &[2]), "bench fidelity --epochs 3: no room, 2.7 rounds to the last epoch");
        assert_eq!(compress(2), c(0, &[]), "smoke scale");
        assert_eq!(compress(1), c(0, &[]));
        // The first epoch's rate is the released lr/5 wherever the warm-up is whole.
        let o = OptimSpec { epochs: 30, warmup_epochs: compress(30).warmup_epochs, ..Stage1Spec::default().optim };
        assert!((lr_at(&o, 1) - 0.02).abs() < 1e-12);
    }

    #[test]
    fn released_cifar_stage1_schedule() {
        let o = Stage1Spec::default().optim;
        assert!((lr_at(&o, 1) - 0.02).abs() < 1e-12);
        assert!((lr_at(&o, 5) - 0.1).abs() < 1e-12);
        assert!((lr_at(&o, 160) - 0.1).abs() < 1e-12);
        assert!((lr_at(&o, 161) - 0.01).abs() < 1e-12);
        assert!((lr_at(&o, 181) - 0.001).abs() < 1e-12);
        assert!((lr_at(&o, 200) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn bbn_warmup_from_a_third_and_two_hundredfold_steps() {
        // BBN's configs/cifar10.yaml: lr 0.1, WARM_EPOCH 5 (factor 1/3), LR_STEP [120, 160], x0.01,
        // stepped at the start of epoch e (1-based) with bisect_right: 1e-3 from epoch 120 on.
        let o = OptimSpec {
            warmup_start: 1.0 / 3.0,
            milestones: vec![119, 159],
            lr_decay: 0.01,
            ..Stage1Spec::default().optim
        };
        assert!((lr_at(&o, 1) - 0.1 * (1.0 / 3.0 * 0.8 + 0.2)).abs() < 1e-12);
        assert!((lr_at(&o, 4) - 0.1 * (1.0 / 3.0 * 0.2 + 0.8)).abs() < 1e-12);
        assert!((lr_at(&o, 5) - 0.1).abs() < 1e-12);
        assert!((lr_at(&o, 119) - 0.1).abs() < 1e-15);
        assert!((lr_at(&o, 120) - 1e-3).abs() < 1e-15);
        assert!((lr_at(&o, 160) - 1e-5).abs() < 1e-15);
    }

    #[test]
    fn released_stage2_cosine_peaks_at_0_002() {
        let o = Stage2Spec::default().optim;
        assert!((lr_at(&o, 1) - 0.002).abs() < 1e-12);
        assert!((lr_at(&o, 16) - 0.001).abs() < 1e-12);
        assert!(lr_at(&o, 30) < 0.0001);
    }
}

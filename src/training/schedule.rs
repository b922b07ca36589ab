//! Learning-rate schedules, as functions of the 1-based epoch.
use crate::config::{LrSchedule, OptimSpec};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Stage1Spec, Stage2Spec};

    #[test]
    fn released_cifar_stage1_schedule() {
        let o = Stage1Spec::default().optim();
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
            ..Stage1Spec::default().optim()
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
        let o = Stage2Spec::default().optim();
        assert!((lr_at(&o, 1) - 0.002).abs() < 1e-12);
        assert!((lr_at(&o, 16) - 0.001).abs() < 1e-12);
        assert!(lr_at(&o, 30) < 0.0001);
    }
}

//! The long-tailed CIFAR protocol of Cao et al. (2019), as in the released LDAM-DRW and GCL
//! code (`IMBALANCECIFAR10.get_img_num_per_cls` and `gen_imbalanced_data`).
use super::mt19937::Mt19937;
use crate::data::spec::Profile;
use anyhow::{bail, Result};

/// Images kept per class. `n_max` is the balanced per-class size (5000 for CIFAR-10).
///
/// exp: `int(n_max * (1/gamma) ** (i / (C - 1)))`, computed in f64 in the same order as the
/// Python code so that truncation lands on the same integer.
/// step: the first `C/2` classes keep `n_max`, the rest `int(n_max * (1/gamma))`.
pub fn class_counts(profile: Profile, n_max: usize, num_classes: usize, gamma: f64) -> Result<Vec<usize>> {
    if !gamma.is_finite() || gamma < 1.0 {
        bail!("imbalance must be a finite number >= 1 (gamma = n_max / n_min), got {gamma}");
    }
    if num_classes < 2 {
        bail!("a long-tailed split needs at least 2 classes, got {num_classes}");
    }
    let n_max_f = n_max as f64;
    let factor = 1.0 / gamma;
    let counts = match profile {
        Profile::Exp => {
            (0..num_classes).map(|i| (n_max_f * factor.powf(i as f64 / (num_classes as f64 - 1.0))) as usize).collect()
        }
        Profile::Step => {
            let half = num_classes / 2;
            (0..num_classes).map(|i| if i < half { n_max } else { (n_max_f * factor) as usize }).collect()
        }
    };
    Ok(counts)
}

/// The kept train indices: `np.random.seed(seed)`, then for each class `c` in order,
/// `idx = np.where(labels == c)[0]; np.random.shuffle(idx); keep idx[:counts[c]]`.
/// Returned class by class (class 0's kept indices in shuffled order, then class 1's, ...).
pub fn select_indices(labels: &[i64], counts: &[usize], seed: u64) -> Result<Vec<usize>> {
    let seed = u32::try_from(seed)
        .map_err(|_| anyhow::anyhow!("subset_seed must be below 2^32 (numpy's RandomState seed range), got {seed}"))?;
    let mut rng = Mt19937::new(seed);
    let mut kept = Vec::with_capacity(counts.iter().sum());
    for (c, &n) in counts.iter().enumerate() {
        let mut idx: Vec<usize> = labels.iter().enumerate().filter(|(_, &l)| l == c as i64).map(|(i, _)| i).collect();
        if idx.len() < n {
            bail!("class {c} has {} images but the long-tailed profile asks for {n}", idx.len());
        }
        rng.shuffle(&mut idx);
        kept.extend_from_slice(&idx[..n]);
    }
    Ok(kept)
}

/// `n_max / n_min` of a count vector (the realised imbalance ratio).
pub fn imbalance_ratio(counts: &[usize]) -> f64 {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    let min = counts.iter().copied().min().unwrap_or(0) as f64;
    if min == 0.0 {
        f64::INFINITY
    } else {
        max / min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar10_gamma100_counts() {
        let c = class_counts(Profile::Exp, 5000, 10, 100.0).unwrap();
        assert_eq!(c, vec![5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]);
        assert_eq!(c.iter().sum::<usize>(), 12_406);
        assert_eq!(imbalance_ratio(&c), 100.0);
    }

    #[test]
    fn cifar100_gamma100_total_and_step() {
        let c = class_counts(Profile::Exp, 500, 100, 100.0).unwrap();
        assert_eq!(c.iter().sum::<usize>(), 10_847);
        let s = class_counts(Profile::Step, 5000, 10, 10.0).unwrap();
        assert_eq!(s, vec![5000, 5000, 5000, 5000, 5000, 500, 500, 500, 500, 500]);
    }

    #[test]
    fn bad_gamma_and_short_class_are_errors() {
        assert!(class_counts(Profile::Exp, 5000, 10, 0.5).unwrap_err().to_string().contains("imbalance"));
        let err = select_indices(&[0, 0, 1], &[2, 2], 0).unwrap_err().to_string();
        assert!(err.contains("class 1 has 1 images"), "{err}");
    }
}

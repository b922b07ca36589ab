//! Class statistics that losses and samplers share, computed from the class counts alone:
//! GCL's cloud sizes (the log schedule is also CBEN's `delta_j`) and the effective-number
//! weights of Cui et al. 2019 (EN and CBEN sampling, LDAM-DRW's deferred re-weighting, the
//! class-balanced loss). Both `losses` and `data::samplers` import them from here.
use crate::portable;
use serde::{Deserialize, Serialize};

/// How the cloud size grows from head (0) to tail (1) classes; Table 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CloudSchedule {
    /// `log n_max - log n_j` (default).
    #[default]
    Log,
    /// `n_max^(1/3) - n_j^(1/3)`.
    PowThird,
    /// `n_max^(1/4) - n_j^(1/4)`.
    PowQuarter,
    /// `cos(n_j / n_max * pi/2)`.
    Cos,
}

/// Cloud size per class (paper Table 3), normalised so the largest is 1 (head class: 0).
/// A balanced set (all sizes 0) gives all zeros.
pub fn cloud_sizes(schedule: CloudSchedule, counts: &[usize]) -> Vec<f64> {
    let n_max = counts.iter().copied().max().unwrap_or(0) as f64;
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| {
            let n = n as f64;
            match schedule {
                CloudSchedule::Log => portable::ln(n_max) - portable::ln(n),
                CloudSchedule::PowThird => portable::pow(n_max, 1.0 / 3.0) - portable::pow(n, 1.0 / 3.0),
                CloudSchedule::PowQuarter => portable::pow(n_max, 0.25) - portable::pow(n, 0.25),
                CloudSchedule::Cos => portable::cos(n / n_max * std::f64::consts::FRAC_PI_2),
            }
        })
        .collect();
    let max = raw.iter().cloned().fold(0.0, f64::max);
    raw.iter().map(|&d| if max > 0.0 { d / max } else { 0.0 }).collect()
}

/// Effective-number weight `(1-beta)/(1-beta^n)` of one image of a class with n images
/// (0 for an empty class, which is never drawn).
pub fn effective_weight(beta: f64, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        (1.0 - beta) / (1.0 - portable::pow(beta, n as f64))
    }
}

/// LDAM-DRW's deferred re-weighting: per-class weights (1-beta)/(1-beta^n_j), normalised so
/// they sum to the number of classes (Cao et al. 2019).
pub fn drw_weights(counts: &[usize], beta: f64) -> Vec<f64> {
    let w: Vec<f64> = counts.iter().map(|&n| effective_weight(beta, n)).collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total * counts.len() as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_schedules_known_values() {
        let close_all = |a: Vec<f64>, b: &[f64]| {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
            }
        };
        close_all(cloud_sizes(CloudSchedule::Log, &[100, 10, 1]), &[0.0, 0.5, 1.0]);
        close_all(cloud_sizes(CloudSchedule::PowThird, &[1000, 125, 8, 1]), &[0.0, 5.0 / 9.0, 8.0 / 9.0, 1.0]);
        close_all(cloud_sizes(CloudSchedule::PowQuarter, &[10000, 625, 16, 1]), &[0.0, 5.0 / 9.0, 8.0 / 9.0, 1.0]);
        // cos(pi/2) = 0, cos(pi/4), cos(pi/6); divided by cos(pi/6).
        close_all(cloud_sizes(CloudSchedule::Cos, &[6, 3, 2]), &[0.0, (2.0f64 / 3.0).sqrt(), 1.0]);
        close_all(cloud_sizes(CloudSchedule::Log, &[7, 7]), &[0.0, 0.0]);
    }
}

//! Samplers: class probabilities follow the formulas, and epoch draws follow the probabilities.
use gcl_repro::data::samplers::SamplerSpec;
use gcl_repro::data::samplers::{class_probabilities, drw_weights, epoch_indices, Cben};

const GAMMA100: [usize; 10] = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50];

/// The sampler named `kind` with its default parameters.
fn spec(kind: &str) -> SamplerSpec {
    SamplerSpec::default_of(kind).unwrap()
}

fn labels_of(counts: &[usize]) -> Vec<i64> {
    counts.iter().enumerate().flat_map(|(c, &n)| std::iter::repeat_n(c as i64, n)).collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1e-12)
}

#[test]
fn probabilities_follow_the_formulas() {
    let n = GAMMA100.iter().sum::<usize>() as f64;
    let ib = class_probabilities(&spec("ib"), &GAMMA100);
    assert!(close(ib[0], 5000.0 / n, 1e-12) && close(ib[9], 50.0 / n, 1e-12));
    for kind in ["cb", "class_aware"] {
        assert!(class_probabilities(&spec(kind), &GAMMA100).iter().all(|&p| close(p, 0.1, 1e-12)));
    }
    // EN, beta 0.9999: class mass n_j (1-beta)/(1-beta^n_j), normalised.
    let en = class_probabilities(&spec("en"), &GAMMA100);
    let mass: Vec<f64> = GAMMA100.iter().map(|&n| n as f64 * 1e-4 / (1.0 - 0.9999f64.powi(n as i32))).collect();
    let total: f64 = mass.iter().sum();
    for (p, m) in en.iter().zip(&mass) {
        assert!(close(*p, m / total, 1e-9), "{p} vs {}", m / total);
    }
    assert!(en[0] > en[9] && en[9] > ib[9], "EN lies between IB and CB: {en:?}");
    for p in [&ib, &en] {
        assert!(close(p.iter().sum::<f64>(), 1.0, 1e-12));
    }
}

#[test]
fn cben_released_and_paper_settings_differ() {
    let released = class_probabilities(&SamplerSpec::Cben(Cben { a: 0.9999, b: 1e-5 }), &GAMMA100);
    let paper = class_probabilities(&SamplerSpec::Cben(Cben { a: 0.999, b: 0.0009 }), &GAMMA100);
    // Head class (delta 0): beta = a. Tail (delta 1): beta = a + b.
    let mass = |beta: f64, n: usize| n as f64 * (1.0 - beta) / (1.0 - beta.powi(n as i32));
    assert!(close(released[0] / released[9], mass(0.9999, 5000) / mass(0.99991, 50), 1e-9));
    assert!(close(paper[0] / paper[9], mass(0.999, 5000) / mass(0.9999, 50), 1e-9));
    // The paper's a = 0.999 caps the head's effective number near 1000, so the head keeps far
    // more mass (0.286) than with the released a = 0.9999 (0.119, close to class-balanced).
    assert!(paper[0] > 2.0 * released[0], "paper {:.4} vs released {:.4}", paper[0], released[0]);
    assert!(paper[9] < released[9]);
}

#[test]
fn draws_follow_the_probabilities() {
    let labels = labels_of(&GAMMA100);
    for kind in ["cb", "en", "cben", "class_aware"] {
        let s = spec(kind);
        let probs = class_probabilities(&s, &GAMMA100);
        let mut hist = [0usize; 10];
        let mut draws = 0;
        for epoch in 0..8 {
            for i in epoch_indices(&s, &labels, &GAMMA100, epoch) {
                hist[labels[i] as usize] += 1;
                draws += 1;
            }
        }
        // Chi-square with 9 degrees of freedom: 99.9th percentile is 27.9.
        let chi2: f64 =
            hist.iter().zip(&probs).map(|(&o, &p)| (o as f64 - p * draws as f64).powi(2) / (p * draws as f64)).sum();
        assert!(chi2 < 27.9, "{kind:?}: chi2 {chi2:.1}, hist {hist:?}, probs {probs:?}");
    }
}

#[test]
fn epochs_are_deterministic_and_ib_is_a_permutation() {
    let labels = labels_of(&GAMMA100);
    let s = spec("ib");
    let a = epoch_indices(&s, &labels, &GAMMA100, 7);
    assert_eq!(a, epoch_indices(&s, &labels, &GAMMA100, 7));
    assert_ne!(a, epoch_indices(&s, &labels, &GAMMA100, 8));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..labels.len()).collect::<Vec<_>>());
    let cb = spec("cb");
    let d = epoch_indices(&cb, &labels, &GAMMA100, 3);
    assert_eq!(d.len(), labels.len());
    assert_eq!(d, epoch_indices(&cb, &labels, &GAMMA100, 3));
}

#[test]
fn empty_classes_are_never_drawn() {
    let counts = [10, 0, 5];
    let labels = labels_of(&counts);
    let d = epoch_indices(&spec("class_aware"), &labels, &counts, 1);
    assert!(d.iter().all(|&i| labels[i] != 1));
    assert_eq!(class_probabilities(&spec("cb"), &counts)[1], 0.0);
}

#[test]
fn drw_weights_sum_to_classes_and_favour_tails() {
    let w = drw_weights(&GAMMA100, 0.9999);
    assert!(close(w.iter().sum::<f64>(), 10.0, 1e-12));
    assert!(w.windows(2).all(|p| p[0] < p[1]), "{w:?}");
    // Ratio of tail to head weight is the ratio of inverse effective numbers.
    let en = |n: i32| (1.0 - 0.9999f64.powi(n)) / 1e-4;
    assert!(close(w[9] / w[0], en(5000) / en(50), 1e-9));
}

#[test]
fn reversed_sampler_favours_the_tail_as_bbn_does() {
    let counts = [100usize, 10];
    let p = gcl_repro::data::samplers::class_probabilities(&spec("reversed"), &counts);
    // Class probability proportional to 1/n_j: 1/100 : 1/10.
    assert!((p[0] - 1.0 / 11.0).abs() < 1e-12 && (p[1] - 10.0 / 11.0).abs() < 1e-12, "{p:?}");
}

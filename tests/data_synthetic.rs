//! The built-in synthetic long-tailed set: deterministic, correctly shaped, and neither trivial
//! nor unlearnable.
use gcl_repro::data::spec::{DatasetName, DatasetSpec};
use gcl_repro::data::{self, LtData};
use sha2::{Digest, Sha256};
use std::path::Path;

fn quick_start() -> DatasetSpec {
    DatasetSpec {
        name: DatasetName::Synthetic,
        classes: 10,
        max_per_class: 500,
        imbalance: 50.0,
        test_per_class: 100,
        ..DatasetSpec::default()
    }
}

fn digest(d: &LtData) -> String {
    let mut h = Sha256::new();
    h.update(d.train.pixels());
    h.update(d.test.pixels());
    for l in d.train.labels.iter().chain(&d.test.labels) {
        h.update(l.to_le_bytes());
    }
    hex::encode(h.finalize())
}

#[test]
fn same_spec_same_bytes_other_seed_other_bytes() {
    let spec = quick_start();
    let a = data::load(&spec, Path::new("/nonexistent")).unwrap();
    let b = data::load(&spec, Path::new("/nonexistent")).unwrap();
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(a.identity, data::identity(&spec, Path::new("/nonexistent")).unwrap());
    let c = data::load(&DatasetSpec { subset_seed: 1, ..spec.clone() }, Path::new("/nonexistent")).unwrap();
    assert_ne!(digest(&a), digest(&c));
    assert_ne!(a.identity, c.identity);
}

#[test]
fn shapes_counts_and_order() {
    let d = data::load(&quick_start(), Path::new("/nonexistent")).unwrap();
    assert_eq!(d.class_counts, vec![500, 323, 209, 135, 87, 56, 36, 23, 15, 10]);
    assert_eq!(d.train.images.size(), vec![1394, 3, 32, 32]);
    assert_eq!(d.train.images.kind(), tch::Kind::Uint8);
    assert_eq!(d.test.images.size(), vec![1000, 3, 32, 32]);
    assert!(d.train.labels.windows(2).all(|w| w[0] <= w[1]), "train is class by class");
    assert_eq!(data::counts_of(&d.test.labels, 10), vec![100; 10]);
    assert!(
        d.mean.iter().all(|m| (0.3..0.7).contains(m)) && d.std.iter().all(|s| (0.1..0.4).contains(s)),
        "{:?} {:?}",
        d.mean,
        d.std
    );
}

/// Nearest class mean (computed from the balanced test set itself, i.e. an oracle that knows
/// every class equally well): the classes must be separable by their means, but far from
/// perfectly, so that a model seeing 10 images of a tail class has real work to do.
#[test]
fn classes_are_learnable_but_noisy() {
    let d = data::load(&quick_start(), Path::new("/nonexistent")).unwrap();
    let px = d.test.pixels();
    let dim = 3 * 32 * 32;
    let mut means = vec![vec![0f64; dim]; 10];
    for (img, &l) in px.chunks_exact(dim).zip(&d.test.labels) {
        for (m, &p) in means[l as usize].iter_mut().zip(img) {
            *m += p as f64 / 100.0;
        }
    }
    let correct = px
        .chunks_exact(dim)
        .zip(&d.test.labels)
        .filter(|(img, &l)| {
            let dist = |m: &Vec<f64>| m.iter().zip(img.iter()).map(|(a, &b)| (a - b as f64).powi(2)).sum::<f64>();
            let best = (0..10).min_by(|&i, &j| dist(&means[i]).partial_cmp(&dist(&means[j])).unwrap()).unwrap();
            best == l as usize
        })
        .count();
    let acc = correct as f64 / 1000.0;
    eprintln!("nearest-class-mean accuracy (oracle means): {acc:.3}");
    assert!(acc > 0.2 && acc < 0.9, "accuracy {acc}");
}

#[test]
fn bad_synthetic_settings_are_one_clear_error() {
    let spec = DatasetSpec { max_per_class: 20, imbalance: 100.0, ..quick_start() };
    let err = data::load(&spec, Path::new("/nonexistent")).unwrap_err().to_string();
    assert!(err.contains("would get no training image"), "{err}");
}

#[test]
fn prepared_form_round_trips_without_cifar() {
    let spec = quick_start();
    let d = data::load(&spec, Path::new("/nonexistent")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(data::prepared_file_name(&spec).unwrap());
    assert!(out.ends_with("synthetic-c10-m500-t100-exp-50-seed0.gcl"));
    // Strong pixel noise does not compress; only the round trip matters here.
    data::prepare::prepare(&spec, tmp.path(), &out).unwrap();
    let back = data::prepare::read(&out, &spec).unwrap();
    assert_eq!(digest(&back), digest(&d));
    assert_eq!((back.identity, back.mean, back.class_counts), (d.identity, d.mean, d.class_counts));
    let err = data::prepare::read(&out, &DatasetSpec { classes: 5, ..spec }).unwrap_err().to_string();
    assert!(err.contains("not the requested"), "{err}");
}

#[test]
fn bytes_are_pinned_on_every_machine() {
    // synthetic/v3 is generated with `portable` math and exact float arithmetic only, so these
    // are its bytes on every machine; a change of the generator must bump GENERATOR_VERSION.
    let d = data::load(&quick_start(), Path::new("/nonexistent")).unwrap();
    assert_eq!(d.identity.split(' ').next(), Some("synthetic/v3"));
    assert_eq!(digest(&d), "fac17210398d02e038ded5cba8df2a8675d0b4beaa7f98ff198032db76253c5a");
}

//! t-SNE: separated clusters stay separated, and a seed gives the same map every time.
use gcl_repro::report::tsne::{gaussian_clusters, knn_label_agreement, tsne, TsneInit, TsneOptions};

#[test]
fn separated_clusters_keep_their_neighbours() {
    // 5 Gaussian clusters in 64-d, 500 points, the paper's settings (perplexity 50, ...).
    let (data, labels) = gaussian_clusters(500, 64, 5, 3.0, 1);
    let map = tsne(&data, 500, 64, &TsneOptions { threads: 2, ..TsneOptions::default() });
    assert_eq!(map.len(), 500);
    assert!(map.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
    let agreement = knn_label_agreement(&map, &labels, 10);
    assert!(agreement > 0.95, "10-NN label agreement {agreement:.3} <= 0.95");
    // The map must actually have spread out from the 1e-4-scale initialisation.
    let spread = map.iter().map(|p| p[0].abs().max(p[1].abs())).fold(0f32, f32::max);
    assert!(spread > 1.0, "map did not expand: max |coordinate| = {spread}");
}

#[test]
fn same_seed_same_map_whatever_the_thread_count() {
    let (data, _) = gaussian_clusters(300, 16, 3, 2.0, 2);
    for init in [TsneInit::Pca, TsneInit::Random] {
        let opts = TsneOptions { iterations: 300, init, seed: 5, threads: 2, ..TsneOptions::default() };
        let a = tsne(&data, 300, 16, &opts);
        let b = tsne(&data, 300, 16, &opts);
        let c = tsne(&data, 300, 16, &TsneOptions { threads: 1, ..opts.clone() });
        assert_eq!(a, b, "{init:?}: two runs with the same seed differ");
        assert_eq!(a, c, "{init:?}: 1 and 2 threads differ");
    }
    // A different seed changes a random initialisation.
    let r = |seed| {
        tsne(&data, 300, 16, &TsneOptions { iterations: 50, init: TsneInit::Random, seed, ..TsneOptions::default() })
    };
    assert_ne!(r(1), r(2));
}

#[test]
fn knn_agreement_measures_label_mixing() {
    // Two labels on two far apart spots: perfect; interleaved labels on a line: poor.
    let pts: Vec<[f32; 2]> =
        (0..20).map(|i| if i < 10 { [i as f32 * 0.01, 0.0] } else { [100.0 + i as f32 * 0.01, 0.0] }).collect();
    let labels: Vec<usize> = (0..20).map(|i| i / 10).collect();
    assert_eq!(knn_label_agreement(&pts, &labels, 3), 1.0);
    let line: Vec<[f32; 2]> = (0..20).map(|i| [i as f32, 0.0]).collect();
    let alt: Vec<usize> = (0..20).map(|i| i % 2).collect();
    assert!(knn_label_agreement(&line, &alt, 2) < 0.1);
}

//! Figures: each plot writes a non-empty PNG of the declared size and a matching SVG.
//! Set GCL_KEEP_PLOTS=DIR to keep the files for a look.
use gcl_repro::metrics::EpochRecord;
use gcl_repro::report::plot::*;
use gcl_repro::report::tsne::gaussian_clusters;
use std::path::{Path, PathBuf};

fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("GCL_KEEP_PLOTS") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

fn check(files: &PlotFiles, size: (u32, u32)) {
    let img = image::open(&files.png).unwrap_or_else(|e| panic!("{}: {e}", files.png.display()));
    assert_eq!((img.width(), img.height()), size, "{}", files.png.display());
    // Not a blank canvas: a good share of pixels are not white.
    let rgb = img.to_rgb8();
    let inked = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(inked > (size.0 * size.1 / 200) as usize, "{} is almost blank", files.png.display());
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    assert!(svg.contains(&format!("width=\"{}\"", size.0)) && svg.contains("<text"), "{}", files.svg.display());
}

fn has_text(svg: &Path, s: &str) -> bool {
    std::fs::read_to_string(svg).unwrap().contains(s)
}

#[test]
fn tsne_grid_has_panels_and_head_to_tail_legend() {
    let (_keep, dir) = out_dir();
    // Pretend 2-d embeddings: 4 classes with 500/200/100/50 points (Fig. 1's class sizes).
    let sizes = [500usize, 200, 100, 50];
    let panel = |seed| {
        let (data, _) = gaussian_clusters(850, 2, 1, 0.0, seed);
        let labels: Vec<usize> = sizes.iter().enumerate().flat_map(|(k, &n)| std::iter::repeat_n(k, n)).collect();
        let centre = |k: usize| [10.0 * (k % 2) as f32, 10.0 * (k / 2) as f32];
        let points =
            data.chunks(2).zip(&labels).map(|(c, &k)| [c[0] * 2.0 + centre(k)[0], c[1] * 2.0 + centre(k)[1]]).collect();
        TsnePanel { points, labels }
    };
    let fig = TsneFigure {
        title: "Fig. 3: t-SNE of CIFAR-10-LT embeddings (γ = 100)".into(),
        class_names: vec!["dog".into(), "airplane".into(), "truck".into(), "cat".into()],
        class_sizes: vec![200, 500, 50, 100],
        methods: vec!["CE".into(), "GCL".into()],
        splits: vec!["train".into(), "test".into()],
        panels: vec![vec![panel(1), panel(2)], vec![panel(3), panel(4)]],
    };
    let files = plot_tsne(&fig, &dir.join("tsne")).unwrap();
    check(&files, (640 * 2 + 300, 70 + 640 * 2));
    assert!(has_text(&files.svg, "GCL — test (850 points)"));
    // Legend is ordered head to tail with class sizes.
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    let pos = |s: &str| svg.find(s).unwrap_or_else(|| panic!("legend entry {s} missing"));
    assert!(
        pos("airplane (500)") < pos("dog (200)")
            && pos("dog (200)") < pos("cat (100)")
            && pos("cat (100)") < pos("truck (50)")
    );

    let mut bad = fig.clone();
    bad.panels[1].pop();
    let err = plot_tsne(&bad, &dir.join("bad")).unwrap_err().to_string();
    assert!(err.contains("GCL") && err.contains("1 panels for 2 splits"), "{err}");
}

fn epochs(stage: u8, n: usize, acc0: f64) -> Vec<EpochRecord> {
    (1..=n)
        .map(|e| EpochRecord {
            stage,
            epoch: e,
            lr: if stage == 1 { 0.1 * (1.0 - e as f64 / n as f64) } else { 0.01 },
            train_loss: 2.3 / (1.0 + 0.1 * e as f64),
            train_acc: (acc0 + 0.4 * e as f64).min(99.0),
            test_top1: (acc0 + 0.3 * e as f64).min(90.0),
            test_top5: 95.0,
            many: None,
            medium: None,
            few: None,
            images_per_sec: 1000.0,
            seconds: 5.0,
        })
        .collect()
}

#[test]
fn training_curves_show_both_stages() {
    let (_keep, dir) = out_dir();
    let mut gcl = epochs(1, 200, 20.0);
    gcl.extend(epochs(2, 10, 82.0));
    let runs = vec![
        CurveRun { label: "CE seed 0".into(), epochs: epochs(1, 200, 18.0) },
        CurveRun { label: "GCL seed 0".into(), epochs: gcl },
    ];
    let files = plot_training_curves("CIFAR-10-LT γ = 100: training", &runs, &dir.join("curves")).unwrap();
    check(&files, (1950, 620));
    for s in ["Training loss", "Learning rate", "stage 2 →", "GCL seed 0", "epoch (stage 2 continues after stage 1)"]
    {
        assert!(has_text(&files.svg, s), "{s} missing");
    }
    assert!(plot_training_curves("empty", &[], &dir.join("none")).is_err());
}

#[test]
fn per_class_accuracy_against_class_size() {
    let (_keep, dir) = out_dir();
    let counts: Vec<usize> = (0..10).map(|k| (5000.0 * 0.01f64.powf(k as f64 / 9.0)) as usize).collect();
    let series = vec![
        PerClassSeries {
            label: "CE".into(),
            class_counts: counts.clone(),
            accuracy: (0..10).map(|k| 95.0 - 7.0 * k as f64).collect(),
        },
        PerClassSeries {
            label: "GCL".into(),
            class_counts: counts.clone(),
            accuracy: (0..10).map(|k| 92.0 - 3.0 * k as f64).collect(),
        },
    ];
    let files =
        plot_per_class_accuracy("CIFAR-10-LT γ = 100: per-class accuracy", &series, &dir.join("per_class")).unwrap();
    check(&files, (1100, 720));
    assert!(has_text(&files.svg, "training images of the class (log scale)"));
    let mut bad = series.clone();
    bad[1].accuracy.pop();
    assert!(plot_per_class_accuracy("bad", &bad, &dir.join("bad"))
        .unwrap_err()
        .to_string()
        .contains("\"GCL\" has 10 class counts but 9"));
}

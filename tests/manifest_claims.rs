//! The manifests in `experiments/` run what their labels and comments promise.
//!
//! Every cell of every manifest resolves (at full and smoke scale) and `explain` prints it with
//! its keys; for named cells the resolved stage-1 and stage-2 loss kind, scale s, margin m,
//! noise multiplier c, focal gamma, cloud schedule, sampler and schedule are checked against the
//! values written in the manifest comments (which cite the released code). The expected values
//! here are copied from those comments and the released files, not from our defaults.
use gcl_repro::data::samplers::SamplerSpec;
use gcl_repro::data::samplers::{Cb, Cben, ClassAware, En, Ib};
use gcl_repro::losses::{Ce, LabelAwareSmoothing, Ldam};
use gcl_repro::losses::{CloudSchedule, LasShape, LossSpec};
use gcl_repro::manifest::{self, TableCell};
use gcl_repro::models::spec::{Arch, Head};
use gcl_repro::training::rebalance::{ClassifierInit, Rebalance};
use gcl_repro::training::rebalance::{Crt, Lws, TauNorm};
use gcl_repro::training::spec::LrSchedule;
use gcl_repro::training::spec::{RunSpec, Scale, Stage2Spec};
use std::path::{Path, PathBuf};

fn experiments() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments")
}

fn cells(name: &str) -> Vec<TableCell> {
    let m = manifest::load(&experiments().join(name)).unwrap();
    manifest::expand(&m, Scale::Full, Path::new("/nonexistent-data-root")).unwrap()
}

fn spec(cells: &[TableCell], id: &str) -> RunSpec {
    let c = cells.iter().find(|c| c.id() == id).unwrap_or_else(|| panic!("no cell {id}"));
    c.runs[0].spec.clone()
}

/// (s, m, c, focal gamma, cloud) of a GCL loss; any other kind fails.
fn loss(l: &LossSpec) -> (f64, f64, f64, f64, CloudSchedule) {
    match l {
        LossSpec::Gcl(g) => (g.scale, g.margin, g.noise_mul, g.focal_gamma, g.cloud),
        other => panic!("expected the GCL loss, got {other:?}"),
    }
}

/// The released GCL losses (cifar_train_backbone.py / cifar_train_classifier.py): stage 1
/// s = 30, m = 0, c = 0.5, no focal; stage 2 s = 20, m = 0.1, c = 0.5, focal gamma 1.
fn gcl1(cloud: CloudSchedule, c: f64) -> (f64, f64, f64, f64, CloudSchedule) {
    (30.0, 0.0, c, 0.0, cloud)
}
fn gcl2(cloud: CloudSchedule, c: f64) -> (f64, f64, f64, f64, CloudSchedule) {
    (20.0, 0.1, c, 1.0, cloud)
}

fn assert_released_cben(s2: &Stage2Spec) {
    assert_eq!(s2.sampler, SamplerSpec::Cben(Cben { a: 0.9999, b: 1e-5 }));
}

#[test]
fn every_cell_of_every_manifest_resolves_and_explains() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(experiments())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    let (mut explained, mut with_keys) = (0, 0);
    for file in files {
        let m = manifest::load(&file).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
        for scale in [Scale::Full, Scale::Smoke] {
            for cell in manifest::expand(&m, scale, Path::new("/nonexistent-data-root")).unwrap() {
                let text = gcl_repro::explain::explain_cell(&m, &cell);
                for run in &cell.runs {
                    match &run.keys {
                        Some(keys) => {
                            assert!(text.contains(&keys.stage1), "{}: {text}", cell.id());
                            if let Some(k) = &keys.stage2 {
                                assert!(text.contains(k.as_str()));
                            }
                            with_keys += 1;
                        }
                        // No data here (CIFAR, ImageNet-LT, ...): no key, and explain says why.
                        None => {
                            assert!(text.contains(&format!("seed {}: no key: the ", run.seed)), "{}: {text}", cell.id())
                        }
                    }
                }
                explained += 1;
            }
        }
    }
    assert!(explained > 100, "{explained}");
    assert!(with_keys >= 8, "the synthetic quick start has keys without any data files: {with_keys}");
}

#[test]
fn table3_schedule_rows_change_the_cloud_of_both_stages() {
    let cells = cells("table3.toml");
    for (row, cloud) in [
        ("cos", CloudSchedule::Cos),
        ("pow_third", CloudSchedule::PowThird),
        ("pow_quarter", CloudSchedule::PowQuarter),
        ("log", CloudSchedule::Log),
    ] {
        let s = spec(&cells, &format!("{row}.acc"));
        let s2 = s.stage2.as_ref().unwrap();
        assert_eq!(loss(&s.stage1.loss), gcl1(cloud, 0.5), "{row} stage 1");
        assert_eq!(loss(&s2.loss), gcl2(cloud, 0.5), "{row} stage 2");
        assert!(s.stage1.mixup.on && s2.mixup.on);
        assert_released_cben(s2);
    }
    // The paper's c = 1 in both stages; everything else of stage 2 stays released (this row used
    // to train stage 2 with plain CE: its partial override fell back to CE's defaults).
    let s = spec(&cells, "log_paper_noise.acc");
    assert_eq!(loss(&s.stage1.loss), gcl1(CloudSchedule::Log, 1.0));
    assert_eq!(loss(&s.stage2.as_ref().unwrap().loss), gcl2(CloudSchedule::Log, 1.0));
}

#[test]
fn table4_rows_differ_only_in_the_stage2_sampler() {
    let cells = cells("table4.toml");
    let want = [
        ("ib", SamplerSpec::Ib(Ib {})),
        ("cb", SamplerSpec::Cb(Cb {})),
        ("en", SamplerSpec::En(En { beta: 0.9999 })),
        ("cben", SamplerSpec::Cben(Cben { a: 0.9999, b: 1e-5 })),
        ("cben_paper", SamplerSpec::Cben(Cben { a: 0.999, b: 0.0009 })),
    ];
    let stage1_key = cells[0].runs[0].keys.as_ref().unwrap().stage1.clone();
    for (row, sampler) in want {
        let c = cells.iter().find(|c| c.id() == format!("{row}.acc")).unwrap();
        assert_eq!(c.runs[0].keys.as_ref().unwrap().stage1, stage1_key, "{row}: one shared stage 1");
        let s2 = c.runs[0].spec.stage2.clone().unwrap();
        assert_eq!(s2.sampler, sampler, "{row}");
        assert_eq!(loss(&s2.loss), gcl2(CloudSchedule::Log, 0.5), "{row}");
        assert_eq!((s2.rebalance.clone(), s2.optim.epochs, s2.optim.lr), (Rebalance::Crt(Crt::default()), 30, 0.002));
    }
}

#[test]
fn table5_rebalancing_rows() {
    let cells = cells("table5.toml");
    assert!(spec(&cells, "none.acc").stage2.is_none());
    assert_eq!(loss(&spec(&cells, "none.acc").stage1.loss), gcl1(CloudSchedule::Log, 0.5));
    for (row, method) in [
        ("lws", Rebalance::Lws(Lws {})),
        ("tau_norm", Rebalance::TauNorm(TauNorm { tau: 1.5 })),
        ("crt", Rebalance::Crt(Crt::default())),
    ] {
        let s2 = spec(&cells, &format!("{row}.acc")).stage2.unwrap();
        assert_eq!(s2.rebalance, method, "{row}");
        assert_eq!(loss(&s2.loss), gcl2(CloudSchedule::Log, 0.5), "{row}");
        assert_released_cben(&s2);
    }
}

#[test]
fn table1_baselines_follow_their_own_released_recipes() {
    let cells = cells("table1.toml");
    // GCL: the released recipe in full.
    let gcl = spec(&cells, "gcl.cifar10_100");
    assert_eq!(gcl, RunSpec { dataset: gcl.dataset.clone(), ..RunSpec::released_gcl() });

    // CE: GCL's recipe with a linear head and plain CE.
    let ce = spec(&cells, "ce.cifar10_100");
    assert_eq!(
        (ce.stage1.loss.clone(), ce.stage1.mixup.on, ce.stage1.optim.batch_size, ce.stage2.is_none()),
        (LossSpec::Ce(Ce::default()), false, 64, true)
    );

    // LDAM-DRW (kaidic/LDAM-DRW cifar_train.py): batch 128, x0.01 at 160 and 180, DRW from 160.
    let l = spec(&cells, "ldam_drw.cifar10_100").stage1;
    assert_eq!(l.loss, LossSpec::Ldam(Ldam { scale: 30.0, max_margin: 0.5 }));
    assert_eq!((l.optim.batch_size, l.optim.lr, l.optim.weight_decay, l.optim.warmup_epochs), (128, 0.1, 2e-4, 5));
    assert_eq!(
        (l.optim.milestones.clone(), l.optim.lr_decay, l.drw_epoch, l.mixup.on),
        (vec![160, 180], 0.01, Some(160), false)
    );

    // BBN (megvii-research/BBN configs/cifar10.yaml).
    let b = spec(&cells, "bbn.cifar10_100");
    assert!(b.model.bbn && b.stage2.is_none());
    let b = b.stage1;
    assert_eq!(
        (b.optim.batch_size, b.optim.nesterov, b.optim.warmup_epochs, b.optim.milestones.clone(), b.optim.lr_decay),
        (128, true, 5, vec![119, 159], 0.01)
    );
    assert!((b.optim.warmup_start - 1.0 / 3.0).abs() < 1e-12 && !b.mixup.on);

    // MiSLAS (dvlab-research/MiSLAS config/cifar10/*_imb001_*.yaml, cifar100 for CIFAR-100).
    // γ = 50: cifar10_imb002_stage2_mislas.yaml (0.2 / 0.0, lr_factor 0.2, shift_bn False) and
    // cifar100_imb002_stage2_mislas.yaml (0.3 / 0.0, lr_factor 0.1, shift_bn True).
    for (cell, head, tail, factor, shift_bn) in [
        ("mislas.cifar10_100", 0.3, 0.0, 0.5, false),
        ("mislas.cifar10_200", 0.3, 0.0, 0.5, false),
        ("mislas.cifar100_100", 0.4, 0.1, 0.2, true),
        ("mislas.cifar100_200", 0.4, 0.1, 0.2, true),
        ("mislas.cifar10_50", 0.2, 0.0, 0.2, false),
        ("mislas.cifar100_50", 0.3, 0.0, 0.1, true),
    ] {
        let s = spec(&cells, cell);
        assert_eq!(
            (s.stage1.loss.clone(), s.stage1.mixup.on, s.stage1.optim.batch_size),
            (LossSpec::Ce(Ce::default()), true, 128),
            "{cell}"
        );
        let s2 = s.stage2.unwrap();
        let crt = Crt { init: ClassifierInit::Finetune, classifier_lr_factor: factor };
        assert_eq!((s2.rebalance.clone(), s2.shift_bn), (Rebalance::CrtLws(crt), shift_bn), "{cell}");
        // Exactly MiSLAS's smoothing: no GCL stage-2 setting (margin, focal) can leak into it.
        let las = LabelAwareSmoothing { scale: 30.0, las_head: head, las_tail: tail, las_shape: LasShape::Concave };
        assert_eq!(s2.loss, LossSpec::LabelAwareSmoothing(las), "{cell}");
        assert_eq!(
            (s2.sampler.clone(), s2.optim.epochs, s2.optim.batch_size, s2.optim.lr, s2.mixup.on),
            (SamplerSpec::ClassAware(ClassAware {}), 10, 128, 0.1, false),
            "{cell}"
        );
    }

    // Kang et al.'s cRT after CE + mixup: plain CE in stage 2, no focal term or margin.
    let s2 = spec(&cells, "ce_mixup_crt.cifar10_100").stage2.unwrap();
    assert_eq!((s2.loss.clone(), s2.sampler.clone()), (LossSpec::Ce(Ce::default()), SamplerSpec::Cb(Cb {})));
    assert_eq!(s2.rebalance, Rebalance::Crt(Crt { init: ClassifierInit::Reinit, classifier_lr_factor: 1.0 }));
}

/// The GCL Places-LT recipe (GCLLoss c2a6233 Places-LT/pla_train_backbone.py and
/// pla_train_classifier.py), as the manifest comments cite it.
fn assert_gcl_places_recipe(s: &RunSpec) {
    let m = &s.model;
    assert_eq!((m.arch, m.head, m.drop_blocks, m.added_block), (Arch::Resnet152, Head::Normed, 1, true));
    assert_eq!(m.freeze, ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]);
    assert_eq!(m.pretrained.as_deref(), Some("pretrained/resnet152.safetensors"));
    assert!(!s.dataset.color_jitter, "places.py:96 has ColorJitter commented out");
    let s1 = &s.stage1;
    assert_eq!(
        (
            s1.optim.epochs,
            s1.optim.batch_size,
            s1.optim.lr,
            s1.optim.momentum,
            s1.optim.weight_decay,
            s1.optim.nesterov
        ),
        (90, 512, 0.2, 0.9, 5e-4, false)
    );
    assert_eq!(
        (
            s1.optim.schedule,
            s1.optim.warmup_epochs,
            s1.optim.warmup_start,
            s1.optim.milestones.clone(),
            s1.optim.lr_decay
        ),
        (LrSchedule::WarmupStep, 5, 0.0, vec![60, 80], 0.1)
    );
    assert_eq!(loss(&s1.loss), (30.0, 0.0, 1.0, 0.0, CloudSchedule::Log), "NoiScrLoss(m=0., s=30, noise_mul=1.)");
    assert_eq!((s1.mixup.on, s1.mixup.alpha, s1.sampler.clone()), (true, 0.2, SamplerSpec::Ib(Ib {})));
    let s2 = s.stage2.as_ref().unwrap();
    assert_eq!(s2.rebalance, Rebalance::Crt(Crt { init: ClassifierInit::Finetune, classifier_lr_factor: 1.0 }));
    assert_eq!(
        (s2.optim.epochs, s2.optim.batch_size, s2.optim.lr, s2.optim.weight_decay, s2.optim.schedule, s2.shift_bn),
        (30, 512, 0.002, 5e-4, LrSchedule::Cosine, false)
    );
    assert_eq!(
        loss(&s2.loss),
        (15.0, 0.1, 1.0, 1.0, CloudSchedule::Log),
        "NoiScrLoss(m=0.1, s=15, noise_mul=1., gamma=1.)"
    );
    assert_eq!(s2.sampler, SamplerSpec::Cb(Cb {}), "BalancedRS: weight 1/n_c");
}

#[test]
fn table2_cells_follow_their_cited_recipes() {
    let cells = cells("table2.toml");
    assert_gcl_places_recipe(&spec(&cells, "gcl.places_lt"));
    // The assembled ImageNet-LT / iNat GCL recipes: 200 epochs, MiSLAS's optimiser, GCL's loss.
    for (cell, wd) in [("gcl.imagenet_lt", 5e-4), ("gcl.inat2018", 1e-4)] {
        let s = spec(&cells, cell);
        assert_eq!(
            (s.model.arch, s.model.head, s.model.pretrained.clone()),
            (Arch::Resnet50, Head::Normed, None),
            "{cell}"
        );
        let s1 = &s.stage1;
        assert_eq!(
            (
                s1.optim.epochs,
                s1.optim.batch_size,
                s1.optim.lr,
                s1.optim.weight_decay,
                s1.optim.milestones.clone(),
                s1.mixup.alpha
            ),
            (200, 256, 0.1, wd, vec![160, 180], 0.2),
            "{cell}"
        );
        assert_eq!(loss(&s1.loss), (30.0, 0.0, 1.0, 0.0, CloudSchedule::Log), "{cell}");
    }
    // CE baselines: GCL's recipe, linear head, plain CE, no stage 2.
    for col in ["imagenet_lt", "inat2018", "places_lt"] {
        let ce = spec(&cells, &format!("ce.{col}"));
        assert_eq!(
            (ce.stage1.loss.clone(), ce.stage1.mixup.on, ce.model.head, ce.stage2.is_none()),
            (LossSpec::Ce(Ce::default()), false, Head::Linear, true),
            "{col}"
        );
        let mix = spec(&cells, &format!("ce_mixup.{col}"));
        assert_eq!(
            (mix.stage1.mixup.on, mix.stage1.mixup.alpha, mix.stage1.optim.epochs),
            (true, 0.2, ce.stage1.optim.epochs),
            "{col}"
        );
    }
    let ce = spec(&cells, "ce.places_lt");
    assert!(ce.model.added_block && ce.model.drop_blocks == 1 && ce.stage1.optim.epochs == 90);

    // MiSLAS (dvlab-research/MiSLAS 0fc381e config/{imagenet,ina2018,places}/*): cosine, no
    // warm-up, alpha 0.2; stage 2 crt_lws with lr_factor 0.05, shift_bn, class-aware.
    for (cell, epochs, wd, head, tail) in [
        ("mislas.imagenet_lt", 180, 5e-4, 0.3, 0.0),
        ("mislas.inat2018", 200, 1e-4, 0.3, 0.0),
        ("mislas.places_lt", 90, 5e-4, 0.4, 0.1),
    ] {
        let s = spec(&cells, cell);
        let s1 = &s.stage1;
        assert_eq!(
            (
                s1.optim.epochs,
                s1.optim.batch_size,
                s1.optim.lr,
                s1.optim.weight_decay,
                s1.optim.schedule,
                s1.optim.warmup_epochs
            ),
            (epochs, 256, 0.1, wd, LrSchedule::Cosine, 0),
            "{cell}"
        );
        assert_eq!(
            (s1.loss.clone(), s1.mixup.on, s1.mixup.alpha, s.model.head),
            (LossSpec::Ce(Ce::default()), true, 0.2, Head::Linear),
            "{cell}"
        );
        let s2 = s.stage2.unwrap();
        assert_eq!(
            s2.rebalance,
            Rebalance::CrtLws(Crt { init: ClassifierInit::Finetune, classifier_lr_factor: 0.05 }),
            "{cell}"
        );
        let las = LabelAwareSmoothing { scale: 30.0, las_head: head, las_tail: tail, las_shape: LasShape::Concave };
        assert_eq!(
            (s2.loss, s2.shift_bn, s2.sampler, s2.optim.epochs, s2.optim.batch_size, s2.optim.lr),
            (LossSpec::LabelAwareSmoothing(las), true, SamplerSpec::ClassAware(ClassAware {}), 10, 256, 0.1),
            "{cell}"
        );
    }
    let places = spec(&cells, "mislas.places_lt").model;
    assert!(places.added_block && places.drop_blocks == 1 && places.freeze.len() == 6);

    // Decoupling: the quoted numbers are LWS (47.7 / 69.5 at 200 epochs / 37.6).
    for (cell, epochs, lr, batch) in [
        ("decoupling.imagenet_lt", 90, 0.2, 512),
        ("decoupling.inat2018", 200, 0.2, 512),
        ("decoupling.places_lt", 30, 0.1, 256),
    ] {
        let s = spec(&cells, cell);
        assert_eq!(
            (s.stage1.optim.epochs, s.stage1.optim.schedule, s.stage1.mixup.on),
            (epochs, LrSchedule::Cosine, false),
            "{cell}"
        );
        let s2 = s.stage2.unwrap();
        assert_eq!(
            (s2.rebalance, s2.optim.epochs, s2.optim.lr, s2.optim.batch_size, s2.sampler, s2.shift_bn),
            (Rebalance::Lws(Lws {}), 5, lr, batch, SamplerSpec::ClassAware(ClassAware {}), true),
            "{cell}"
        );
    }
    assert!(!spec(&cells, "decoupling.inat2018").dataset.color_jitter, "dataloader.py:38-43: no jitter for iNat");
    // Kang et al. fine-tune Places with everything but the last block frozen.
    assert_eq!(spec(&cells, "decoupling.places_lt").model.freeze.last().map(String::as_str), Some("layer4.1"));

    // CE + mixup + cRT: Kang et al.'s cls_crt.yaml per dataset.
    for (cell, epochs, lr, batch, wd) in [
        ("ce_mixup_crt.imagenet_lt", 10, 0.2, 512, 5e-4),
        ("ce_mixup_crt.inat2018", 30, 0.2, 512, 1e-4),
        ("ce_mixup_crt.places_lt", 10, 0.1, 256, 5e-4),
    ] {
        let s2 = spec(&cells, cell).stage2.unwrap();
        assert_eq!(
            s2.rebalance,
            Rebalance::Crt(Crt { init: ClassifierInit::Reinit, classifier_lr_factor: 1.0 }),
            "{cell}"
        );
        assert_eq!(
            (s2.optim.epochs, s2.optim.lr, s2.optim.batch_size, s2.optim.weight_decay, s2.loss.clone()),
            (epochs, lr, batch, wd, LossSpec::Ce(Ce::default())),
            "{cell}"
        );
    }
}

#[test]
fn table2_explain_marks_deviations_from_each_cells_own_recipe() {
    let m = manifest::load(&experiments().join("table2.toml")).unwrap();
    let cells = manifest::expand(&m, Scale::Full, Path::new("/nonexistent-data-root")).unwrap();
    let text = |id: &str| gcl_repro::explain::explain_cell(&m, cells.iter().find(|c| c.id() == id).unwrap());
    let gcl = text("gcl.places_lt");
    assert!(gcl.contains("released recipe `gcl_places_lt`: Keke921/GCLLoss@c2a6233"), "{gcl}");
    assert!(!gcl.contains("\n* "), "the GCL Places cell is its recipe: {gcl}");
    let ce = text("ce.imagenet_lt");
    assert!(
        ce.contains("released recipe `gcl_imagenet_lt`")
            && ce.contains("* model.head = \"linear\"   released: \"normed\""),
        "{ce}"
    );
    assert!(ce.contains("* stage2 = none"), "{ce}");
    let dec = text("decoupling.inat2018");
    assert!(dec.contains("* stage1.epochs = 200   released: 90"), "{dec}");
}

#[test]
fn quickstart_gcl_rows() {
    let cells = cells("quickstart.toml");
    let s = spec(&cells, "gcl_cben_crt.synthetic_50");
    assert_eq!(loss(&s.stage1.loss), gcl1(CloudSchedule::Log, 0.5));
    let s2 = s.stage2.unwrap();
    assert_eq!(loss(&s2.loss), gcl2(CloudSchedule::Log, 0.5));
    assert_released_cben(&s2);
    assert_eq!((s2.optim.epochs, s2.optim.batch_size), (10, 32));
}

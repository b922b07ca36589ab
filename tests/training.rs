//! Real libtorch training on the built-in synthetic set: the engine learns, stage 2 builds on
//! stage 1, and a run resumed from its checkpoint ends bit-identical to an uninterrupted one.
mod common;
use gcl_repro::losses::LossSpec;
use gcl_repro::losses::{Ce, Gcl};
use gcl_repro::models::spec::Head;
use gcl_repro::training::rebalance::{ClassifierInit, Rebalance};
use gcl_repro::training::rebalance::{Crt, Lws, TauNorm};
use gcl_repro::training::spec::{OptimSpec, RunSpec, Stage2Spec};
use gcl_repro::training::{self, RunEnv, Silent};
use std::sync::atomic::AtomicBool;
use tch::{Device, Tensor};

/// libtorch's random generator is process-wide: trainings in one test process must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn small_spec(epochs: usize) -> RunSpec {
    let mut s = common::synthetic_run(96, 8.0, 24);
    s.model.head = Head::Normed;
    s.stage1.loss = LossSpec::Gcl(Gcl::default());
    s.stage1.mixup.on = true;
    s.stage1.optim.epochs = epochs;
    s.stage1.optim.batch_size = 32;
    s.stage1.optim.warmup_epochs = 1;
    s.stage1.optim.milestones = vec![2];
    s.seed = 7;
    s
}

fn ctx<'a>(dir: &std::path::Path, stop: &'a AtomicBool) -> RunEnv<'a> {
    RunEnv { device: Device::Cpu, dir: dir.to_path_buf(), stop, observer: &Silent }
}

fn weights(dir: &std::path::Path) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(dir.join(training::FINAL_MODEL)).unwrap()
}

#[test]
fn resume_after_interruption_equals_uninterrupted_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let spec = small_spec(3);
    let data: gcl_repro::data::Data =
        gcl_repro::data::load(&spec.dataset, std::path::Path::new("/nonexistent")).unwrap().into();
    let stop = AtomicBool::new(false);
    let a = tempfile::tempdir().unwrap();
    let full = training::run_stage1(&spec, &data, "k", &ctx(a.path(), &stop)).unwrap();
    assert_eq!(full.epochs.len(), 3);

    // The same run stopped after its first epoch (its checkpoint holds epoch 1) ...
    let b = tempfile::tempdir().unwrap();
    training::run_stage1(&small_spec(1), &data, "k", &ctx(b.path(), &stop)).unwrap();
    // ... and started again: it resumes at epoch 2 (warm-up/step schedules do not depend on
    // the total epoch count, so the first epoch is the same as in the 3-epoch run).
    let resumed = training::run_stage1(&spec, &data, "k", &ctx(b.path(), &stop)).unwrap();
    assert_eq!(resumed.epochs.len(), 3);
    assert_eq!(resumed.final_eval, full.final_eval);
    for (ra, rb) in full.epochs.iter().zip(&resumed.epochs) {
        assert_eq!(ra.train_loss, rb.train_loss, "epoch {}", ra.epoch);
        assert_eq!(ra.test_top1, rb.test_top1);
    }
    let (mut wa, mut wb) = (weights(a.path()), weights(b.path()));
    wa.sort_by(|x, y| x.0.cmp(&y.0));
    wb.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(wb.iter()) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "weights differ at {na}");
    }
    // The log was cut back to the checkpoint and continued: one line per epoch.
    let log = std::fs::read_to_string(b.path().join(training::LOG)).unwrap();
    assert_eq!(log.lines().count(), 3);
}

#[test]
fn stop_flag_interrupts_and_keeps_the_last_checkpoint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let spec = small_spec(2);
    let data: gcl_repro::data::Data =
        gcl_repro::data::load(&spec.dataset, std::path::Path::new("/nonexistent")).unwrap().into();
    let stop = AtomicBool::new(true);
    let d = tempfile::tempdir().unwrap();
    let err = training::run_stage1(&spec, &data, "k", &ctx(d.path(), &stop)).unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert!(!d.path().join(training::FINAL_MODEL).exists());
}

#[test]
fn engine_learns_and_stage2_rebalances() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Cross-entropy with a linear head learns the synthetic set fastest; the GCL loss itself is
    // checked against PyTorch in tests/parity_torch.rs.
    let mut spec = small_spec(14);
    spec.dataset.max_per_class = 128;
    spec.model.head = Head::Linear;
    spec.stage1.loss = LossSpec::Ce(Ce::default());
    spec.stage1.mixup.on = false;
    spec.stage1.optim.milestones = vec![];
    let data: gcl_repro::data::Data =
        gcl_repro::data::load(&spec.dataset, std::path::Path::new("/nonexistent")).unwrap().into();
    let stop = AtomicBool::new(false);
    let d1 = tempfile::tempdir().unwrap();
    let r1 = training::run_stage1(&spec, &data, "s1", &ctx(d1.path(), &stop)).unwrap();
    let first = &r1.epochs[0];
    let last = r1.epochs.last().unwrap();
    assert!(last.train_loss < first.train_loss, "loss did not fall: {} -> {}", first.train_loss, last.train_loss);
    for e in &r1.epochs {
        eprintln!("epoch {} loss {:.3} train {:.1} test {:.1}", e.epoch, e.train_loss, e.train_acc, e.test_top1);
    }
    assert!(r1.final_eval.top1 > 100.0 / 4.0 + 10.0, "stage 1 top-1 {} is near chance", r1.final_eval.top1);
    assert!(d1.path().join(training::EMBEDDINGS).exists());
    let emb = Tensor::read_safetensors(d1.path().join(training::EMBEDDINGS)).unwrap();
    let train_f = &emb.iter().find(|(n, _)| n == "train_features").unwrap().1;
    assert_eq!(train_f.size()[0] as usize, data.train_labels().len());

    let half = Crt { classifier_lr_factor: 0.5, ..Crt::default() };
    let reinit = Crt { init: ClassifierInit::Reinit, classifier_lr_factor: 1.0 };
    // (method, shift_bn, peak lr): a re-initialised classifier learns from scratch, at a cRT
    // learning rate (Kang et al. 2020), not at the fine-tuning default 0.002.
    let methods = [
        (Rebalance::Crt(half.clone()), false, 0.002),
        (Rebalance::Crt(reinit), false, 0.1),
        (Rebalance::Lws(Lws {}), false, 0.002),
        (Rebalance::TauNorm(TauNorm { tau: 1.0 }), false, 0.002),
        (Rebalance::CrtLws(half), true, 0.002),
    ];
    for (method, shift_bn, lr) in methods {
        let mut s2 = spec.clone();
        let stage2 = Stage2Spec {
            rebalance: method.clone(),
            shift_bn,
            optim: OptimSpec { epochs: 2, lr, ..Stage2Spec::default().optim },
            loss: LossSpec::Ce(Ce::default()),
            ..Stage2Spec::default()
        };
        s2.stage2 = Some(stage2);
        let d2 = tempfile::tempdir().unwrap();
        let r2 = training::run_stage2(&s2, &data, "s2", "s1", d1.path(), &ctx(d2.path(), &stop)).unwrap();
        assert_eq!(r2.stage, 2);
        assert_eq!(r2.parent.as_deref(), Some("s1"));
        // Above chance (25%) after two epochs on the frozen backbone.
        assert!(r2.final_eval.top1 > 30.0, "{method:?}: {}", r2.final_eval.top1);
        // The backbone is frozen: stage 2 leaves its weights untouched.
        // The methods that train the classifier store a changed one (a re-initialised classifier
        // that stage 2 never trained would be missing or at chance).
        let head = |ws: &[(String, Tensor)]| {
            ws.iter().find(|(n, _)| n == "head.linear.weight").map(|(_, t)| t.shallow_clone())
        };
        let (head1, head2) =
            (head(&weights(d1.path())).unwrap(), head(&weights(d2.path())).expect("stage 2 stores the classifier"));
        match method {
            // LWS trains its scales on the frozen classifier.
            Rebalance::Lws(_) => assert!(head1.equal(&head2), "LWS changed the classifier"),
            // tau = 1 on the linear head: every class vector divided by its norm.
            Rebalance::TauNorm(_) => {
                let want = &head1 / head1.norm_scalaropt_dim(2.0, [1], true);
                assert!(head2.allclose(&want, 1e-6, 1e-7, false), "tau-norm stored an unnormalised classifier");
            }
            _ => assert!(!head1.equal(&head2), "{method:?} did not train the classifier"),
        }
        if !matches!(method, Rebalance::TauNorm(_)) {
            let w1 = weights(d1.path());
            let best2 = Tensor::read_safetensors(d2.path().join(training::BEST_MODEL)).unwrap();
            for (n, t) in w1.iter().filter(|(n, _)| n.starts_with("backbone.")) {
                let t2 = &best2.iter().find(|(m, _)| m == n).unwrap().1;
                // MiSLAS's shift_bn re-estimates BatchNorm statistics, nothing else.
                let statistic = n.ends_with("running_mean") || n.ends_with("running_var");
                if shift_bn && statistic {
                    assert!(!t.equal(t2), "{method:?} with shift_bn kept BatchNorm statistic {n}");
                } else {
                    assert!(t.equal(t2), "{method:?} changed backbone weight {n}");
                }
            }
        }
    }
}

#[test]
fn bbn_trains_with_two_samplers_and_refuses_mixup() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut spec = small_spec(2);
    spec.model.bbn = true;
    spec.model.head = Head::Linear;
    spec.stage1.loss = LossSpec::Ce(Ce::default());
    let err = training::check_spec(&spec).unwrap_err().to_string();
    assert!(err.contains("mixup"), "{err}");
    spec.stage1.mixup.on = false;
    training::check_spec(&spec).unwrap();
    let data: gcl_repro::data::Data =
        gcl_repro::data::load(&spec.dataset, std::path::Path::new("/nonexistent")).unwrap().into();
    let stop = AtomicBool::new(false);
    let d = tempfile::tempdir().unwrap();
    let r = training::run_stage1(&spec, &data, "bbn", &ctx(d.path(), &stop)).unwrap();
    assert_eq!(r.epochs.len(), 2);
    assert!(r.epochs.iter().all(|e| e.train_loss.is_finite()));
    // Both branches are in the stored model (the re-balancing branch's block is `rb_block.*`).
    assert!(weights(d.path()).iter().any(|(n, _)| n.contains("rb_block")));
}

/// `model.init_from` changes nothing but the starting weights: a run started from the very
/// weights its own seed draws (the final weights of a 0-epoch run) trains the same bits as the
/// run that drew them. The paired checks (`bench fidelity`, `bench init`) rest on it: there, ours
/// from PyTorch's init and ours from our own init differ by the weights alone.
#[test]
fn a_run_from_its_own_initial_weights_through_init_from_trains_the_same_bits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut spec = small_spec(2);
    spec.stage1.optim.warmup_epochs = 0;
    spec.stage1.optim.milestones = vec![];
    let data: gcl_repro::data::Data =
        gcl_repro::data::load(&spec.dataset, std::path::Path::new("/nonexistent")).unwrap().into();
    let stop = AtomicBool::new(false);
    let init = tempfile::tempdir().unwrap();
    let mut zero = spec.clone();
    zero.stage1.optim.epochs = 0;
    training::run_stage1(&zero, &data, "k0", &ctx(init.path(), &stop)).unwrap();

    let own = tempfile::tempdir().unwrap();
    let a = training::run_stage1(&spec, &data, "k", &ctx(own.path(), &stop)).unwrap();
    let mut from_file = spec.clone();
    from_file.model.pin_init_from(&init.path().join(training::FINAL_MODEL)).unwrap();
    let imported = tempfile::tempdir().unwrap();
    let b = training::run_stage1(&from_file, &data, "k", &ctx(imported.path(), &stop)).unwrap();
    for (ra, rb) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(ra.train_loss, rb.train_loss, "epoch {}", ra.epoch);
    }
    let (mut wa, mut wb) = (weights(own.path()), weights(imported.path()));
    wa.sort_by(|x, y| x.0.cmp(&y.0));
    wb.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs between the run and the run from its own initial weights");
    }
}

//! Parity with PyTorch: one forward/backward of a small CIFAR ResNet with the cosine head, batch
//! 4, in f64, on weights exported from tch, for CE (s = 30), GCL stage 1 (s = 30, c = 0.5) and
//! GCL stage 2 (s = 20, margin 0.1, focal gamma 1) with the noise sample supplied explicitly.
//! The PyTorch side is scripts/torch_parity.py (the released code's model and loss). Loss and
//! every parameter gradient must agree to 1e-5.
//!
//! Needs a Python with torch and numpy: `GCL_PYTHON`, else `$VIRTUAL_ENV/bin/python`, else
//! `.venv/bin/python` in the crate root. The test is named `needs_torch_*` and is `#[ignore]`d, so a
//! plain `cargo test` reports it as ignored; `make test` runs it (`cargo test -- --ignored
//! needs_torch`) when one of these imports torch and numpy. Run explicitly without one, it fails,
//! naming the interpreters it tried.
mod common;

use std::collections::HashMap;
use std::process::Command;

use gcl_repro::losses::Criterion;
use gcl_repro::losses::LossSpec;
use gcl_repro::losses::{Ce, Gcl};
use gcl_repro::models::spec::{Arch, Head, ModelSpec};
use gcl_repro::models::Network;
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 4;
const COUNTS: [i64; 10] = [500, 300, 180, 108, 65, 39, 23, 14, 8, 5];

#[test]
#[ignore = "needs Python with torch+numpy: $GCL_PYTHON, else $VIRTUAL_ENV/bin/python, else .venv/bin/python (make setup creates .venv)"]
fn needs_torch_tch_matches_pytorch_forward_backward() {
    let py = common::python_or_panic();
    tch::manual_seed(42);
    let spec = ModelSpec { arch: Arch::ResnetSmall, head: Head::Normed, ..ModelSpec::default() };
    let mut net = Network::new(&spec, COUNTS.len() as i64, Device::Cpu);
    net.backbone_vars.double();
    net.head_vars.double();

    let x = Tensor::randn([BATCH, 3, 32, 32], (Kind::Double, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 9, 3, 9]);
    // Wide enough that some entries exceed the [-1, 1] clamp.
    let eps = Tensor::randn([BATCH, COUNTS.len() as i64], (Kind::Double, Device::Cpu)) * 0.8;

    let dir = tempfile::tempdir().unwrap();
    let vars: Vec<(String, Tensor)> =
        net.backbone_vars.variables().into_iter().chain(net.head_vars.variables()).collect();
    Tensor::write_npz(&vars, dir.path().join("weights.npz")).unwrap();
    let inputs = [
        ("x", x.shallow_clone()),
        ("y", y.shallow_clone()),
        ("eps", eps.shallow_clone()),
        ("counts", Tensor::from_slice(&COUNTS)),
        ("blocks", Tensor::from_slice(&[1i64])),
    ];
    Tensor::write_npz(&inputs, dir.path().join("inputs.npz")).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/torch_parity.py");
    let out = Command::new(&py)
        .arg(script)
        .arg(dir.path().join("weights.npz"))
        .arg(dir.path().join("inputs.npz"))
        .arg(dir.path().join("out.npz"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let reference: HashMap<String, Tensor> =
        Tensor::read_npz(dir.path().join("out.npz")).unwrap().into_iter().collect();

    let counts: Vec<usize> = COUNTS.iter().map(|&n| n as usize).collect();
    let gcl = Gcl::default();
    let cases = [
        ("ce", LossSpec::Ce(Ce { scale: 30.0 })),
        ("gcl1", LossSpec::Gcl(gcl.clone())),
        ("gcl2", LossSpec::Gcl(Gcl { scale: 20.0, margin: 0.1, focal_gamma: 1.0, ..gcl })),
    ];
    let trainable: Vec<(String, Tensor)> =
        vars.iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    // Stem conv + BN (3), three blocks of 2 convs + 2 BNs (18), cosine anchors (1).
    assert_eq!(trainable.len(), 22);
    for (case, loss_spec) in cases {
        let criterion = Criterion::new(&loss_spec, &counts, Head::Normed, Device::Cpu).unwrap();
        for (_, t) in &trainable {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let out = net.logits(&net.features(&x, true));
        let loss = criterion.loss_with_noise(&out, &y, &eps);
        loss.backward();
        let want = reference[&format!("loss/{case}")].double_value(&[0]);
        let got = loss.double_value(&[]);
        assert!((got - want).abs() < 1e-5, "{case}: loss {got} vs PyTorch {want}");
        for (name, t) in &trainable {
            let want = &reference[&format!("grad/{case}/{name}")];
            let diff = (t.grad() - want).abs().max().double_value(&[]);
            let scale = want.abs().max().double_value(&[]).max(1.0);
            assert!(diff <= 1e-5 * scale, "{case}: gradient of {name} differs by {diff}");
        }
        eprintln!("parity {case}: loss {got:.6} (PyTorch {want:.6}), {} gradients agree", trainable.len());
    }
}

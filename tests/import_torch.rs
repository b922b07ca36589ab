//! PyTorch weights in (`model.init_from`, `eval --weights`): checkpoints that PyTorch itself
//! wrote, as the released code saves them, converted by scripts/torch_to_safetensors.py and
//! loaded by `models::import`, give PyTorch's own logits on the same images (within 1e-4).
//! The checkpoints and logits come from scripts/import_reference.py (the released CIFAR
//! ResNet-32 with its cosine head; a torchvision-layout ResNet-50 with a linear head); nothing
//! of ours goes into them.
mod common;

use std::collections::HashMap;

use gcl_repro::models::spec::{Arch, Head, ModelSpec};
use gcl_repro::models::{import, Network};
use tch::{Device, Kind, Tensor};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");

#[test]
#[ignore = "needs Python with torch+numpy: $GCL_PYTHON, else $VIRTUAL_ENV/bin/python, else .venv/bin/python (make setup creates .venv)"]
fn needs_torch_checkpoints_written_by_pytorch_give_pytorchs_logits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::run_python(&format!("{SCRIPTS}/import_reference.py"), &[d.as_os_str()]);
    let reference: HashMap<String, Tensor> = Tensor::read_npz(d.join("inputs.npz")).unwrap().into_iter().collect();
    let cases = [
        ("r32_cosine.pth.tar", Arch::Resnet32, Head::Normed, 10, "x32", "logits_r32"),
        ("r50_linear.pth", Arch::Resnet50, Head::Linear, 1000, "x64", "logits_r50"),
    ];
    for (file, arch, head, classes, x, logits) in cases {
        let converted = d.join(format!("{file}.safetensors"));
        let said = common::run_python(
            &format!("{SCRIPTS}/torch_to_safetensors.py"),
            &[d.join(file).as_os_str(), converted.as_os_str()],
        );
        assert!(said.contains("wrote"), "{said}");
        let net = Network::new(&ModelSpec { arch, head, ..ModelSpec::default() }, classes, Device::Cpu);
        import::load_state_dict(&net, &converted).unwrap();
        let x = reference[x].to_kind(Kind::Float);
        let ours = tch::no_grad(|| net.logits(&net.features(&x, false)));
        let theirs = reference[logits].to_kind(Kind::Float);
        let diff = (&ours - &theirs).abs().max().double_value(&[]);
        assert!(diff <= 1e-4, "{file}: logits differ from PyTorch's by {diff}");
        eprintln!("{file}: {} logits within {diff:.2e} of PyTorch's", ours.numel());

        // The unconverted pickle is refused with the command that converts it.
        let err = format!("{:#}", import::load_state_dict(&net, &d.join(file)).unwrap_err());
        assert!(err.contains("torch_to_safetensors.py"), "{err}");
    }
    // A checkpoint of another head does not load, and the error names both sides.
    let r32_linear =
        Network::new(&ModelSpec { arch: Arch::Resnet32, head: Head::Linear, ..ModelSpec::default() }, 10, Device::Cpu);
    let err =
        format!("{:#}", import::load_state_dict(&r32_linear, &d.join("r32_cosine.pth.tar.safetensors")).unwrap_err());
    assert!(err.contains("`linear.bias`") && err.contains("0 of its names are not in the network"), "{err}");
}

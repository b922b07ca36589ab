//! Initial parameter statistics of every architecture against PyTorch's own init formulas
//! (written from `torch.nn.init` and `nn.BatchNorm2d`/`nn.Linear`'s `reset_parameters`, not
//! from our model code):
//! - `nn.BatchNorm2d`: weight exactly 1, bias exactly 0, running mean 0, running var 1.
//! - `kaiming_normal_(w)` (mode fan_in, ReLU gain): std `sqrt(2 / fan_in)`, fan_in = `c_in k k`.
//!   The CIFAR ResNets (`_weights_init` of the released code) use it for convs and the linear head.
//! - torchvision ResNets: `kaiming_normal_(w, mode="fan_out")`: std `sqrt(2 / (c_out k k))`;
//!   `nn.Linear` default for `fc`: weight and bias uniform(+-1/sqrt(fan_in)), std `bound/sqrt(3)`.
//! - The released `NormedLinear`: every anchor (column) of unit norm.
//! - BBN's classifier (released BBN `network.py`): `nn.Linear` with its default init.
//!
//! A copied-weights parity test cannot see any of this; this test builds our models from their
//! seeds and looks only at the numbers.
use gcl_repro::models::spec::{Arch, Head, ModelSpec};
use gcl_repro::models::Network;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

fn stats(t: &Tensor) -> (f64, f64, usize) {
    let t = t.to_kind(Kind::Double);
    (t.mean(Kind::Double).double_value(&[]), t.std(true).double_value(&[]), t.numel())
}

/// Sample std within 6 standard errors of `want` (the std of a sample std is about
/// `sigma / sqrt(2 n)`), and mean within 6 standard errors of 0.
fn assert_normal(name: &str, t: &Tensor, want_std: f64) {
    let (mean, std, n) = stats(t);
    let se = want_std / (2.0 * n as f64).sqrt();
    assert!((std - want_std).abs() < 6.0 * se + 1e-12, "{name}: std {std:.5} vs PyTorch's {want_std:.5} (n = {n})");
    assert!(mean.abs() < 6.0 * want_std / (n as f64).sqrt(), "{name}: mean {mean:.5} (n = {n})");
}

fn assert_uniform(name: &str, t: &Tensor, bound: f64) {
    let max = t.abs().max().double_value(&[]);
    assert!(max <= bound + 1e-7, "{name}: |w| up to {max} > bound {bound}");
    assert_normal(name, t, bound / 3f64.sqrt());
}

fn assert_all(name: &str, t: &Tensor, value: f64) {
    let ok = t.to_kind(Kind::Double).eq(value).all().int64_value(&[]) == 1;
    assert!(ok, "{name}: expected every entry to be exactly {value}, got mean {:?}", stats(t));
}

/// Checks every variable of a model; returns how many BatchNorm layers, convs and heads it saw.
fn check_model(arch: Arch, head: Head, bbn: bool) -> (usize, usize, usize) {
    tch::manual_seed(0);
    let spec = ModelSpec { arch, head, bbn, ..ModelSpec::default() };
    let classes = 10;
    let net = Network::new(&spec, classes, Device::Cpu);
    let vars: HashMap<String, Tensor> = net.named_variables().into_iter().collect();
    let cifar = matches!(arch, Arch::Resnet32 | Arch::ResnetSmall);
    let (mut bns, mut convs, mut heads) = (0, 0, 0);
    for (name, t) in &vars {
        let what = format!("{arch:?}/{head:?}/bbn={bbn} {name}");
        let layer = name.rsplit_once('.').map(|(l, _)| l).unwrap_or("");
        let is_bn = vars.contains_key(&format!("{layer}.running_var"));
        match (is_bn, name.rsplit('.').next().unwrap()) {
            (true, "weight") => {
                assert_all(&what, t, 1.0);
                bns += 1;
            }
            (true, "bias") | (true, "running_mean") => assert_all(&what, t, 0.0),
            (true, "running_var") => assert_all(&what, t, 1.0),
            (true, other) => panic!("{what}: unexpected BatchNorm variable {other}"),
            (false, "weight") if t.dim() == 4 => {
                let s = t.size();
                let fan = if cifar { s[1] * s[2] * s[3] } else { s[0] * s[2] * s[3] };
                assert_normal(&what, t, (2.0 / fan as f64).sqrt());
                convs += 1;
            }
            (false, "weight") if name.starts_with("head.") => {
                heads += 1;
                match head {
                    Head::Linear if cifar && !bbn => assert_normal(&what, t, (2.0 / t.size()[1] as f64).sqrt()),
                    Head::Linear => assert_uniform(&what, t, 1.0 / (t.size()[1] as f64).sqrt()),
                    Head::Normed => {
                        let norms = t.norm_scalaropt_dim(2.0, [0], false);
                        let ones = Tensor::ones_like(&norms);
                        assert!(norms.allclose(&ones, 1e-5, 1e-5, false), "{what}: anchors not unit norm");
                    }
                }
            }
            (false, "bias") if name.starts_with("head.") => {
                let fan_in = vars[&format!("{layer}.weight")].size()[1] as f64;
                assert_uniform(&what, t, 1.0 / fan_in.sqrt());
            }
            (false, "num_batches_tracked") => {}
            _ => panic!("{what}: a variable this test does not know ({:?}); add its PyTorch init here", t.size()),
        }
    }
    (bns, convs, heads)
}

#[test]
fn cifar_resnets_start_as_pytorch() {
    // ResNet-32: stem + 15 blocks x 2 = 31 BatchNorms and 31 convs.
    assert_eq!(check_model(Arch::Resnet32, Head::Linear, false), (31, 31, 1));
    assert_eq!(check_model(Arch::Resnet32, Head::Normed, false), (31, 31, 1));
    assert_eq!(check_model(Arch::ResnetSmall, Head::Normed, false), (7, 7, 1));
    // BBN adds a twin of the last block (2 convs, 2 BatchNorms).
    assert_eq!(check_model(Arch::Resnet32, Head::Linear, true), (33, 33, 1));
}

#[test]
fn torchvision_resnets_start_as_pytorch() {
    // ResNet-50: stem + 16 bottlenecks x 3 + 4 downsamples = 53 of each.
    assert_eq!(check_model(Arch::Resnet50, Head::Linear, false), (53, 53, 1));
    assert_eq!(check_model(Arch::Resnet50, Head::Normed, false), (53, 53, 1));
    // ResNet-152: stem + 50 bottlenecks x 3 + 4 downsamples = 155.
    assert_eq!(check_model(Arch::Resnet152, Head::Linear, false), (155, 155, 1));
}

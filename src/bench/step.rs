//! `gcl-repro bench step`: the stage-1 training step (ResNet-32, cosine classifier, GCL loss,
//! mixup, SGD) timed beside PyTorch eager doing the same step on the same device in the same
//! call, so the result is a ratio rather than an absolute time that varies from host to host.
use crate::losses::LossSpec;
use crate::losses::{Criterion, Gcl};
use crate::models::spec::{Arch, Head, ModelSpec};
use crate::models::Network;
use crate::training::augment::DeviceImages;
use crate::training::sgd::Sgd;
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_distr::Distribution;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The python that has torch: explicit, the active virtualenv, the project's, or python3.
pub fn find_python(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        let p = PathBuf::from(v).join("bin/python");
        if p.exists() {
            return p;
        }
    }
    let local = PathBuf::from(".venv/bin/python");
    if local.exists() {
        return local;
    }
    PathBuf::from("python3")
}

pub struct StepTiming {
    pub ms_per_step: f64,
    pub images_per_sec: f64,
}

/// The benchmark's images for `arch`: CIFAR's 32 x 32 for the CIFAR nets (12,406 of them,
/// CIFAR-10-LT's count), ImageNet's 224 x 224 for the torchvision ones (256 of them, drawn from
/// at random: the step's cost does not depend on how many there are).
pub fn bench_images(arch: Arch) -> (i64, usize) {
    match arch {
        Arch::Resnet32 | Arch::ResnetSmall => (32, 12_406),
        Arch::Resnet50 | Arch::Resnet152 | Arch::ResnetTiny => (224, 256),
    }
}

/// Time `steps` training steps of our engine after `warmup` untimed ones.
pub fn time_our_step(device: Device, batch: usize, steps: usize, warmup: usize, arch: Arch) -> Result<StepTiming> {
    tch::manual_seed(0);
    let classes = 10usize;
    let counts: Vec<usize> = (0..classes).map(|i| (5000.0 * 0.01f64.powf(i as f64 / 9.0)) as usize).collect();
    let (size, n) = bench_images(arch);
    let net = Network::new(&ModelSpec { arch, head: Head::Normed, ..ModelSpec::default() }, classes as i64, device);
    let mut params: Vec<Tensor> = net.backbone_vars.trainable_variables();
    params.extend(net.head_vars.trainable_variables());
    let mut opt = Sgd::new(params, 0.9, 2e-4);
    let criterion = Criterion::new(&LossSpec::Gcl(Gcl::default()), &counts, Head::Normed, device)?;
    let images = Tensor::randint(256, [n as i64, 3, size, size], (Kind::Uint8, Device::Cpu));
    let labels: Vec<i64> = (0..n as i64).map(|i| i % classes as i64).collect();
    let data = DeviceImages::new(&images, &labels, [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010], device);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let beta = rand_distr::Beta::new(1.0, 1.0)?;
    let mut step = || {
        let idx = Tensor::randint(n as i64, [batch as i64], (Kind::Int64, device));
        let (x, y) = data.batch(&idx, true);
        let lam: f64 = beta.sample(&mut rng);
        let perm = Tensor::randperm(batch as i64, (Kind::Int64, device));
        let x = &x * lam + x.index_select(0, &perm) * (1.0 - lam);
        let out = net.logits(&net.features(&x, true));
        let loss = criterion.blended_loss(&out, &y, &y.index_select(0, &perm), lam, None);
        opt.zero_grad();
        loss.backward();
        opt.step(0.1);
    };
    for _ in 0..warmup {
        step();
    }
    sync(device);
    let t = Instant::now();
    for _ in 0..steps {
        step();
    }
    sync(device);
    let el = t.elapsed().as_secs_f64();
    Ok(StepTiming { ms_per_step: el * 1000.0 / steps as f64, images_per_sec: (steps * batch) as f64 / el })
}

/// Wait for a CUDA device's queued work (nothing to wait for on CPU).
pub(crate) fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Run a PyTorch reference (`python script args...`) and parse the last JSON line it printed;
/// a failure is one error with its last line of stderr.
pub fn reference_json(cmd: &mut std::process::Command) -> Result<serde_json::Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "the PyTorch reference failed: {}",
            err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message")
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the PyTorch reference printed no JSON line")?;
    serde_json::from_str(line).with_context(|| format!("parsing `{line}`"))
}

/// Run the PyTorch reference script with the given python and parse its JSON line.
pub fn time_torch_step(python: &Path, script: &Path, device: Device, b: &StepBench) -> Result<StepTiming> {
    let dev = crate::device::device_label(device);
    let threads = tch::get_num_threads().to_string();
    let v = reference_json(std::process::Command::new(python).arg(script).args([
        dev.as_str(),
        &b.batch.to_string(),
        &b.steps.to_string(),
        &b.warmup.to_string(),
        &threads,
        arch_name(b.arch),
    ]))?;
    Ok(StepTiming {
        ms_per_step: v["ms_per_step"].as_f64().context("ms_per_step missing")?,
        images_per_sec: v["images_per_sec"].as_f64().context("images_per_sec missing")?,
    })
}

/// What `bench step` times: the architecture and the batch, `steps` timed steps after `warmup`,
/// `repeats` alternating rounds.
pub struct StepBench {
    pub arch: Arch,
    pub batch: usize,
    pub steps: usize,
    pub warmup: usize,
    pub repeats: usize,
}

/// The reference script's name of an architecture.
fn arch_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Resnet32 => "resnet32",
        Arch::ResnetSmall => "resnet_small",
        Arch::Resnet50 => "resnet50",
        Arch::Resnet152 => "resnet152",
        Arch::ResnetTiny => "resnet_tiny",
    }
}

/// The report of `gcl-repro bench step`: `repeats` alternating rounds (ours, then PyTorch), each
/// round's times, and the median ratio (a 2-core machine's timings vary by tens of percent).
pub fn step_report(device: Device, b: &StepBench, python: &Path, script: &Path) -> Result<String> {
    if !matches!(b.arch, Arch::Resnet32 | Arch::Resnet50) {
        bail!(
            "bench step times resnet32 (beside the released CIFAR net in PyTorch) or resnet50 (beside torchvision's)"
        );
    }
    let machine = crate::device::device_name(device);
    let (size, _) = bench_images(b.arch);
    let mut out = format!(
        "stage-1 step, {} ({size} x {size} images) + cosine head + GCL loss + mixup + SGD, batch {}, {} timed steps after {} warm-up\n\
         device: {} ({machine}), {} threads; PyTorch eager {} from {}\n\
         | round | gcl-repro ms/step | images/s | PyTorch ms/step | images/s | ratio (ours / PyTorch) |\n|---|---|---|---|---|---|\n",
        arch_name(b.arch),
        b.batch,
        b.steps,
        b.warmup,
        crate::device::device_label(device),
        tch::get_num_threads(),
        crate::device::libtorch_version(),
        script.display(),
    );
    let mut ratios = Vec::new();
    for round in 1..=b.repeats.max(1) {
        let ours = time_our_step(device, b.batch, b.steps, b.warmup, b.arch)?;
        let torch = time_torch_step(python, script, device, b)?;
        let ratio = ours.ms_per_step / torch.ms_per_step;
        ratios.push(ratio);
        out.push_str(&format!(
            "| {round} | {:.2} | {:.1} | {:.2} | {:.1} | {ratio:.3} |\n",
            ours.ms_per_step, ours.images_per_sec, torch.ms_per_step, torch.images_per_sec
        ));
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    out.push_str(&format!("median ratio (gcl-repro time / PyTorch time): {:.3}\n", ratios[ratios.len() / 2]));
    Ok(out)
}

//! How a device is named in run records, benchmarks and reports: [`device_label`] (`cpu`,
//! `cuda:N`, as `--device` takes it) and [`device_name`] (the machine: the CPU's model and
//! cores, or the GPU's name and memory).
use tch::Device;

/// CPU model name from /proc/cpuinfo and the cores this process may use, e.g.
/// "AMD EPYC 7B13 (2 cores)": the machine named beside every benchmark and CPU run.
pub fn cpu_name() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| format!("unknown {} CPU", std::env::consts::ARCH));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{model} ({cores} cores)")
}

/// The device as `--device` names it: `cpu`, `cuda:N`.
pub fn device_label(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}"),
    }
}

/// GPU name and memory through nvidia-smi when present (tch does not expose device properties).
pub fn gpu_name(index: usize) -> String {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader", &format!("--id={index}")])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "CUDA device (nvidia-smi not available for its name)".into(),
    }
}

/// The machine a run on `device` trains on, as runs record it (`provenance.device_name`).
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => gpu_name(i),
        _ => cpu_name(),
    }
}

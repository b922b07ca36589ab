//! Device selection (`--device auto|cpu|cuda|cuda:N`), loading libtorch's CUDA part and the
//! CUDA-graph shim (`cuda_graph`), and the names of devices (`name`).
//!
//! A binary linked with the default `--as-needed` drops `libtorch_cuda.so`, and then CUDA is
//! never registered. Instead of linking it unconditionally (which would make the binary fail to
//! start on CPU-only hosts without the CUDA libraries), we `dlopen` it at start-up when present.
pub mod cuda_graph;
mod name;

use anyhow::{bail, Result};
pub use name::{cpu_name, device_label, device_name, gpu_name};
use std::str::FromStr;
use tch::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceChoice::Cuda(n)),
                _ => Err(format!("invalid device `{s}`: expected one of auto, cpu, cuda, cuda:N (N a GPU index)")),
            },
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceChoice {
    /// Resolve to a tch device; asking for a GPU that is not there is an error, not a panic.
    pub fn resolve(self) -> Result<Device> {
        if self == DeviceChoice::Cpu {
            // No CUDA wanted: skip loading libtorch_cuda (measured ~5% slower CPU steps with it).
            return Ok(Device::Cpu);
        }
        load_cuda();
        let count = if tch::Cuda::is_available() { tch::Cuda::device_count() as usize } else { 0 };
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto if count > 0 => {
                apply_memory_share(0)?;
                Ok(Device::Cuda(0))
            }
            DeviceChoice::Auto => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) if n < count => {
                apply_memory_share(n)?;
                Ok(Device::Cuda(n))
            }
            DeviceChoice::Cuda(n) if count == 0 => bail!(
                "device cuda:{n} was requested but CUDA is not available on this host \
                 (libtorch_cuda {}); use --device cpu or --device auto",
                if cuda_library_loaded() { "loaded, no GPU visible" } else { "not found" }
            ),
            DeviceChoice::Cuda(n) => {
                bail!("device cuda:{n} was requested but this host has {count} GPU(s) (cuda:0..cuda:{})", count - 1)
            }
        }
    }
}

/// The environment variable through which `run --jobs N` gives each worker process on a GPU
/// its share of the GPU's memory (a fraction in (0, 1]).
pub const MEMORY_SHARE_ENV: &str = "GCL_CUDA_MEMORY_SHARE";

/// The share of one GPU's memory each of `workers` processes gets: an equal part of 90 % (the
/// rest is the CUDA contexts' own memory and headroom).
pub fn memory_share(workers: usize) -> f64 {
    0.9 / workers.max(1) as f64
}

/// Cap this process's CUDA caching allocator at [`MEMORY_SHARE_ENV`]'s fraction of the GPU's
/// memory, if set: several runs sharing one GPU then each fail alone with an out-of-memory error
/// instead of one starving the others. Needs the CUDA-graph shim (it wraps libtorch's
/// `setMemoryFraction`).
fn apply_memory_share(device: usize) -> Result<()> {
    let Ok(text) = std::env::var(MEMORY_SHARE_ENV) else { return Ok(()) };
    let share: f64 = text.parse().ok().filter(|f| *f > 0.0 && *f <= 1.0).ok_or_else(|| {
        anyhow::anyhow!("{MEMORY_SHARE_ENV}={text} is not a fraction in (0, 1]; unset it or give e.g. 0.45")
    })?;
    cuda_graph::set_memory_fraction(device, share)
}

static CUDA_LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// dlopen `libtorch_cuda.so` once (RTLD_GLOBAL so its registration reaches libtorch_cpu).
/// Tries the build-time libtorch directory first, then the loader's search path
/// (RUNPATH / LD_LIBRARY_PATH), so the same binary runs on a GPU host's libtorch.
pub fn load_cuda() -> bool {
    *CUDA_LOADED.get_or_init(|| {
        let mut candidates = vec!["libtorch_cuda.so".to_string()];
        if let Some(dir) = loaded_libtorch_dir() {
            candidates.insert(0, format!("{dir}/libtorch_cuda.so"));
        }
        for name in candidates {
            let c = std::ffi::CString::new(name.clone()).unwrap();
            // SAFETY: dlopen with a valid C string; the handle is intentionally never closed.
            let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if !handle.is_null() {
                tracing::debug!("loaded {name}");
                return true;
            }
        }
        tracing::debug!("libtorch_cuda.so not loadable: CPU only");
        false
    })
}

pub fn cuda_library_loaded() -> bool {
    load_cuda()
}

/// The directory of the libtorch actually loaded into this process (from /proc/self/maps),
/// falling back to the directory the binary was built against.
pub fn loaded_libtorch_dir() -> Option<String> {
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            if let Some(path) = line.split_whitespace().nth(5) {
                if path.ends_with("/libtorch_cpu.so") {
                    return std::path::Path::new(path).parent().map(|p| p.display().to_string());
                }
            }
        }
    }
    let built = env!("GCL_BUILD_LIBTORCH_LIB");
    (!built.is_empty()).then(|| built.to_string())
}

/// The version of the loaded libtorch, read from the files that ship beside it
/// (`torch/version.py` for a PyPI install, `build-version` for a libtorch zip).
pub fn libtorch_version() -> String {
    let Some(dir) = loaded_libtorch_dir() else { return "unknown".into() };
    let root = std::path::Path::new(&dir).parent().unwrap_or(std::path::Path::new("/"));
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("__version__ = ") {
                return v.trim_matches(|c| c == '\'' || c == '"').to_string();
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(root.join("build-version")) {
        return text.trim().to_string();
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(3)));
        let err = "gpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.contains("auto, cpu, cuda, cuda:N"), "{err}");
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn cpu_always_resolves() {
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), Device::Cpu);
    }

    #[test]
    fn missing_gpu_is_a_clear_error() {
        if tch::Cuda::is_available() {
            return; // this check is about hosts without a GPU
        }
        let err = DeviceChoice::Cuda(0).resolve().unwrap_err().to_string();
        assert!(err.contains("CUDA is not available") && err.contains("--device cpu"), "{err}");
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), Device::Cpu);
    }

    #[test]
    fn libtorch_is_the_expected_version() {
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, Device::Cpu));
        assert!(libtorch_version().starts_with("2.11.0"), "{}", libtorch_version());
    }
}

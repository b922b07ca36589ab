//! `gcl-repro doctor`: is the toolchain usable, what hardware and data does it see.
use crate::data::catalog;
use crate::device;
use std::fmt::Write;
use std::path::PathBuf;

/// The report as text; `ok` is false when the toolchain is unusable.
pub fn report(data_roots: &[PathBuf]) -> (String, bool) {
    let mut s = String::new();
    let ok_tensor = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).sum(tch::Kind::Float).double_value(&[]) == 6.0;
    let libtorch = device::libtorch_version();
    let cuda_lib = device::load_cuda();
    let cuda = tch::Cuda::is_available();
    writeln!(s, "gcl-repro {} (commit {})", env!("CARGO_PKG_VERSION"), env!("GCL_GIT_COMMIT")).unwrap();
    writeln!(s, "libtorch:  {libtorch} ({})", device::loaded_libtorch_dir().unwrap_or_else(|| "?".into())).unwrap();
    writeln!(s, "tensor ops: {}", if ok_tensor { "ok" } else { "FAILED" }).unwrap();
    writeln!(s, "threads:   {}", tch::get_num_threads()).unwrap();
    let levels: Vec<&str> = crate::numerics::supported().iter().map(|l| l.name()).collect();
    writeln!(
        s,
        "cpu path:  {} (levels a run can pin here with cpu.isa: {})",
        crate::numerics::describe(),
        levels.join(", ")
    )
    .unwrap();
    writeln!(
        s,
        "libtorch_cuda: {}",
        if cuda_lib { "loaded" } else { "not found (CPU-only libtorch or CUDA libraries missing)" }
    )
    .unwrap();
    writeln!(s, "CUDA:      {}", if cuda { "available" } else { "not available" }).unwrap();
    writeln!(s, "cuDNN:     {}", if tch::Cuda::cudnn_is_available() { "available" } else { "not available" }).unwrap();
    let graph = crate::device::cuda_graph::BUILD_NOTE;
    if !crate::device::cuda_graph::built() {
        writeln!(s, "CUDA graphs: not in this build ({graph})").unwrap();
    } else if cuda_lib {
        match crate::device::cuda_graph::device_count() {
            Ok(n) => writeln!(s, "CUDA graphs: shim loaded, {n} device(s)").unwrap(),
            Err(e) => writeln!(s, "CUDA graphs: shim built but not loadable here ({e:#})").unwrap(),
        }
    } else {
        writeln!(s, "CUDA graphs: shim built (loaded only where libtorch_cuda is)").unwrap();
    }
    if cuda {
        for i in 0..tch::Cuda::device_count() {
            let mem = crate::device::cuda_graph::memory_info(i as usize)
                .map(|(free, total)| {
                    format!(", {:.1} of {:.1} GiB free", free as f64 / 1073741824.0, total as f64 / 1073741824.0)
                })
                .unwrap_or_default();
            writeln!(s, "  gpu {i}: {}{mem}", device::gpu_name(i as usize)).unwrap();
        }
    }
    for root in data_roots {
        let found = catalog::scan_root(root);
        if found.is_empty() {
            writeln!(s, "data root {}: no known datasets", root.display()).unwrap();
        } else {
            writeln!(s, "data root {}:", root.display()).unwrap();
            for f in found {
                writeln!(s, "  {:<12} {} ({})", f.name, f.path, f.detail).unwrap();
            }
        }
    }
    writeln!(s, "built-in:  synthetic (no files needed)").unwrap();
    let ok = ok_tensor && libtorch.starts_with("2.11.0");
    writeln!(s, "status:    {}", if ok { "ok" } else { "NOT USABLE (libtorch must be 2.11.0)" }).unwrap();
    (s, ok)
}

//! Embed the libtorch library directory as a RUNPATH so that `target/release/gcl-repro`
//! runs from a plain shell with no LD_LIBRARY_PATH. RUNPATH (not RPATH) is used on purpose:
//! on a GPU host, `LD_LIBRARY_PATH` pointing at that host's libtorch takes precedence.
use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=GCL_BUILD_LIBTORCH_LIB={lib}");
        // The C++ shims linked into the binary: `numerics` (src/shim/numerics.cpp, which needs no
        // header of libtorch, only its C++ ABI), the static step's multi-tensor SGD
        // (src/shim/step.cpp), bf16 autocast (src/shim/precision.cpp) and data-parallel training
        // over c10d's Gloo process group (src/shim/distributed.cpp), against ATen's and c10d's
        // headers. All resolve against libtorch_cpu. The torch wheel ships c10d's headers but not
        // the Gloo headers they include: src/shim/third_party/gloo holds those (BSD licence, from
        // pytorch/gloo at 70dc360272dfc57e3617184c78ff9b06f8cd4757; config.h written for a CPU
        // build with the TCP transport), declarations only: libtorch_cpu has Gloo's code.
        let include = Path::new(&lib).join("../include");
        for file in ["numerics", "step", "precision", "distributed"] {
            println!("cargo:rerun-if-changed=src/shim/{file}.cpp");
        }
        println!("cargo:rerun-if-changed=src/shim/third_party");
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            .define("_GLIBCXX_USE_CXX11_ABI", "1")
            .define("USE_C10D_GLOO", None)
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .include("src/shim/third_party")
            .flag_if_supported("-Wno-unused-parameter")
            .file("src/shim/numerics.cpp")
            .file("src/shim/step.cpp")
            .file("src/shim/precision.cpp")
            .file("src/shim/distributed.cpp")
            .compile("gcl_shim");
        cuda_graph_library(&lib, &include);
    } else {
        println!("cargo:rustc-env=GCL_BUILD_LIBTORCH_LIB=");
        write_no_cuda_graph_library("tch did not report libtorch's library directory");
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=GCL_GIT_COMMIT={commit}");
    // HEAD names a branch; its log changes with every commit, so the embedded commit stays current.
    // Asked of git (in a worktree `.git` is a file), and only files that exist: cargo reruns a
    // build script every time a watched path is missing.
    for file in ["HEAD", "logs/HEAD"] {
        let path = std::process::Command::new("git")
            .args(["rev-parse", "--git-path", file])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// The CUDA-graph shim (src/shim/cuda_graph.cpp) as a shared library in OUT_DIR, embedded into
/// the binary by `device::cuda_graph` and dlopen'd only on CUDA, so the binary itself needs
/// no CUDA library. It is compiled against the headers that `pip install torch==2.11.0` brings
/// (torch's, and the CUDA runtime's from the `nvidia` packages, plus `nvidia-cuda-crt`, which
/// `make setup` installs). Without them the library is an empty file and graph mode reports
/// itself unavailable at run time.
fn cuda_graph_library(lib: &str, include: &Path) {
    println!("cargo:rerun-if-changed=src/shim/cuda_graph.cpp");
    let cuda = Path::new(lib).join("../../nvidia/cu13");
    let cuda_include = cuda.join("include");
    if !cuda_include.join("crt/host_config.h").exists() {
        write_no_cuda_graph_library(&format!(
            "no CUDA runtime headers at {} (make setup installs nvidia-cuda-crt)",
            cuda_include.display()
        ));
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("libgcl_cuda_graph.so");
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let status = compiler
        .to_command()
        .args(["-std=c++17", "-O2", "-fPIC", "-shared", "-D_GLIBCXX_USE_CXX11_ABI=1"])
        .arg(format!("-I{}", include.display()))
        .arg(format!("-I{}", cuda_include.display()))
        .arg("src/shim/cuda_graph.cpp")
        .arg("-o")
        .arg(&out)
        .arg("-Wl,--no-as-needed")
        .arg(format!("-L{lib}"))
        .arg(format!("-L{}", cuda.join("lib").display()))
        .args(["-ltorch_cuda", "-lc10_cuda", "-ltorch_cpu", "-lc10", "-l:libcudart.so.13"])
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo:rustc-env=GCL_CUDA_GRAPH_NOTE=built"),
        other => {
            println!("cargo:warning=the CUDA-graph shim did not compile ({other:?}); graph mode will be unavailable");
            write_no_cuda_graph_library("the CUDA-graph shim did not compile");
        }
    }
}

fn write_no_cuda_graph_library(why: &str) {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("libgcl_cuda_graph.so");
    std::fs::write(out, b"").unwrap();
    println!("cargo:rustc-env=GCL_CUDA_GRAPH_NOTE={why}");
}

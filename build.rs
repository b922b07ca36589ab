//! Embed the libtorch library directory as a RUNPATH so that `target/release/gcl-repro`
//! runs from a plain shell with no LD_LIBRARY_PATH. RUNPATH (not RPATH) is used on purpose:
//! on a GPU host, `LD_LIBRARY_PATH` pointing at that host's libtorch takes precedence.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=GCL_BUILD_LIBTORCH_LIB={lib}");
        // The small C++ shim of `numerics` (see src/shim/numerics.cpp); it needs no header of
        // libtorch, only its C++ ABI, and resolves against libtorch_cpu at link time.
        println!("cargo:rerun-if-changed=src/shim/numerics.cpp");
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            .define("_GLIBCXX_USE_CXX11_ABI", "1")
            .file("src/shim/numerics.cpp")
            .compile("gcl_shim");
    } else {
        println!("cargo:rustc-env=GCL_BUILD_LIBTORCH_LIB=");
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

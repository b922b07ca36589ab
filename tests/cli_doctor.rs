//! The `doctor` report and command-line error behaviour, through the real binary.
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gcl-repro"));
    // The binary must run from a plain shell: no LD_LIBRARY_PATH (libtorch via RUNPATH).
    c.env_remove("LD_LIBRARY_PATH");
    c
}

#[test]
fn doctor_reports_libtorch_and_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let c10 = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&c10).unwrap();
    for f in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::write(c10.join(f), b"").unwrap();
    }
    let out = bin().args(["doctor", "--device", "cpu", "--data-root"]).arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("libtorch:  2.11.0"), "{text}");
    assert!(text.contains(&format!("gcl-repro {}", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("cifar10") && text.contains("6 file(s) complete"), "{text}");
    assert!(text.contains("CUDA:") && text.contains("threads:"), "{text}");
    assert!(text.contains("status:    ok"), "{text}");
}

#[test]
fn bad_device_is_one_clear_line() {
    let out = bin().args(["--device", "gpu0", "doctor"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid device `gpu0`"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn cuda_without_gpu_is_an_error_not_a_panic() {
    // No GPU is visible to the child, on a GPU host too, so the test runs everywhere.
    let out = bin().args(["--device", "cuda", "doctor"]).env("CUDA_VISIBLE_DEVICES", "").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: device cuda:0 was requested but CUDA is not available"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

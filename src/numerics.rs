//! The CPU numeric path of a run: which vector kernels libtorch and oneDNN use, and how many
//! threads split the reductions.
//!
//! Both change results in the last bits, and a training run turns last bits into different
//! accuracies (gcl-notes.md §8: the same quick-start run gave 81.50 % with AVX2 kernels and
//! 78.10 % with the default ones). libtorch picks its kernels by the CPU unless
//! `ATEN_CPU_CAPABILITY` says otherwise, oneDNN by `DNNL_MAX_CPU_ISA`; both read their variable
//! once, at their first use in a process. So a run can pin `cpu = { isa = "avx2", threads = 2 }`
//! (part of its key): this module sets both variables before the process's first tensor
//! operation, checks with libtorch that the choice took effect, and refuses a level the CPU
//! lacks. A process can hold one level only; the runner trains a run that pins another level in
//! a child process. An unpinned run uses what the machine offers and records it in provenance.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// The CPU numeric path of a run. Unset fields leave the machine's choice (recorded in each
/// result's provenance); set ones are part of the key and make a CPU run give the same numbers
/// on every x86-64 machine that has the level (`numerics`). GPU runs ignore them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuSpec {
    /// Vector kernels of libtorch (`ATEN_CPU_CAPABILITY`) and oneDNN (`DNNL_MAX_CPU_ISA`).
    pub isa: Option<CpuIsa>,
    /// Intra-op threads (they split reductions, so their number changes the last bits).
    pub threads: Option<usize>,
}

/// A CPU kernel level. Every x86-64 CPU of the last decade has `avx2` (with FMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuIsa {
    /// No vector kernels (libtorch's scalar fallbacks; oneDNN up to SSE4.1).
    Default,
    Avx2,
    Avx512,
}

impl CpuIsa {
    pub fn name(self) -> &'static str {
        match self {
            CpuIsa::Default => "default",
            CpuIsa::Avx2 => "avx2",
            CpuIsa::Avx512 => "avx512",
        }
    }
}

extern "C" {
    fn gcl_cpu_capability(buf: *mut std::os::raw::c_char, len: i32) -> i32;
}

/// Set in the environment of a child process the runner starts for a pinned run: there the pin
/// must take effect, or the run fails (no further child).
pub const CHILD_ENV: &str = "GCL_PINNED_CHILD";

/// The level this process runs at, once the first run has fixed it (`None` inside: unpinned).
static PROCESS_ISA: Mutex<Option<Option<CpuIsa>>> = Mutex::new(None);

/// libtorch's and oneDNN's names for a level.
pub fn env_values(isa: CpuIsa) -> (&'static str, &'static str) {
    match isa {
        CpuIsa::Default => ("default", "SSE41"),
        CpuIsa::Avx2 => ("avx2", "AVX2"),
        CpuIsa::Avx512 => ("avx512", "AVX512_CORE"),
    }
}

/// The kernels libtorch's dispatcher uses in this process ("DEFAULT", "AVX2", "AVX512"). Calling
/// it fixes the level, like any tensor operation.
pub fn effective_capability() -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: the shim writes at most `buf.len()` bytes, NUL-terminated.
    let n = unsafe { gcl_cpu_capability(buf.as_mut_ptr(), buf.len() as i32) };
    if n < 0 {
        return "unknown".into();
    }
    // SAFETY: NUL-terminated by the shim.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// The levels this CPU can run, from /proc/cpuinfo's flags (libtorch would not check: asked
/// for AVX-512 on a CPU without it, it would die of an illegal instruction).
pub fn supported() -> Vec<CpuIsa> {
    let flags: Vec<String> = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("flags")).map(|l| l.split_whitespace().map(String::from).collect())
        })
        .unwrap_or_default();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let mut out = vec![CpuIsa::Default];
    if cfg!(target_arch = "x86_64") && has("avx2") && has("fma") {
        out.push(CpuIsa::Avx2);
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].iter().all(|f| has(f)) {
            out.push(CpuIsa::Avx512);
        }
    }
    out
}

/// Whether a run pinned to `isa` can train in this process: the first pinned run fixes the
/// process's level (setting the variables, then checking libtorch's choice); later calls answer
/// whether they ask for the same level. `Ok(false)`: train it in a child process (this process
/// already holds another level, e.g. after unpinned runs). An unpinned run can run anywhere.
pub fn claim(isa: Option<CpuIsa>) -> Result<bool> {
    let mut held = PROCESS_ISA.lock().unwrap_or_else(|e| e.into_inner());
    match (*held, isa) {
        (_, None) => Ok(true),
        (Some(current), Some(_)) => Ok(current == isa),
        (None, Some(level)) => {
            if !supported().contains(&level) {
                bail!(
                    "this run pins cpu.isa = {} but this CPU ({}) lacks it (it has {}); pin a level it has or remove cpu.isa",
                    level.name(),
                    crate::device::cpu_name(),
                    supported().iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
                );
            }
            let (aten, dnnl) = env_values(level);
            std::env::set_var("ATEN_CPU_CAPABILITY", aten);
            std::env::set_var("DNNL_MAX_CPU_ISA", dnnl);
            let got = effective_capability();
            if !got.eq_ignore_ascii_case(aten) {
                if std::env::var_os(CHILD_ENV).is_none() {
                    return Ok(false); // fixed earlier in this process: a fresh process will do
                }
                bail!(
                    "this run pins cpu.isa = {} but libtorch runs {got} kernels even in a fresh process \
                     (ATEN_CPU_CAPABILITY={aten} had no effect: is this libtorch built without those kernels?)",
                    level.name()
                );
            }
            *held = Some(isa);
            Ok(true)
        }
    }
}

/// Intra-op threads for the next run: its pinned count, else the process's initial count.
pub fn set_threads(threads: Option<usize>) {
    static INITIAL: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    let initial = *INITIAL.get_or_init(tch::get_num_threads);
    tch::set_num_threads(threads.map(|n| n as i32).unwrap_or(initial));
}

/// The provenance line of the numeric path this process uses, e.g. "AVX2 kernels, oneDNN max
/// ISA AVX2, 2 threads".
pub fn describe() -> String {
    let dnnl = std::env::var("DNNL_MAX_CPU_ISA").unwrap_or_else(|_| "unset (the CPU's best)".into());
    format!("{} kernels, oneDNN max ISA {dnnl}, {} threads", effective_capability(), tch::get_num_threads())
}

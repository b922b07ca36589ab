//! CUDA-graph capture and replay through libtorch's `at::cuda::CUDAGraph` (src/shim/cuda_graph.cpp).
//!
//! The shim is a small shared library that build.rs compiles against the venv's torch and CUDA
//! headers; its bytes are embedded in this binary and written out and `dlopen`ed the first time
//! a graph is wanted, after `libtorch_cuda.so` (see `device/mod.rs`). So the binary carries it to a
//! GPU host by itself, and on a CPU-only host nothing CUDA is ever loaded unless asked for.
use anyhow::{bail, Context, Result};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::OnceLock;

/// The shim library, or an empty slice when the build had no CUDA headers.
static LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libgcl_cuda_graph.so"));
/// Why the library is empty, or "built".
pub const BUILD_NOTE: &str = env!("GCL_CUDA_GRAPH_NOTE");

type ErrFn0 = unsafe extern "C" fn(*mut c_void, *mut c_char, i32) -> i32;

/// The shim's entry points, resolved once per process.
struct Shim {
    device_count: unsafe extern "C" fn(*mut i32, *mut c_char, i32) -> i32,
    graph_new: unsafe extern "C" fn(i32, *mut *mut c_void, *mut c_char, i32) -> i32,
    graph_free: unsafe extern "C" fn(*mut c_void),
    enter_side_stream: ErrFn0,
    capture_begin: ErrFn0,
    capture_end: ErrFn0,
    leave_side_stream: ErrFn0,
    replay: ErrFn0,
    mem_info: unsafe extern "C" fn(i32, *mut u64, *mut u64, *mut c_char, i32) -> i32,
    set_memory_fraction: unsafe extern "C" fn(i32, f64, *mut c_char, i32) -> i32,
}

static SHIM: OnceLock<Result<Shim, String>> = OnceLock::new();

fn shim() -> Result<&'static Shim> {
    SHIM.get_or_init(|| load().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Whether this binary carries the shim (it may still fail to load where CUDA is absent).
pub fn built() -> bool {
    !LIBRARY.is_empty()
}

fn load() -> Result<Shim> {
    if LIBRARY.is_empty() {
        bail!("this binary was built without the CUDA-graph shim ({BUILD_NOTE}); rebuild after `make setup`");
    }
    if !crate::device::load_cuda() {
        bail!("libtorch_cuda.so cannot be loaded here, so the CUDA-graph shim cannot either");
    }
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(LIBRARY))
    };
    let path = std::env::temp_dir().join(format!("gcl-repro-cuda-graph-{}.so", &digest[..16]));
    if std::fs::read(&path).map(|b| b != LIBRARY).unwrap_or(true) {
        crate::atomic::write_with(&path, |tmp| Ok(std::fs::write(tmp, LIBRARY)?))
            .with_context(|| format!("writing the CUDA-graph shim to {}", path.display()))?;
    }
    let c = CString::new(path.to_string_lossy().as_bytes())?;
    // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local message or null.
        let why = unsafe { libc::dlerror() };
        let why = if why.is_null() {
            "unknown".into()
        } else {
            unsafe { CStr::from_ptr(why) }.to_string_lossy().into_owned()
        };
        bail!(
            "cannot load the CUDA-graph shim {} ({why}); are libtorch_cuda and the CUDA libraries on this host?",
            path.display()
        );
    }
    macro_rules! sym {
        ($name:literal) => {{
            let n = CString::new($name).unwrap();
            // SAFETY: the symbol is looked up in the library just opened.
            let p = unsafe { libc::dlsym(handle, n.as_ptr()) };
            if p.is_null() {
                bail!("the CUDA-graph shim lacks {}", $name);
            }
            // SAFETY: the shim defines the symbol with the signature of the field it fills (the
            // destination type is that field's, inferred: spelling it per symbol repeats the table).
            #[allow(clippy::missing_transmute_annotations)]
            unsafe {
                std::mem::transmute::<*mut c_void, _>(p)
            }
        }};
    }
    Ok(Shim {
        device_count: sym!("gcl_cuda_device_count"),
        graph_new: sym!("gcl_graph_new"),
        graph_free: sym!("gcl_graph_free"),
        enter_side_stream: sym!("gcl_graph_enter_side_stream"),
        capture_begin: sym!("gcl_graph_capture_begin"),
        capture_end: sym!("gcl_graph_capture_end"),
        leave_side_stream: sym!("gcl_graph_leave_side_stream"),
        replay: sym!("gcl_graph_replay"),
        mem_info: sym!("gcl_cuda_mem_info"),
        set_memory_fraction: sym!("gcl_cuda_set_memory_fraction"),
    })
}

/// Call a shim function that reports failure with 1 and a message.
fn call(what: &str, f: impl FnOnce(*mut c_char, i32) -> i32) -> Result<()> {
    let mut err = [0 as c_char; 512];
    if f(err.as_mut_ptr(), err.len() as i32) == 0 {
        return Ok(());
    }
    // SAFETY: the shim NUL-terminates the message within the buffer.
    let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    bail!("{what}: {msg}")
}

/// The number of CUDA devices the shim's libtorch sees (0 on a CPU-only host).
pub fn device_count() -> Result<usize> {
    let s = shim()?;
    let mut n = 0i32;
    // SAFETY: `n` outlives the call.
    call("counting CUDA devices", |e, l| unsafe { (s.device_count)(&mut n, e, l) })?;
    Ok(n as usize)
}

/// Free and total memory of a CUDA device, in bytes.
pub fn memory_info(device: usize) -> Result<(u64, u64)> {
    let s = shim()?;
    let (mut free, mut total) = (0u64, 0u64);
    // SAFETY: both outputs outlive the call.
    call("reading CUDA memory", |e, l| unsafe { (s.mem_info)(device as i32, &mut free, &mut total, e, l) })?;
    Ok((free, total))
}

/// Cap this process's share of a CUDA device's memory (libtorch's caching allocator).
pub fn set_memory_fraction(device: usize, fraction: f64) -> Result<()> {
    let s = shim()?;
    // SAFETY: plain values.
    call("capping CUDA memory", |e, l| unsafe { (s.set_memory_fraction)(device as i32, fraction, e, l) })
}

/// One captured CUDA graph (`torch.cuda.CUDAGraph`).
pub struct CudaGraph {
    handle: *mut c_void,
    shim: &'static Shim,
}

impl CudaGraph {
    pub fn new(device: usize) -> Result<CudaGraph> {
        let shim = shim()?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` outlives the call; the graph is freed in Drop.
        call("creating a CUDA graph", |e, l| unsafe { (shim.graph_new)(device as i32, &mut handle, e, l) })?;
        Ok(CudaGraph { handle, shim })
    }

    fn op(&self, what: &str, f: ErrFn0) -> Result<()> {
        // SAFETY: `handle` is a live graph made by `graph_new`.
        call(what, |e, l| unsafe { f(self.handle, e, l) })
    }

    /// Warm up and capture `body` the way `torch.cuda.graph` does: on a side stream, after
    /// `warmup` eager calls there (cuDNN/cuBLAS set up their workspaces outside the capture).
    pub fn capture(&mut self, warmup: usize, mut body: impl FnMut() -> Result<()>) -> Result<()> {
        self.op("entering a side stream", self.shim.enter_side_stream)?;
        let result = (|| {
            for _ in 0..warmup {
                body()?;
            }
            self.op("beginning the capture", self.shim.capture_begin)?;
            let captured = body();
            self.op("ending the capture", self.shim.capture_end)?;
            captured
        })();
        self.op("leaving the side stream", self.shim.leave_side_stream)?;
        result
    }

    /// Run the captured work again, on the current stream.
    pub fn replay(&self) -> Result<()> {
        self.op("replaying a CUDA graph", self.shim.replay)
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: made by `graph_new`, freed once.
        unsafe { (self.shim.graph_free)(self.handle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded shim loads on this host and links against libtorch_cuda: on a machine
    /// without a GPU it answers that there is no device (rather than failing to load).
    #[test]
    fn shim_is_embedded_and_loads() {
        assert!(built(), "the build did not produce the CUDA-graph shim: {BUILD_NOTE}");
        let n = device_count().expect("the CUDA-graph shim loads");
        if !tch::Cuda::is_available() {
            assert_eq!(n, 0);
        }
    }
}

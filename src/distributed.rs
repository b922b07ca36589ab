//! Data-parallel training of one run over several processes ("ranks") through torch's c10d:
//! a Gloo process group (CPU tensors; CUDA tensors go through the host) joined by torch's
//! env:// rendezvous, and the collectives a run needs, in `src/shim/distributed.cpp`.
//!
//! A rank process trains one run, so its group is process-wide ([`install`], [`current`]): the
//! epoch loop reads it to take its share of each batch and all-reduce the gradients
//! (`training::epoch`), and BatchNorm reads it when the run synchronises BatchNorm
//! (`models::resnet_cifar::BatchNorm2d`).
use anyhow::{bail, Context, Result};
use std::ffi::{c_char, c_void, CString};
use std::sync::OnceLock;
use tch::Tensor;

/// `data_parallel`: one run trained by several ranks. The global batch is the stage's
/// `batch_size` (each rank takes `batch_size / ranks` of it, a strided share of the sampler's one
/// epoch order, as `DistributedSampler` deals it) and the learning rate is the stage's, so a
/// data-parallel run is the single-process run spread out. It enters the key only when `ranks`
/// is above 1: the ranks' own random draws and per-rank BatchNorm change the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataParallel {
    /// Processes training the run together (1: no data parallelism).
    pub ranks: usize,
    pub batchnorm: BatchNormSync,
}

impl Default for DataParallel {
    fn default() -> Self {
        DataParallel { ranks: 1, batchnorm: BatchNormSync::PerRank }
    }
}

impl DataParallel {
    pub fn is_single(&self) -> bool {
        self.ranks <= 1
    }
}

/// BatchNorm across ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchNormSync {
    /// Each rank normalises with its own batch's statistics, and the running statistics are
    /// rank 0's, broadcast before every step: PyTorch's DistributedDataParallel with its
    /// default `broadcast_buffers=True`, what the released DDP code does.
    #[default]
    PerRank,
    /// `SyncBatchNorm`: the statistics of every rank's batch together.
    Sync,
}

/// Where and as whom a rank joins: torch's env:// variables (`MASTER_ADDR`, `MASTER_PORT`,
/// `RANK`, `WORLD_SIZE`), with Slurm's task variables standing in for the last two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendezvous {
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
}

impl Rendezvous {
    /// The rendezvous the environment describes, or `None` when it names no rank (a
    /// one-process run). `RANK` / `WORLD_SIZE` are read first, then `SLURM_PROCID` /
    /// `SLURM_NTASKS`; `MASTER_ADDR` and `MASTER_PORT` must then be set.
    pub fn from_env() -> Result<Option<Rendezvous>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Rendezvous::from_env`] over any source of variables (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Rendezvous>> {
        let pick = |a: &str, b: &str| var(a).map(|v| (a.to_string(), v)).or_else(|| var(b).map(|v| (b.to_string(), v)));
        let (Some(rank), Some(world)) = (pick("RANK", "SLURM_PROCID"), pick("WORLD_SIZE", "SLURM_NTASKS")) else {
            return Ok(None);
        };
        let number = |(name, value): (String, String)| {
            value.trim().parse::<usize>().with_context(|| format!("{name}={value:?} is not a rank number"))
        };
        let (rank, world) = (number(rank)?, number(world)?);
        if world == 0 || rank >= world {
            bail!("rank {rank} of a world of {world}: RANK must be below WORLD_SIZE");
        }
        let host = var("MASTER_ADDR")
            .context("a data-parallel rank needs MASTER_ADDR (the host of rank 0) besides RANK and WORLD_SIZE")?;
        let port = var("MASTER_PORT").context("a data-parallel rank needs MASTER_PORT (a free port on MASTER_ADDR)")?;
        let port = port.trim().parse::<u16>().with_context(|| format!("MASTER_PORT={port:?} is not a port number"))?;
        Ok(Some(Rendezvous { host, port, rank, world }))
    }
}

/// A joined process group.
pub struct Group {
    raw: *mut c_void,
    pub rank: usize,
    pub world: usize,
    /// `data_parallel.batchnorm = "sync"`: BatchNorm in training mode normalises with the
    /// statistics of every rank's batch.
    sync_batch_norm: bool,
}

// SAFETY: c10d process groups are thread-safe; the handle is only freed on drop.
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

mod shim {
    use std::ffi::{c_char, c_void};
    use torch_sys::C_tensor;
    extern "C" {
        pub fn gcl_dist_new(
            host: *const c_char,
            port: i32,
            rank: i32,
            world: i32,
            join_timeout_s: i32,
            timeout_s: i32,
            err: *mut c_char,
            errlen: i32,
        ) -> *mut c_void;
        pub fn gcl_dist_free(group: *mut c_void);
        pub fn gcl_dist_broadcast(
            group: *mut c_void,
            tensors: *const *mut C_tensor,
            n: i32,
            root: i32,
            err: *mut c_char,
            errlen: i32,
        ) -> i32;
        pub fn gcl_dist_allreduce_grads(
            group: *mut c_void,
            params: *const *mut C_tensor,
            n: i32,
            share: f64,
            bucket_bytes: i64,
            err: *mut c_char,
            errlen: i32,
        ) -> i32;
        pub fn gcl_dist_sum(group: *mut c_void, values: *mut f64, n: i32, err: *mut c_char, errlen: i32) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn gcl_dist_sync_batch_norm(
            group: *mut c_void,
            x: *const C_tensor,
            weight: *const C_tensor,
            bias: *const C_tensor,
            running_mean: *mut C_tensor,
            running_var: *mut C_tensor,
            momentum: f64,
            eps: f64,
            share: f64,
            out: *mut *mut C_tensor,
            err: *mut c_char,
            errlen: i32,
        ) -> i32;
    }
}

/// DistributedDataParallel's default gradient bucket.
pub const BUCKET_BYTES: i64 = 25 << 20;

/// How long a rank waits for every rank to join: a rank that failed to start fails the others
/// after this.
pub const JOIN_TIMEOUT_SECONDS: i32 = 300;

/// How long a rank waits for the others in a collective before failing: long enough for rank 0's
/// evaluation and checkpoint at an epoch's end on a large test set.
pub const TIMEOUT_SECONDS: i32 = 3600;

/// Run a shim call that writes an error message; `what` names the collective.
fn checked(what: &str, call: impl FnOnce(*mut c_char, i32) -> i32) -> Result<()> {
    let mut err = [0 as c_char; 1024];
    if call(err.as_mut_ptr(), err.len() as i32) != 0 {
        // SAFETY: the shim NUL-terminates what it writes.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        bail!("data-parallel {what} failed (another rank stopped or cannot be reached?): {}", first_line(&msg));
    }
    Ok(())
}

/// c10d's messages carry a C++ backtrace after their first line.
fn first_line(msg: &str) -> &str {
    msg.lines().next().unwrap_or(msg)
}

fn handles(tensors: &[Tensor]) -> Vec<*mut torch_sys::C_tensor> {
    tensors.iter().map(|t| t.as_ptr() as *mut _).collect()
}

impl Group {
    /// Join the group `r` describes (blocks until every rank has joined, or fails after
    /// [`JOIN_TIMEOUT_SECONDS`]).
    pub fn join(r: &Rendezvous, sync_batch_norm: bool) -> Result<Group> {
        let host = CString::new(r.host.clone()).context("MASTER_ADDR holds a NUL byte")?;
        let mut err = [0 as c_char; 1024];
        // SAFETY: valid C strings and buffer; the shim returns null on failure.
        let raw = unsafe {
            shim::gcl_dist_new(
                host.as_ptr(),
                r.port as i32,
                r.rank as i32,
                r.world as i32,
                JOIN_TIMEOUT_SECONDS,
                TIMEOUT_SECONDS,
                err.as_mut_ptr(),
                err.len() as i32,
            )
        };
        if raw.is_null() {
            // SAFETY: NUL-terminated by the shim.
            let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
            bail!("rank {} of {} could not join {}:{}: {}", r.rank, r.world, r.host, r.port, first_line(&msg));
        }
        Ok(Group { raw, rank: r.rank, world: r.world, sync_batch_norm })
    }

    /// Every rank's `tensors` set, in place, to rank 0's.
    pub fn broadcast_from_rank0(&self, tensors: &[Tensor]) -> Result<()> {
        let h = handles(tensors);
        // SAFETY: live tensor handles for the duration of the call.
        checked("broadcast", |e, l| unsafe { shim::gcl_dist_broadcast(self.raw, h.as_ptr(), h.len() as i32, 0, e, l) })
    }

    /// The gradients of `params` replaced by the sum over ranks of `share * gradient`, where
    /// `share` is this rank's part of the step's global batch: the global batch's mean-loss
    /// gradient when each rank's loss is the mean over its own images.
    pub fn allreduce_gradients(&self, params: &[Tensor], share: f64) -> Result<()> {
        let h = handles(params);
        // SAFETY: live tensor handles for the duration of the call.
        checked("gradient all-reduce", |e, l| unsafe {
            shim::gcl_dist_allreduce_grads(self.raw, h.as_ptr(), h.len() as i32, share, BUCKET_BYTES, e, l)
        })
    }

    /// `values` replaced by their sums over ranks.
    pub fn sum(&self, values: &mut [f64]) -> Result<()> {
        // SAFETY: `values` is a live, writable buffer of `len` doubles.
        checked("sum", |e, l| unsafe { shim::gcl_dist_sum(self.raw, values.as_mut_ptr(), values.len() as i32, e, l) })
    }

    /// This rank's part of every step's global batch: `1 / world`, since each rank gets as many
    /// images as the others (`training::ranks::shard` pads the epoch order).
    pub fn share(&self) -> f64 {
        1.0 / self.world as f64
    }

    pub fn syncs_batch_norm(&self) -> bool {
        self.sync_batch_norm
    }

    /// Synchronised BatchNorm of `x` in training mode: normalised with the mean and variance
    /// of every rank's batch together, the running statistics updated with them.
    pub fn batch_norm(&self, x: &Tensor, bn: &tch::nn::BatchNorm, momentum: f64, eps: f64) -> Tensor {
        let (w, b) = (bn.ws.as_ref().expect("affine BatchNorm"), bn.bs.as_ref().expect("affine BatchNorm"));
        let mut out: *mut torch_sys::C_tensor = std::ptr::null_mut();
        let share = self.share();
        // SAFETY: live handles; the shim allocates `out` as a tensor handle tch then owns.
        let call = checked("synchronised BatchNorm", |e, l| unsafe {
            shim::gcl_dist_sync_batch_norm(
                self.raw,
                x.as_ptr(),
                w.as_ptr(),
                b.as_ptr(),
                bn.running_mean.as_ptr() as *mut _,
                bn.running_var.as_ptr() as *mut _,
                momentum,
                eps,
                share,
                &mut out,
                e,
                l,
            )
        });
        // A forward pass cannot return an error through `ModuleT`: a failed collective ends
        // the rank with its message (the run resumes from its last epoch).
        if let Err(e) = call {
            panic!("{e:#}");
        }
        // SAFETY: `out` is a fresh `at::Tensor*` from the shim.
        unsafe { Tensor::from_ptr(out) }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `gcl_dist_new` and is freed once.
        unsafe { shim::gcl_dist_free(self.raw) }
    }
}

static CURRENT: OnceLock<Group> = OnceLock::new();

/// Make `group` this process's group (once: a rank process trains one run).
pub fn install(group: Group) -> Result<&'static Group> {
    CURRENT.set(group).map_err(|_| anyhow::anyhow!("this process already belongs to a data-parallel group"))?;
    Ok(CURRENT.get().expect("just set"))
}

/// This process's group, when it is a rank of a data-parallel run.
pub fn current() -> Option<&'static Group> {
    CURRENT.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_rendezvous_is_read_from_torch_or_slurm_variables() {
        assert_eq!(Rendezvous::from_vars(vars(&[])).unwrap(), None);
        let torch = [("RANK", "1"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500")];
        let r = Rendezvous::from_vars(vars(&torch)).unwrap().unwrap();
        assert_eq!(r, Rendezvous { host: "10.0.0.1".into(), port: 29500, rank: 1, world: 2 });
        let slurm = [("SLURM_PROCID", "3"), ("SLURM_NTASKS", "4"), ("MASTER_ADDR", "n1"), ("MASTER_PORT", "6000")];
        assert_eq!(Rendezvous::from_vars(vars(&slurm)).unwrap().unwrap().rank, 3);
        let e = Rendezvous::from_vars(vars(&[("RANK", "2"), ("WORLD_SIZE", "2")])).unwrap_err().to_string();
        assert!(e.contains("RANK must be below WORLD_SIZE"), "{e}");
        let e = format!("{:#}", Rendezvous::from_vars(vars(&[("RANK", "0"), ("WORLD_SIZE", "2")])).unwrap_err());
        assert!(e.contains("needs MASTER_ADDR"), "{e}");
    }
}

//! The processes of a data-parallel run on one host (`data_parallel.ranks` > 1): the worker the
//! runner starts for the run becomes rank 0, starts ranks 1.. as further workers of the same job
//! file with torch's env:// variables (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), and
//! waits for them at the end. Under Slurm every task is a worker started by `srun`, with the
//! rendezvous in its environment (`plan --emit slurm`), and nothing is launched here.
//!
//! Devices: those `run --devices ... --data-parallel` names, one per rank; otherwise on CPU
//! every rank trains on the CPU and on CUDA rank `r` on `cuda:r`.
use crate::distributed::Rendezvous;
use anyhow::{bail, Context, Result};
use std::process::{Child, Command};
use tch::Device;

/// The ranks 1.. this process started; rank 0 is this process.
pub struct Siblings {
    children: Vec<(usize, Child)>,
}

/// The device of rank `rank` when rank 0 trains on `device`: the `rank`-th of `given` (`run
/// --devices ... --data-parallel`), else the CPU for every rank or `cuda:rank`.
pub fn device_of_rank(device: Device, given: &[Device], rank: usize) -> Device {
    match (given.get(rank), device) {
        (Some(d), _) => *d,
        (None, Device::Cuda(_)) => Device::Cuda(rank),
        (None, other) => other,
    }
}

/// A port on the loopback interface that was free a moment ago (the store binds it next).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port for the ranks to meet")?;
    Ok(listener.local_addr()?.port())
}

/// Start ranks 1..`world` of the job in `job_file` as workers (`worker` builds each one's
/// command for its device); returns rank 0's rendezvous and the started ranks.
pub fn start_siblings(
    world: usize,
    device: Device,
    given: &[Device],
    worker: impl Fn(Device) -> Command,
) -> Result<(Rendezvous, Siblings)> {
    let r0 = Rendezvous { host: "127.0.0.1".into(), port: free_port()?, rank: 0, world };
    let mut children = Vec::new();
    for rank in 1..world {
        let mut cmd = worker(device_of_rank(device, given, rank));
        cmd.env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("MASTER_ADDR", &r0.host)
            .env("MASTER_PORT", r0.port.to_string());
        let child = cmd.spawn().with_context(|| format!("starting rank {rank} of {world}"));
        match child {
            Ok(c) => children.push((rank, c)),
            Err(e) => {
                Siblings { children }.kill();
                return Err(e);
            }
        }
    }
    Ok((r0, Siblings { children }))
}

impl Siblings {
    /// Wait for every rank; the first that failed is the error (with its exit status).
    pub fn wait(mut self) -> Result<()> {
        let mut failed = Vec::new();
        for (rank, child) in &mut self.children {
            let status = child.wait().with_context(|| format!("waiting for rank {rank}"))?;
            if !status.success() {
                failed.push(format!("rank {rank} exited with {status}"));
            }
        }
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
        Ok(())
    }

    /// Stop every rank (rank 0 failed: theirs would only wait for it).
    pub fn kill(mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_take_the_named_devices_else_one_gpu_each() {
        assert_eq!(device_of_rank(Device::Cpu, &[], 1), Device::Cpu);
        assert_eq!(device_of_rank(Device::Cuda(0), &[], 3), Device::Cuda(3));
        assert_eq!(device_of_rank(Device::Cuda(2), &[Device::Cuda(2), Device::Cuda(5)], 1), Device::Cuda(5));
    }
}

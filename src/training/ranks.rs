//! What the epoch loop does differently when it is one rank of a data-parallel run
//! ([`crate::distributed`]); each call is a no-op in a single-process run, so the loop reads
//! the same either way.
//!
//! Per run: every rank waits until rank 0 has prepared the run directory, resumes from the same
//! checkpoint, and takes rank 0's tensors (so all start from the same weights). Per epoch: each
//! rank takes its strided share of the one epoch order ([`shard`]) in batches of
//! `batch_size / ranks`. Per step: with per-rank BatchNorm, rank 0's running statistics are
//! broadcast before the forward pass (DistributedDataParallel's `broadcast_buffers`); after the
//! backward pass the gradients are all-reduced, weighted `1 / ranks` (equal shares: [`shard`]
//! pads the order), so every rank takes the same optimiser step. At the epoch's end the loss
//! and hit sums are added over ranks, and only rank 0 evaluates and writes (records, best
//! weights, checkpoint, exports). Data-parallel steps run eagerly (no static step).
use super::sgd::Sgd;
use super::stage::Stage;
use crate::distributed::{current, Group};
use anyhow::{bail, Result};
use tch::Tensor;

/// This process's part in the run: alone, or one rank of a group.
#[derive(Clone, Copy)]
pub struct Ranks {
    group: Option<&'static Group>,
}

impl Ranks {
    /// The process's group, if it is a rank.
    pub fn of_process() -> Ranks {
        Ranks { group: current() }
    }

    pub fn is_data_parallel(&self) -> bool {
        self.group.is_some()
    }

    /// Whether this process evaluates and writes the run's files (rank 0, or the only process).
    pub fn writes(&self) -> bool {
        self.group.is_none_or(|g| g.rank == 0)
    }

    /// Wait for every rank (rank 0 has prepared the run directory when it gets here).
    pub fn barrier(&self) -> Result<()> {
        match self.group {
            Some(g) => g.sum(&mut [0.0]),
            None => Ok(()),
        }
    }

    /// Every rank's stage tensors set to rank 0's.
    pub fn share_start(&self, stage: &dyn Stage) -> Result<()> {
        match self.group {
            Some(g) => g.broadcast_from_rank0(&stage.tensors().into_iter().map(|(_, t)| t).collect::<Vec<_>>()),
            None => Ok(()),
        }
    }

    /// This rank's images of the epoch's `order` and its per-step batch size.
    pub fn epoch_share(&self, order: Vec<usize>, batch_size: usize) -> (Vec<usize>, usize) {
        match self.group {
            Some(g) => (shard(&order, g.rank, g.world), batch_size / g.world),
            None => (order, batch_size),
        }
    }

    /// The running statistics rank 0 broadcasts before each step (per-rank BatchNorm only).
    pub fn step_buffers(&self, stage: &dyn Stage) -> Vec<Tensor> {
        match self.group {
            Some(g) if !g.syncs_batch_norm() => {
                stage.tensors().into_iter().filter(|(n, _)| n.contains("running_")).map(|(_, t)| t).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Before a step's forward pass: rank 0's running statistics to every rank.
    pub fn before_step(&self, buffers: &[Tensor]) -> Result<()> {
        match self.group {
            Some(g) if !buffers.is_empty() => g.broadcast_from_rank0(buffers),
            _ => Ok(()),
        }
    }

    /// After the backward pass: the global batch's gradients on every rank.
    pub fn after_backward(&self, opt: &Sgd) -> Result<()> {
        match self.group {
            Some(g) => g.allreduce_gradients(opt.params(), g.share()),
            None => Ok(()),
        }
    }

    /// An epoch's (loss sum, hits, images) added over ranks.
    pub fn epoch_sums(&self, sums: [f64; 3]) -> Result<[f64; 3]> {
        let mut sums = sums;
        if let Some(g) = self.group {
            g.sum(&mut sums)?;
        }
        Ok(sums)
    }

    /// Whether any rank is winding down (so all stop after the same epoch).
    pub fn any(&self, flag: bool) -> Result<bool> {
        match self.group {
            Some(g) => {
                let mut v = [f64::from(u8::from(flag))];
                g.sum(&mut v)?;
                Ok(v[0] > 0.0)
            }
            None => Ok(flag),
        }
    }
}

/// `DistributedSampler`'s deal: the order padded with its own first images to a multiple of
/// `world`, then every `world`-th image from `rank` on. Rank `r`'s `k`-th batch of
/// `batch_size / world` images is then the `r`-th strided share of the single-process run's
/// `k`-th batch (when nothing was padded), and every rank has as many images and steps.
pub fn shard(order: &[usize], rank: usize, world: usize) -> Vec<usize> {
    let padded = order.len().div_ceil(world) * world;
    (rank..padded).step_by(world).map(|i| order[i % order.len()]).collect()
}

/// A data-parallel run's settings must fit: the global batch splits evenly.
pub fn check(spec: &crate::training::spec::RunSpec) -> Result<()> {
    let dp = &spec.data_parallel;
    if dp.ranks == 0 {
        bail!("data_parallel.ranks must be at least 1");
    }
    let stages = [Some(&spec.stage1.optim), spec.stage2.as_ref().map(|s| &s.optim)];
    for (n, optim) in stages.iter().enumerate().filter_map(|(i, o)| o.map(|o| (i + 1, o))) {
        if optim.batch_size % dp.ranks != 0 {
            bail!(
                "stage{n}.batch_size = {} does not split over data_parallel.ranks = {}: each rank takes batch_size / ranks images per step (choose a multiple of {})",
                optim.batch_size,
                dp.ranks,
                dp.ranks
            );
        }
    }
    if dp.ranks > 1 && spec.model.bbn {
        bail!("model.bbn trains two samplers' batches per step and has no data-parallel form here; set data_parallel.ranks = 1");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_strided_padded_and_cover_the_order() {
        let order: Vec<usize> = (10..20).collect();
        assert_eq!(shard(&order, 0, 2), vec![10, 12, 14, 16, 18]);
        assert_eq!(shard(&order, 1, 2), vec![11, 13, 15, 17, 19]);
        // 10 images over 3 ranks: padded to 12 with the first two again.
        assert_eq!(shard(&order, 0, 3), vec![10, 13, 16, 19]);
        assert_eq!(shard(&order, 1, 3), vec![11, 14, 17, 10]);
        assert_eq!(shard(&order, 2, 3), vec![12, 15, 18, 11]);
        assert_eq!(shard(&order, 0, 1), order);
    }

    #[test]
    fn each_ranks_batch_is_its_share_of_the_single_process_batch() {
        let order: Vec<usize> = (0..24).rev().collect();
        let (world, batch) = (2, 8);
        for k in 0..3 {
            let global: Vec<usize> = order[k * batch..(k + 1) * batch].to_vec();
            for r in 0..world {
                let local: Vec<usize> = shard(&order, r, world)[k * batch / world..(k + 1) * batch / world].to_vec();
                let expected: Vec<usize> = global.iter().skip(r).step_by(world).copied().collect();
                assert_eq!(local, expected);
            }
        }
    }

    #[test]
    fn the_batch_must_split_over_the_ranks() {
        let mut spec = crate::training::spec::RunSpec::default();
        spec.data_parallel.ranks = 3;
        let e = check(&spec).unwrap_err().to_string();
        assert!(e.contains("stage1.batch_size = 64 does not split over data_parallel.ranks = 3"), "{e}");
        spec.data_parallel.ranks = 2;
        check(&spec).unwrap();
    }
}

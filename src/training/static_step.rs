//! The static-input training step: one stage-1 step whose inputs live in tensors allocated once
//! (the batch, its labels, mixup's permutation and lambda, the learning rate), with GCL's noise
//! drawn on the device, the SGD update as multi-tensor kernels and the epoch's loss and hits
//! summed on the device, so that nothing inside the step waits for the host. That makes the
//! step capturable: on CUDA ([`StepMode::Graph`]) it is captured once as a CUDA graph and
//! replayed (a ResNet-32 step at batch 64 is bound by kernel launches there; see
//! `shared/gpu/README.md`). On CPU nothing is captured and the same code runs eagerly, giving
//! the same bits as the eager step of `epoch.rs` (`tests/static_step.rs`).
//!
//! What stays outside the graph, per step: copying the batch into the static tensors, mixup's
//! lambda (drawn on the host from the epoch's `Stream::Mixup`, as the eager step does) written
//! into its 0-dim tensors, and mixup's permutation drawn into its static tensor. Batches of
//! another size (an epoch's last, partial one) run through the eager step.
use super::sgd::Sgd;
use super::step::EpochCtx;
use crate::device::cuda_graph::CudaGraph;
use crate::losses::Criterion;
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// How training steps run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StepMode {
    /// The eager step (`step::supervised_step`): the host reads the loss and hits every step.
    Eager,
    /// The static step: captured as a CUDA graph on CUDA, run without capture on CPU (same bits
    /// as `Eager` there).
    #[default]
    Graph,
}

/// What a stage hands the static step: its forward pass, its loss, mixup's alpha, and every
/// tensor a training step changes (weights, BatchNorm statistics), which a capture restores
/// after its warm-up steps.
pub struct StaticParts<'a> {
    pub forward: Box<dyn Fn(&Tensor) -> Tensor + 'a>,
    pub criterion: &'a Criterion,
    pub mixup_alpha: Option<f64>,
    pub state: Vec<Tensor>,
    /// Changes when the step's computation changes (deferred re-weighting switching on): a
    /// captured graph of another generation is captured again.
    pub generation: u64,
}

/// The static tensors of one step and the epoch's device-side sums.
pub struct StaticStep {
    device: Device,
    batch: i64,
    x: Tensor,
    y: Tensor,
    perm: Tensor,
    /// Mixup's weights as the forward pass uses them (the loss's kind: float32) ...
    lam: Tensor,
    one_minus_lam: Tensor,
    /// ... and in f64, for the hits (as the eager step weighs them on the host).
    lam_f64: Tensor,
    one_minus_lam_f64: Tensor,
    lr: Tensor,
    loss_sum: Tensor,
    hits_sum: Tensor,
    seen: usize,
    graph: Option<(u64, CudaGraph)>,
    /// A capture failed: the stage goes on with uncaptured static steps.
    capture_failed: bool,
}

impl StaticStep {
    /// Static tensors for batches shaped like `x` (`[B, C, H, W]`) on `device`.
    pub fn new(x: &Tensor, device: Device) -> StaticStep {
        let scalar = |kind| Tensor::zeros([], (kind, device));
        let batch = x.size()[0];
        let x_static = Tensor::zeros(x.size(), (x.kind(), device));
        // Keep the batch's memory order (channels-last on CPU: see `models::Network`).
        let x_static =
            if crate::models::is_channels_last(x) { crate::models::to_channels_last(&x_static) } else { x_static };
        StaticStep {
            device,
            batch,
            x: x_static,
            y: Tensor::zeros([batch], (Kind::Int64, device)),
            perm: Tensor::zeros([batch], (Kind::Int64, device)),
            lam: scalar(Kind::Float),
            one_minus_lam: scalar(Kind::Float),
            lam_f64: scalar(Kind::Double),
            one_minus_lam_f64: scalar(Kind::Double),
            lr: scalar(Kind::Float),
            loss_sum: scalar(Kind::Double),
            hits_sum: scalar(Kind::Double),
            seen: 0,
            graph: None,
            capture_failed: false,
        }
    }

    /// Whether a batch of this shape can go through the static tensors.
    pub fn fits(&self, x: &Tensor) -> bool {
        x.size() == self.x.size() && x.device() == self.device
    }

    /// One training step on `(x, y)` at learning rate `lr`: forward, loss, backward and update,
    /// with the loss and hits added to the device-side sums.
    pub fn run(
        &mut self,
        parts: &StaticParts,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        opt: &mut Sgd,
        ctx: &mut EpochCtx,
    ) -> Result<()> {
        // The host-side draws, in the eager step's order: lambda, then the permutation.
        let lam = parts.mixup_alpha.map(|alpha| crate::portable::beta(ctx.rng, alpha, alpha));
        tch::no_grad(|| {
            self.x.copy_(x);
            self.y.copy_(y);
            if let Some(lam) = lam {
                let _ = self.lam.fill_(lam);
                let _ = self.one_minus_lam.fill_(1.0 - lam);
                let _ = self.lam_f64.fill_(lam);
                let _ = self.one_minus_lam_f64.fill_(1.0 - lam);
                let _ = Tensor::randperm_out(&self.perm, self.batch);
            }
            let _ = self.lr.fill_(lr);
        });
        self.seen += self.batch as usize;
        STEPS_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let capture = self.device.is_cuda() && !self.capture_failed && opt.foreach_ready();
        if self.graph.as_ref().is_some_and(|(generation, _)| *generation != parts.generation) {
            self.graph = None;
        }
        match (&self.graph, capture) {
            (Some((_, graph)), _) => graph.replay(),
            (None, true) => {
                let Device::Cuda(index) = self.device else { unreachable!() };
                // Warm-up steps change the weights and a capture only records: keep the state
                // (weights, BatchNorm statistics, momentum, the epoch's sums so far), warm up and
                // capture, put the state back, then replay this batch's step.
                let mut state: Vec<Tensor> = parts.state.iter().map(|t| t.shallow_clone()).collect();
                state.extend(opt.buffers().into_iter().flatten());
                state.extend([self.loss_sum.shallow_clone(), self.hits_sum.shallow_clone()]);
                let saved: Vec<Tensor> = tch::no_grad(|| state.iter().map(|t| t.copy()).collect());
                let mut graph = CudaGraph::new(index)?;
                let captured = graph.capture(CAPTURE_WARMUP, || self.body(parts, opt));
                tch::no_grad(|| {
                    for (t, s) in state.iter_mut().zip(&saved) {
                        t.copy_(s);
                    }
                });
                match captured {
                    Ok(()) => {
                        graph.replay()?;
                        self.graph = Some((parts.generation, graph));
                        GRAPHS_CAPTURED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => {
                        // A run is worth more than its speed: go on uncaptured, and say so.
                        tracing::warn!(
                            "CUDA-graph capture failed ({e:#}); this stage continues with uncaptured static steps"
                        );
                        self.capture_failed = true;
                        self.body(parts, opt)
                    }
                }
            }
            (None, false) => self.body(parts, opt),
        }
    }

    /// The captured work: everything from the static inputs to the updated weights.
    fn body(&mut self, parts: &StaticParts, opt: &mut Sgd) -> Result<()> {
        let DeviceOutcome { loss, hits } = self.forward(parts);
        opt.zero_grad_foreach()?;
        loss.backward();
        opt.step_foreach(&self.lr)?;
        tch::no_grad(|| {
            let _ = self.loss_sum.g_add_(&(loss.to_kind(Kind::Double) * self.batch as f64));
            let _ = self.hits_sum.g_add_(&hits);
        });
        Ok(())
    }

    /// The loss and the (mixup-weighted) hits as device tensors, computed as the eager step
    /// computes them, operation for operation.
    fn forward(&self, parts: &StaticParts) -> DeviceOutcome {
        let count = |pred: &Tensor, y: &Tensor| pred.eq_tensor(y).sum(Kind::Int64).to_kind(Kind::Double);
        match parts.mixup_alpha {
            Some(_) => {
                let x = &self.x * &self.lam + self.x.index_select(0, &self.perm) * &self.one_minus_lam;
                let y_b = self.y.index_select(0, &self.perm);
                let out = (parts.forward)(&x);
                let loss = parts.criterion.blended_loss_weighted(&out, &self.y, &y_b, &self.lam, &self.one_minus_lam);
                let pred = parts.criterion.eval_logits(&out).argmax(1, false);
                let hits = count(&pred, &self.y) * &self.lam_f64 + count(&pred, &y_b) * &self.one_minus_lam_f64;
                DeviceOutcome { loss, hits }
            }
            None => {
                let out = (parts.forward)(&self.x);
                let loss = parts.criterion.loss(&out, &self.y, true);
                let pred = parts.criterion.eval_logits(&out).argmax(1, false);
                DeviceOutcome { loss, hits: count(&pred, &self.y) }
            }
        }
    }

    /// The images trained on and the device-side sums of `loss * batch` and hits since the last
    /// call (one host read each: call once per epoch), resetting them.
    pub fn take_sums(&mut self) -> (usize, f64, f64) {
        let sums = (self.seen, self.loss_sum.double_value(&[]), self.hits_sum.double_value(&[]));
        tch::no_grad(|| {
            let _ = self.loss_sum.zero_();
            let _ = self.hits_sum.zero_();
        });
        self.seen = 0;
        sums
    }

    /// The running sums without resetting them (a host read: CPU progress bars only).
    pub fn peek_sums(&self) -> (usize, f64, f64) {
        (self.seen, self.loss_sum.double_value(&[]), self.hits_sum.double_value(&[]))
    }
}

/// Static steps run in this process (tests check that the static path was taken).
pub static STEPS_RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// CUDA graphs captured in this process (`bench parity` reports it).
pub static GRAPHS_CAPTURED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Eager steps on the side stream before a capture (`torch.cuda.graph`'s advice: cuDNN and
/// cuBLAS allocate workspaces on first use). Their effect on the weights is undone before the
/// captured step is replayed; they only advance libtorch's generator.
pub const CAPTURE_WARMUP: usize = 2;

struct DeviceOutcome {
    loss: Tensor,
    hits: Tensor,
}

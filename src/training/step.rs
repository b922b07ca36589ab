//! One training step: the epoch it runs in ([`EpochCtx`]), what it gives the epoch loop
//! ([`StepOutcome`]), and the supervised step (plain or mixup) that stage 1 and stage 2 share.
//! A leaf of the loop: `epoch.rs` and the static step (`static_step.rs`) both build on it.
use crate::losses::Criterion;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// What a training step gives the loop: the loss to minimise and the (possibly fractional,
/// under mixup) number of correct predictions in the batch.
pub struct StepOutcome {
    pub loss: Tensor,
    pub hits: f64,
}

/// The epoch a step belongs to, its seed, and mixup's random generator
/// ([`Stream::Mixup`](super::Stream::Mixup)).
pub struct EpochCtx<'r> {
    pub epoch: usize,
    pub epochs: usize,
    pub seed: u64,
    pub rng: &'r mut ChaCha8Rng,
    pub device: Device,
}

/// A plain step, or mixup (`lam ~ Beta(alpha, alpha)` per batch, images mixed with a random
/// permutation of the batch, loss `lam L(y) + (1 - lam) L(y_perm)`), on a forward function.
/// Mixup draws `lam` from `ctx.rng`, then the permutation from libtorch's generator (an order
/// the numerics golden depends on), and hands them to [`mixup_step`].
pub fn supervised_step(
    criterion: &Criterion,
    mixup: Option<f64>,
    forward: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    y: &Tensor,
    ctx: &mut EpochCtx,
) -> StepOutcome {
    match mixup {
        Some(alpha) => {
            let lam = crate::portable::beta(ctx.rng, alpha, alpha);
            let perm = Tensor::randperm(y.size()[0], (Kind::Int64, ctx.device));
            mixup_step(criterion, forward, x, y, &MixupDraws { lam, perm: &perm, noise: None })
        }
        None => {
            let out = forward(x);
            let loss = criterion.loss(&out, y, true);
            let pred = criterion.eval_logits(&out).argmax(1, false);
            StepOutcome { loss, hits: count_eq(&pred, y) }
        }
    }
}

/// The random choices of one mixup step: drawn by [`supervised_step`], or recorded elsewhere.
pub struct MixupDraws<'a> {
    /// The weight of the batch as given (`1 - lam` goes to its permutation).
    pub lam: f64,
    /// int64 `[B]`: image `i` is mixed with image `perm[i]`, and also scored against its label.
    pub perm: &'a Tensor,
    /// GCL's samples for the two loss terms (`y`'s and `y[perm]`'s, each `[B, C]` before
    /// clamping); `None` draws them (training).
    pub noise: Option<(&'a Tensor, &'a Tensor)>,
}

/// The mixup step for given draws, as [`supervised_step`] takes it after drawing: the forward
/// pass on `lam x + (1 - lam) x[perm]`, the loss `lam L(y) + (1 - lam) L(y[perm])` and the hits
/// weighted alike. Public so that a recorded stream can be replayed through the same code
/// (tests/lockstep_torch.rs).
pub fn mixup_step(
    criterion: &Criterion,
    forward: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    y: &Tensor,
    draws: &MixupDraws,
) -> StepOutcome {
    let MixupDraws { lam, perm, noise } = *draws;
    let x = x * lam + x.index_select(0, perm) * (1.0 - lam);
    let y_b = y.index_select(0, perm);
    blended_outcome(criterion, &forward(&x), y, &y_b, lam, noise)
}

/// The loss and hits of `out` scored against two label sets blended with weight `w` (hits
/// weighted alike): mixup's step and BBN's cumulative learning. The static step computes the
/// same with `w` as device scalars (`static_step`, bit-identical on CPU: `tests/static_step.rs`).
pub fn blended_outcome(
    criterion: &Criterion,
    out: &Tensor,
    y_a: &Tensor,
    y_b: &Tensor,
    w: f64,
    noise: Option<(&Tensor, &Tensor)>,
) -> StepOutcome {
    let loss = criterion.blended_loss(out, y_a, y_b, w, noise);
    let pred = criterion.eval_logits(out).argmax(1, false);
    StepOutcome { loss, hits: w * count_eq(&pred, y_a) + (1.0 - w) * count_eq(&pred, y_b) }
}

pub fn count_eq(a: &Tensor, b: &Tensor) -> f64 {
    a.eq_tensor(b).sum(Kind::Int64).int64_value(&[]) as f64
}

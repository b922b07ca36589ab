//! BBN (Zhou et al. 2020): bilateral-branch network with cumulative learning.
//!
//! The backbone is shared up to its last residual block; the *conventional* branch keeps the
//! backbone's own last block (so pretrained weights and names stay torchvision's), and the
//! *re-balancing* branch is a twin of it stored as `rb_block.*` (initialised from the last
//! block's pretrained weights when `load_pretrained` is used). Each branch is average-pooled to
//! `D` features; the classifier sees `2 * [alpha * f_c, (1 - alpha) * f_r]` (`2D` features), as in
//! the released BBN code's `bbn_mix`.
//!
//! How the training engine uses it, per batch:
//! 1. draw `(x_c, y_c)` from the conventional (instance-balanced) sampler and `(x_r, y_r)` from
//!    the reversed sampler (class weight proportional to `n_max / n_j`);
//! 2. `alpha = cumulative_alpha(epoch, epochs)` (epoch counted from 0);
//! 3. `out = net.logits(&net.bbn_features(&x_c, &x_r, alpha, true))`;
//! 4. `loss = alpha * L(out, y_c) + (1 - alpha) * L(out, y_r)`, i.e.
//!    `criterion.blended_loss(&out, &y_c, &y_r, alpha, None)`.
//!
//! At evaluation `Network::features` feeds the same image to both branches with alpha = 1/2,
//! which gives the plain concatenation `[f_c, f_r]` (BBN's test-time inference).

/// BBN's parabolic decay `alpha = 1 - (epoch / epochs)^2`, epoch counted from 0 (the released
/// code's `1 - ((epoch - 1) / max_epoch)^2` with epochs counted from 1).
pub fn cumulative_alpha(epoch: usize, epochs: usize) -> f64 {
    let t = epoch as f64 / epochs.max(1) as f64;
    1.0 - t * t
}

/// The classifier's input: `2 * cat(alpha * f_c, (1 - alpha) * f_r)` along the feature axis.
pub fn mix_branches(f_conv: &tch::Tensor, f_rebal: &tch::Tensor, alpha: f64) -> tch::Tensor {
    tch::Tensor::cat(&[f_conv * (2.0 * alpha), f_rebal * (2.0 * (1.0 - alpha))], 1)
}

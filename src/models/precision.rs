//! `model.precision`: the numbers a network's forward pass computes in. `fp32` (the default and
//! the released recipe) everywhere; `bf16` is automatic mixed precision as `torch.autocast(dtype=
//! torch.bfloat16)` gives it, on CPU and CUDA: convolutions and matrix products take bf16 copies
//! of their fp32 inputs and weights (autocast's lower-precision list), the weights themselves,
//! their gradients, the momentum buffers and the BatchNorm parameters and running statistics stay
//! fp32, and what leaves the network (features, logits) is cast back to fp32, so the loss and
//! everything after it is fp32, as AMP does. bf16 needs no loss scaling (fp32's exponent range).
//!
//! A bf16 run's key names its precision; an fp32 run's key is what it was before this setting
//! existed (the field is left out of the key when it is `fp32`).
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Every operation in fp32 (the released recipe).
    #[default]
    Fp32,
    /// bf16 autocast: products and convolutions in bf16, the rest (and the loss) in fp32.
    Bf16,
}

impl Precision {
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// `f` (one forward pass) run at this precision on `device`: for `bf16` inside an autocast
    /// region, its output cast back to fp32.
    pub fn forward(self, device: Device, f: impl FnOnce() -> Tensor) -> Tensor {
        match self {
            Precision::Fp32 => f(),
            Precision::Bf16 => {
                let _region = Autocast::enter(device);
                f().to_kind(Kind::Float)
            }
        }
    }
}

extern "C" {
    fn gcl_autocast_enter(cuda: i32) -> i32;
    fn gcl_autocast_exit(cuda: i32, was: i32) -> i32;
}

/// An autocast region (bf16) on one device type, left when dropped.
struct Autocast {
    cuda: i32,
    was: i32,
}

impl Autocast {
    fn enter(device: Device) -> Autocast {
        let cuda = i32::from(device.is_cuda());
        // SAFETY: plain calls into libtorch's thread-local autocast state.
        let was = unsafe { gcl_autocast_enter(cuda) };
        assert!(was >= 0, "libtorch refused to enter a bf16 autocast region");
        Autocast { cuda, was }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: leaves the region `enter` opened, restoring the state it found.
        let rc = unsafe { gcl_autocast_exit(self.cuda, self.was) };
        debug_assert_eq!(rc, 0, "libtorch refused to leave a bf16 autocast region");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_runs_products_in_bf16_and_hands_back_fp32() {
        tch::manual_seed(0);
        let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
        let inner = std::cell::Cell::new(Kind::Float);
        let out = Precision::Bf16.forward(Device::Cpu, || {
            let p = a.matmul(&b);
            inner.set(p.kind());
            p
        });
        assert_eq!(inner.get(), Kind::BFloat16, "autocast runs matmul in bf16");
        assert_eq!(out.kind(), Kind::Float, "what leaves the region is fp32");
        // The product of the bf16-rounded inputs, to bf16's 8 bits of mantissa.
        let expected =
            a.to_kind(Kind::BFloat16).to_kind(Kind::Float).matmul(&b.to_kind(Kind::BFloat16).to_kind(Kind::Float));
        let err = (&out - &expected).abs().max().double_value(&[]);
        assert!(err < 0.05, "bf16 product off by {err}");
        assert!((&out - a.matmul(&b)).abs().max().double_value(&[]) > 0.0, "bf16 differs from fp32");
        // Outside the region everything is fp32 again.
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        assert_eq!(Precision::Fp32.forward(Device::Cpu, || a.matmul(&b)).kind(), Kind::Float);
    }

    #[test]
    fn gradients_of_fp32_weights_stay_fp32() {
        let w = Tensor::randn([16, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let x = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
        let out = Precision::Bf16.forward(Device::Cpu, || x.matmul(&w));
        out.sum(Kind::Float).backward();
        assert_eq!(w.grad().kind(), Kind::Float);
        assert!(w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}

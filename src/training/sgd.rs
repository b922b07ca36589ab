//! SGD with momentum and weight decay, with PyTorch's semantics, over an explicit list of
//! parameters. Written by hand (rather than tch's optimiser) so that its momentum buffers can
//! be saved in checkpoints for an exact resume, and so stage 2 can train any subset of tensors.
use tch::Tensor;

pub struct Sgd {
    params: Vec<Tensor>,
    /// Per-parameter learning-rate multipliers (PyTorch's parameter groups with their own lr).
    lr_scales: Vec<f64>,
    buffers: Vec<Option<Tensor>>,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Sgd {
    pub fn new(params: Vec<Tensor>, momentum: f64, weight_decay: f64) -> Sgd {
        let lr_scales = vec![1.0; params.len()];
        Sgd::with_lr_scales(params, lr_scales, momentum, weight_decay)
    }

    /// Parameter `i` steps with `lr * lr_scales[i]`.
    pub fn with_lr_scales(params: Vec<Tensor>, lr_scales: Vec<f64>, momentum: f64, weight_decay: f64) -> Sgd {
        assert_eq!(params.len(), lr_scales.len());
        let buffers = params.iter().map(|_| None).collect();
        Sgd { params, lr_scales, buffers, momentum, weight_decay, nesterov: false }
    }

    /// Nesterov momentum, as `torch.optim.SGD(nesterov=True)`: the step uses `d + momentum * buf`.
    pub fn nesterov(mut self, on: bool) -> Sgd {
        self.nesterov = on;
        self
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// `d = g + wd * p; buf = momentum * buf + d (buf = d at the first step); p -= lr * buf`
    /// (Nesterov: `p -= lr * (d + momentum * buf)`).
    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((p, buf), scale) in self.params.iter_mut().zip(self.buffers.iter_mut()).zip(&self.lr_scales) {
                let lr = lr * scale;
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let d = if self.weight_decay != 0.0 { &g + &*p * self.weight_decay } else { g.shallow_clone() };
                let b = match buf {
                    Some(b) => {
                        let _ = b.g_mul_scalar_(self.momentum).g_add_(&d);
                        b.shallow_clone()
                    }
                    None => {
                        let b = d.detach().copy();
                        *buf = Some(b.shallow_clone());
                        b
                    }
                };
                let update = if self.nesterov { &d + b * self.momentum } else { b };
                let _ = p.g_sub_(&(update * lr));
            }
        })
    }

    /// [`Sgd::step`] as libtorch's multi-tensor kernels (src/shim/step.cpp), with the learning
    /// rate read from a 0-dim tensor: what the static step (`static_step.rs`) runs, on
    /// CUDA inside a captured graph. Bit-identical to `step(lr)` on CPU. Falls back to `step`
    /// where the foreach form does not apply: before the first step (the buffers start as a copy
    /// of the first update), with Nesterov momentum, or with per-parameter learning rates.
    pub fn step_foreach(&mut self, lr: &Tensor) -> anyhow::Result<()> {
        if !self.foreach_ready() {
            let value = lr.double_value(&[]);
            self.step(value);
            return Ok(());
        }
        let params: Vec<*mut torch_sys::C_tensor> = self.params.iter().map(|p| p.as_ptr() as *mut _).collect();
        let bufs: Vec<*mut torch_sys::C_tensor> =
            self.buffers.iter().map(|b| b.as_ref().expect("checked by foreach_ready").as_ptr() as *mut _).collect();
        let mut err = [0 as std::ffi::c_char; 512];
        // SAFETY: every pointer is a live tch tensor handle (an `at::Tensor*`) owned by `self` or
        // `lr` for the duration of the call; the shim copies the handles it keeps.
        let rc = unsafe {
            shim::gcl_foreach_sgd(
                params.as_ptr(),
                bufs.as_ptr(),
                params.len() as i32,
                self.momentum,
                self.weight_decay,
                lr.as_ptr() as *const _,
                err.as_mut_ptr(),
                err.len() as i32,
            )
        };
        shim::check(rc, &err, "the foreach SGD step")
    }

    /// Whether [`Sgd::step_foreach`] can run the multi-tensor kernels (not its fallback).
    pub fn foreach_ready(&self) -> bool {
        !self.nesterov
            && self.lr_scales.iter().all(|&s| s == 1.0)
            && self.buffers.iter().all(|b| b.is_some())
            && self.params.iter().all(|p| p.grad().defined())
    }

    /// [`Sgd::zero_grad`] in one multi-tensor call (the gradients stay the same tensors, as a
    /// CUDA graph needs).
    pub fn zero_grad_foreach(&mut self) -> anyhow::Result<()> {
        let params: Vec<*mut torch_sys::C_tensor> = self.params.iter().map(|p| p.as_ptr() as *mut _).collect();
        let mut err = [0 as std::ffi::c_char; 512];
        // SAFETY: as in `step_foreach`.
        let rc = unsafe {
            shim::gcl_foreach_zero_grad(params.as_ptr(), params.len() as i32, err.as_mut_ptr(), err.len() as i32)
        };
        shim::check(rc, &err, "zeroing the gradients")
    }

    /// Momentum buffers for checkpoints (`None` before the first step).
    pub fn buffers(&self) -> Vec<Option<Tensor>> {
        self.buffers.iter().map(|b| b.as_ref().map(|t| t.shallow_clone())).collect()
    }

    /// Put back momentum buffers (resume), one per parameter, each of its parameter's shape.
    pub fn set_buffers(&mut self, buffers: Vec<Option<Tensor>>) -> anyhow::Result<()> {
        if buffers.len() != self.params.len() {
            anyhow::bail!("{} momentum buffers for {} parameters", buffers.len(), self.params.len());
        }
        for (i, (b, p)) in buffers.iter().zip(&self.params).enumerate() {
            if let Some(b) = b.as_ref().filter(|b| b.size() != p.size()) {
                anyhow::bail!("momentum buffer {i} has shape {:?}, its parameter {:?}", b.size(), p.size());
            }
        }
        self.buffers = buffers;
        Ok(())
    }

    /// The parameters it steps, in the order of the buffers.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }
}

/// The entry points of src/shim/step.cpp (compiled by build.rs into the binary).
mod shim {
    use std::ffi::c_char;
    use torch_sys::C_tensor;

    extern "C" {
        pub fn gcl_foreach_sgd(
            params: *const *mut C_tensor,
            bufs: *const *mut C_tensor,
            n: i32,
            momentum: f64,
            weight_decay: f64,
            lr: *const C_tensor,
            err: *mut c_char,
            errlen: i32,
        ) -> i32;
        pub fn gcl_foreach_zero_grad(params: *const *mut C_tensor, n: i32, err: *mut c_char, errlen: i32) -> i32;
    }

    /// 0 is success; otherwise the shim's message.
    pub fn check(rc: i32, err: &[c_char], what: &str) -> anyhow::Result<()> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: the shim always NUL-terminates `err` within its length.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
        anyhow::bail!("{what} failed in libtorch: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn matches_pytorch_sgd_by_hand() {
        // Two steps on f(p) = sum(p^2)/2 (grad = p), lr 0.1, momentum 0.9, wd 0.01.
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let mut opt = Sgd::new(vec![p.shallow_clone()], 0.9, 0.01);
        let mut expect = [1.0f64, -2.0];
        let mut buf = [0.0f64; 2];
        for step in 0..2 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Double).g_mul_scalar(0.5).backward();
            opt.step(0.1);
            for i in 0..2 {
                let d = expect[i] + 0.01 * expect[i];
                buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
                expect[i] -= 0.1 * buf[i];
            }
        }
        let got: Vec<f64> = Vec::try_from(p.detach().to_device(Device::Cpu)).unwrap();
        for i in 0..2 {
            assert!((got[i] - expect[i]).abs() < 1e-12, "{got:?} vs {expect:?}");
        }
    }

    #[test]
    fn nesterov_and_lr_scales_match_pytorch_by_hand() {
        // torch.optim.SGD(nesterov=True): buf = m buf + d; p -= lr (d + m buf); a group with lr x 0.5.
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let mut opt = Sgd::with_lr_scales(vec![p.shallow_clone()], vec![0.5], 0.9, 0.0).nesterov(true);
        let mut expect = [1.0f64, -2.0];
        let mut buf = [0.0f64; 2];
        for step in 0..3 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Double).g_mul_scalar(0.5).backward();
            opt.step(0.2);
            for i in 0..2 {
                let d = expect[i];
                buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
                expect[i] -= 0.1 * (d + 0.9 * buf[i]);
            }
        }
        let got: Vec<f64> = Vec::try_from(p.detach().to_device(Device::Cpu)).unwrap();
        for i in 0..2 {
            assert!((got[i] - expect[i]).abs() < 1e-12, "{got:?} vs {expect:?}");
        }
    }

    /// The foreach update (through the C++ shim) gives the same bits as the per-tensor one, over
    /// several parameters of different shapes, with weight decay, in float32.
    #[test]
    fn foreach_step_is_bit_identical_to_step() {
        tch::manual_seed(3);
        let shapes: [&[i64]; 3] = [&[4, 3, 3, 3], &[7], &[5, 2]];
        let make = || -> Vec<Tensor> { shapes.iter().map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu))).collect() };
        let init = make();
        let a: Vec<Tensor> = init.iter().map(|t| t.copy().set_requires_grad(true)).collect();
        let b: Vec<Tensor> = init.iter().map(|t| t.copy().set_requires_grad(true)).collect();
        let mut opt_a = Sgd::new(a.iter().map(|t| t.shallow_clone()).collect(), 0.9, 2e-4);
        let mut opt_b = Sgd::new(b.iter().map(|t| t.shallow_clone()).collect(), 0.9, 2e-4);
        let targets = make();
        let lr = Tensor::from(0.1f32);
        for step in 0..20 {
            let loss = |ps: &[Tensor]| -> Tensor {
                ps.iter()
                    .zip(&targets)
                    .map(|(p, t)| ((p - t) * (p - t)).sum(Kind::Float))
                    .fold(Tensor::from(0f32), |x, y| x + y)
            };
            opt_a.zero_grad();
            loss(&a).backward();
            opt_a.step(0.1);
            if step > 0 {
                opt_b.zero_grad_foreach().unwrap();
            } else {
                opt_b.zero_grad();
            }
            loss(&b).backward();
            assert_eq!(opt_b.foreach_ready(), step > 0, "step {step}");
            opt_b.step_foreach(&lr).unwrap();
        }
        for (x, y) in a.iter().zip(&b) {
            assert!(x.equal(y), "weights differ");
        }
    }
}

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

    /// Momentum buffers for checkpoints (`None` before the first step).
    pub fn buffers(&self) -> Vec<Option<Tensor>> {
        self.buffers.iter().map(|b| b.as_ref().map(|t| t.shallow_clone())).collect()
    }

    pub fn set_buffers(&mut self, buffers: Vec<Option<Tensor>>) {
        assert_eq!(buffers.len(), self.buffers.len(), "checkpoint has a different parameter count");
        self.buffers = buffers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Device};

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
}

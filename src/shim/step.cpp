// The optimiser update of the static training step (src/training/static_step.rs) as libtorch's
// multi-tensor ("foreach") kernels, which tch does not wrap. On CUDA each line below is a few
// kernel launches for all parameters together instead of one per parameter; on CPU ATen runs the
// same per-tensor kernels as `Sgd::step`, in the same order, so the result is bit-identical
// (tested by `static_step_matches_eager_step_bit_for_bit`).
//
// Arithmetic, as `Sgd::step` (PyTorch's SGD, dampening 0, no Nesterov):
//   d = g + wd * p   (written p * wd + g: IEEE addition commutes, so the bits are the same)
//   buf = momentum * buf + d
//   p = p - lr * buf (lr a 0-dim tensor, so a CUDA graph replays it with the value of the day)
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <cstring>
#include <exception>
#include <vector>

namespace {
void write_error(char* err, int len, const char* msg) {
  if (err == nullptr || len <= 0) return;
  std::strncpy(err, msg, static_cast<size_t>(len - 1));
  err[len - 1] = '\0';
}
}  // namespace

// `params[i]` and `bufs[i]` are tch's tensor handles (`at::Tensor*`); every parameter must
// have a gradient and a momentum buffer. Returns 0, or 1 with a message in `err`.
extern "C" int gcl_foreach_sgd(at::Tensor** params, at::Tensor** bufs, int n, double momentum,
                               double weight_decay, const at::Tensor* lr, char* err, int errlen) {
  try {
    c10::AutoGradMode no_grad(false);
    std::vector<at::Tensor> p, g, b;
    p.reserve(n);
    g.reserve(n);
    b.reserve(n);
    for (int i = 0; i < n; ++i) {
      const at::Tensor& grad = params[i]->grad();
      if (!grad.defined()) {
        write_error(err, errlen, "a parameter has no gradient");
        return 1;
      }
      p.push_back(*params[i]);
      g.push_back(grad);
      b.push_back(*bufs[i]);
    }
    std::vector<at::Tensor> d;
    if (weight_decay != 0.0) {
      d = at::_foreach_mul(p, weight_decay);
      at::_foreach_add_(d, g);
    } else {
      d = g;
    }
    at::_foreach_mul_(b, momentum);
    at::_foreach_add_(b, d);
    at::_foreach_sub_(p, at::_foreach_mul(b, *lr));
    return 0;
  } catch (const std::exception& e) {
    write_error(err, errlen, e.what());
    return 1;
  }
}

// Zero every parameter's gradient in place (PyTorch's `zero_grad(set_to_none=False)`, which a
// CUDA graph needs: the gradients must stay the same tensors from replay to replay).
extern "C" int gcl_foreach_zero_grad(at::Tensor** params, int n, char* err, int errlen) {
  try {
    std::vector<at::Tensor> g;
    for (int i = 0; i < n; ++i) {
      const at::Tensor& grad = params[i]->grad();
      if (grad.defined()) g.push_back(grad);
    }
    if (!g.empty()) at::_foreach_zero_(g);  // before the first backward there is nothing to zero
    return 0;
  } catch (const std::exception& e) {
    write_error(err, errlen, e.what());
    return 1;
  }
}

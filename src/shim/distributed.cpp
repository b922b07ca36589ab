// Data-parallel training through torch's own distributed engine (c10d): a Gloo process group
// over a TCP store (torch's env:// rendezvous: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), and
// the collectives one run needs (src/training/data_parallel.rs):
// - broadcast of the initial weights and of BatchNorm buffers from rank 0;
// - the gradients, bucketed and all-reduced as PyTorch's DistributedDataParallel does, each
//   rank's share weighted by its part of the global batch (1 / world for equal shares);
// - sums of doubles (an epoch's loss and hits);
// - synchronised BatchNorm (`SyncBatchNorm`'s arithmetic, which ATen keeps CUDA-only, written
//   with plain operations so it runs on CPU too) as a custom autograd function.
// Gloo's headers are not in the torch wheel: the few the c10d header includes are vendored in
// third_party/gloo (build.rs says from which commit); libtorch_cpu holds the code.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

void write_error(char* err, int len, const char* msg) {
  if (err == nullptr || len <= 0) return;
  std::strncpy(err, msg, static_cast<size_t>(len - 1));
  err[len - 1] = '\0';
}

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank;
  int world;
};

void wait(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

// In-place sum over ranks of `t` (any dtype Gloo reduces).
void allreduce_sum(Group& g, at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  wait(g.pg->allreduce(v));
}

// `tensors` packed into buckets of about `bucket_bytes` (one dtype each), `op` run on each
// bucket's flat copy, the results copied back.
template <typename Op>
void bucketed(std::vector<at::Tensor>& tensors, int64_t bucket_bytes, Op op) {
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> flat;
    size_t j = i;
    int64_t bytes = 0;
    while (j < tensors.size() && (j == i || (bytes < bucket_bytes &&
                                              tensors[j].scalar_type() == tensors[i].scalar_type()))) {
      flat.push_back(tensors[j].reshape({-1}));
      bytes += tensors[j].numel() * tensors[j].element_size();
      ++j;
    }
    at::Tensor bucket = at::cat(flat);
    op(bucket);
    int64_t offset = 0;
    for (size_t k = i; k < j; ++k) {
      int64_t n = tensors[k].numel();
      tensors[k].copy_(bucket.narrow(0, offset, n).view(tensors[k].sizes()));
      offset += n;
    }
    i = j;
  }
}

// Synchronised BatchNorm in training mode over [N, C, ...] inputs: the batch statistics of the
// union of every rank's batch. `share` is this rank's part of the global batch (n_r / N): the
// loss a rank differentiates is the mean over its own images, so its output gradients are
// 1 / share times the global loss's; the gradient sums are exchanged in the global loss's units
// and the input gradient handed back in the rank's, which keeps the result exact for unequal
// shares too (an epoch's last batch).
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var, double momentum,
                            double eps, double share, int64_t group) {
    Group& g = *reinterpret_cast<Group*>(group);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    double n = static_cast<double>(x.numel() / x.size(1));
    auto [var, mean] = at::var_mean(x, dims, /*correction=*/0, /*keepdim=*/false);
    // [n * mean, n * E[x^2], n] per channel, summed over ranks in double.
    at::Tensor mean64 = mean.to(at::kDouble);
    at::Tensor stats = at::stack({mean64 * n, (var.to(at::kDouble) + mean64 * mean64) * n,
                                  at::full_like(mean64, n)});
    allreduce_sum(g, stats);
    at::Tensor total = stats[2];
    at::Tensor gmean = stats[0] / total;
    at::Tensor gvar = stats[1] / total - gmean * gmean;
    {
      at::NoGradGuard no_grad;
      running_mean.mul_(1.0 - momentum).add_(gmean.to(running_mean.scalar_type()) * momentum);
      running_var.mul_(1.0 - momentum)
          .add_((gvar * total / (total - 1.0)).to(running_var.scalar_type()) * momentum);
    }
    at::Tensor invstd = (gvar + eps).rsqrt().to(x.scalar_type());
    std::vector<int64_t> shape(x.dim(), 1);
    shape[1] = x.size(1);
    at::Tensor xhat = (x - gmean.to(x.scalar_type()).view(shape)) * invstd.view(shape);
    ctx->save_for_backward({xhat, weight, invstd});
    ctx->saved_data["share"] = share;
    ctx->saved_data["group"] = group;
    return xhat * weight.view(shape) + bias.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor xhat = saved[0], weight = saved[1], invstd = saved[2];
    double share = ctx->saved_data["share"].toDouble();
    Group& g = *reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    at::Tensor dy = grads[0];
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < dy.dim(); ++d) dims.push_back(d);
    std::vector<int64_t> shape(dy.dim(), 1);
    shape[1] = dy.size(1);
    at::Tensor sum_dy = dy.sum(dims);
    at::Tensor sum_dy_xhat = (dy * xhat).sum(dims);
    double n = static_cast<double>(dy.numel() / dy.size(1));
    // Global sums in the global loss's units, and the global count.
    at::Tensor sums = at::stack({sum_dy.to(at::kDouble) * share, sum_dy_xhat.to(at::kDouble) * share,
                                 at::full_like(sum_dy, n, at::kDouble)});
    allreduce_sum(g, sums);
    at::Tensor mean_dy = (sums[0] / sums[2] / share).to(dy.scalar_type()).view(shape);
    at::Tensor mean_dy_xhat = (sums[1] / sums[2] / share).to(dy.scalar_type()).view(shape);
    at::Tensor dx = (dy - mean_dy - xhat * mean_dy_xhat) * (weight * invstd).view(shape);
    // The scale's and shift's gradients stay this rank's own: the gradient all-reduce sums them.
    return {dx, sum_dy_xhat, sum_dy, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

// Join the process group of `world` ranks as `rank`, meeting at `host:port` (rank 0 serves the
// store there). Waits up to `join_timeout_s` for every rank to join; each collective waits up to
// `timeout_s` for the others. Returns the group, or null with a message in `err`.
extern "C" void* gcl_dist_new(const char* host, int port, int rank, int world, int join_timeout_s, int timeout_s,
                              char* err, int errlen) {
  try {
    auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s) * 1000);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = world;
    so.timeout = std::chrono::milliseconds(static_cast<int64_t>(join_timeout_s) * 1000);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    std::string h(host);
    if (iface != nullptr && *iface != '\0') {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (h == "127.0.0.1" || h == "localhost") {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    return new Group{store, pg, rank, world};
  } catch (const std::exception& e) {
    write_error(err, errlen, e.what());
    return nullptr;
  }
}

extern "C" void gcl_dist_free(void* group) { delete reinterpret_cast<Group*>(group); }

// Every rank's `tensors` (in place) set to rank `root`'s.
extern "C" int gcl_dist_broadcast(void* group, at::Tensor** tensors, int n, int root, char* err, int errlen) {
  try {
    Group& g = *reinterpret_cast<Group*>(group);
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> ts;
    for (int i = 0; i < n; ++i) ts.push_back(*tensors[i]);
    bucketed(ts, 25 << 20, [&](at::Tensor& bucket) {
      std::vector<at::Tensor> v{bucket};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      wait(g.pg->broadcast(v, o));
    });
    return 0;
  } catch (const std::exception& e) {
    write_error(err, errlen, e.what());
    return 1;
  }
}

// The gradients of `params` (each must have one) replaced by the sum over ranks of
// `share * gradient`, in buckets of `bucket_bytes` (DistributedDataParallel's 25 MiB default).
extern "C" int gcl_dist_allreduce_grads(void* group, at::Tensor** params, int n, double share,
                                        int64_t bucket_bytes, char* err, int errlen) {
  try {
    Group& g = *reinterpret_cast<Group*>(group);
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> grads;
    for (int i = 0; i < n; ++i) {
      const at::Tensor& grad = params[i]->grad();
      if (!grad.defined()) {
        write_error(err, errlen, "a parameter has no gradient");
        return 1;
      }
      grads.push_back(grad);
    }
    bucketed(grads, bucket_bytes, [&](at::Tensor& bucket) {
      bucket.mul_(share);
      allreduce_sum(g, bucket);
    });
    return 0;
  } catch (const std::exception& e) {
    write_error(err, errlen, e.what());
    return 1;
  }
}

// `values[0..n]` replaced by their sums over ranks.
extern "C" int gcl_dist_sum(void* group, double* values, int n, char* err, int errlen) {
  try {
    Group& g = *reinterpret_cast<Group*>(group);
    at::Tensor t = at::from_blob(values, {n}, at::kDouble).clone();
    allreduce_sum(g, t);
    std::memcpy(values, t.data_ptr<double>(), sizeof(double) * static_cast<size_t>(n));
    return 0;
  } catch (const std::exception& e) {
    write_error(err, errlen, e.what());
    return 1;
  }
}

// Synchronised BatchNorm of `x` in training mode (running statistics updated in place); the
// result goes to `*out` (a new tensor handle for tch), with gradients to x, weight and bias.
extern "C" int gcl_dist_sync_batch_norm(void* group, const at::Tensor* x, const at::Tensor* weight,
                                        const at::Tensor* bias, at::Tensor* running_mean, at::Tensor* running_var,
                                        double momentum, double eps, double share, at::Tensor** out, char* err,
                                        int errlen) {
  try {
    at::Tensor y = SyncBatchNorm::apply(*x, *weight, *bias, *running_mean, *running_var, momentum, eps, share,
                                        reinterpret_cast<int64_t>(group));
    *out = new at::Tensor(y);
    return 0;
  } catch (const std::exception& e) {
    write_error(err, errlen, e.what());
    return 1;
  }
}

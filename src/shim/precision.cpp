// bf16 autocast (`precision = "bf16"`): the switch tch does not expose for a chosen device and
// dtype (tch's `autocast` turns on CUDA's fp16 only). Inside a region, matrix products and
// convolutions run in bf16 on fp32 weights (autocast casts them, keeping their gradients fp32);
// the caller casts what leaves the region back to fp32, so the loss is computed in fp32.
// The cast cache is off: a region is one forward pass, and a cached cast would be captured
// into a CUDA graph as a stale tensor.
#include <ATen/autocast_mode.h>

namespace {
c10::DeviceType device_type(int cuda) { return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
}  // namespace

// Enter a bf16 region on the CPU (`cuda` = 0) or CUDA (1); returns whether autocast was on
// before (to give back to `gcl_autocast_exit`), or -1 if libtorch threw.
extern "C" int gcl_autocast_enter(int cuda) {
  try {
    auto t = device_type(cuda);
    bool was = at::autocast::is_autocast_enabled(t);
    at::autocast::set_autocast_dtype(t, at::kBFloat16);
    at::autocast::set_autocast_cache_enabled(false);
    at::autocast::set_autocast_enabled(t, true);
    at::autocast::increment_nesting();
    return was ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Leave the region entered by `gcl_autocast_enter`, restoring its state `was`.
extern "C" int gcl_autocast_exit(int cuda, int was) {
  try {
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device_type(cuda), was == 1);
    return 0;
  } catch (...) {
    return -1;
  }
}

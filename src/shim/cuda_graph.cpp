// CUDA-graph capture and replay of the static training step, through libtorch's own
// `at::cuda::CUDAGraph` (the class `torch.cuda.CUDAGraph` wraps), which tch does not expose.
//
// Built by build.rs into a small shared library that links libtorch_cuda, embedded in the
// binary and dlopen'd only when a run trains on CUDA (src/device/cuda_graph.rs), so that the
// binary itself keeps no dependency on the CUDA libraries and starts on CPU-only hosts.
//
// The protocol mirrors `torch.cuda.graph`: warm-up and capture on a side stream that first
// waits for the current stream's work; after capture the current stream waits for the side
// stream. Replays run on the current stream. Every function returns 0, or 1 with a message.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <cstring>
#include <exception>
#include <optional>

namespace {
void write_error(char* err, int len, const char* msg) {
  if (err == nullptr || len <= 0) return;
  std::strncpy(err, msg, static_cast<size_t>(len - 1));
  err[len - 1] = '\0';
}

struct Graph {
  c10::DeviceIndex device;
  at::cuda::CUDAGraph graph;
  std::optional<c10::cuda::CUDAStream> outer;
  std::optional<c10::cuda::CUDAStream> side;
  explicit Graph(int d) : device(static_cast<c10::DeviceIndex>(d)) {}
};

// `to` waits for the work queued on `from` so far.
void wait_for(const c10::cuda::CUDAStream& to, const c10::cuda::CUDAStream& from) {
  cudaEvent_t ev;
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventRecord(ev, from.stream()));
  C10_CUDA_CHECK(cudaStreamWaitEvent(to.stream(), ev, 0));
  C10_CUDA_CHECK(cudaEventDestroy(ev));
}
}  // namespace

#define GCL_TRY(...)                   \
  try {                                \
    __VA_ARGS__;                       \
    return 0;                          \
  } catch (const std::exception& e) {  \
    write_error(err, errlen, e.what()); \
    return 1;                          \
  }

extern "C" int gcl_cuda_device_count(int* count, char* err, int errlen) {
  GCL_TRY(*count = static_cast<int>(c10::cuda::device_count()))
}

extern "C" int gcl_graph_new(int device, void** out, char* err, int errlen) {
  GCL_TRY(*out = new Graph(device))
}

extern "C" void gcl_graph_free(void* g) { delete static_cast<Graph*>(g); }

// Make a side stream current (it first waits for the current stream): warm-up steps and the
// capture run there.
extern "C" int gcl_graph_enter_side_stream(void* gp, char* err, int errlen) {
  GCL_TRY({
    auto* g = static_cast<Graph*>(gp);
    g->outer = c10::cuda::getCurrentCUDAStream(g->device);
    g->side = c10::cuda::getStreamFromPool(false, g->device);
    wait_for(*g->side, *g->outer);
    c10::cuda::setCurrentCUDAStream(*g->side);
  })
}

extern "C" int gcl_graph_capture_begin(void* gp, char* err, int errlen) {
  GCL_TRY({
    auto* g = static_cast<Graph*>(gp);
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
    g->graph.capture_begin();
  })
}

extern "C" int gcl_graph_capture_end(void* gp, char* err, int errlen) {
  GCL_TRY(static_cast<Graph*>(gp)->graph.capture_end())
}

// Back to the stream that was current before `enter_side_stream`, which waits for the side one.
extern "C" int gcl_graph_leave_side_stream(void* gp, char* err, int errlen) {
  GCL_TRY({
    auto* g = static_cast<Graph*>(gp);
    if (g->outer && g->side) {
      wait_for(*g->outer, *g->side);
      c10::cuda::setCurrentCUDAStream(*g->outer);
    }
  })
}

extern "C" int gcl_graph_replay(void* gp, char* err, int errlen) {
  GCL_TRY(static_cast<Graph*>(gp)->graph.replay())
}

// Free and total memory of `device` in bytes (cudaMemGetInfo).
extern "C" int gcl_cuda_mem_info(int device, unsigned long long* free_b, unsigned long long* total_b, char* err, int errlen) {
  GCL_TRY({
    int prev = 0;
    cudaGetDevice(&prev);
    cudaSetDevice(device);
    size_t f = 0, t = 0;
    cudaError_t rc = cudaMemGetInfo(&f, &t);
    cudaSetDevice(prev);
    if (rc != cudaSuccess) throw std::runtime_error(cudaGetErrorString(rc));
    *free_b = f;
    *total_b = t;
  })
}

// Cap this process's caching allocator on `device` at `fraction` of the device's memory (several
// runs sharing one GPU, `run --jobs N`): an allocation beyond it fails with an out-of-memory
// error in this process instead of starving the others.
extern "C" int gcl_cuda_set_memory_fraction(int device, double fraction, char* err, int errlen) {
  GCL_TRY(c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, static_cast<c10::DeviceIndex>(device)))
}

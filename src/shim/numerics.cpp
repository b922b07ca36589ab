// The one thing tch does not expose that the numerics pin needs: which CPU kernels libtorch's
// dispatcher actually chose (`at::get_cpu_capability()`, e.g. "AVX2"), so a pinned run can
// check that its setting took effect instead of assuming it. Declared here rather than by
// including <ATen/Version.h> (which pulls in all of ATen's context headers): the function is
// exported by libtorch_cpu with the C++11 string ABI, which this declaration reproduces.
#include <cstring>
#include <string>

namespace at {
std::string get_cpu_capability();
}

// Writes the capability name (NUL-terminated, truncated to `len - 1` bytes) into `buf`;
// returns its full length, or -1 if libtorch threw.
extern "C" int gcl_cpu_capability(char* buf, int len) {
  try {
    std::string s = at::get_cpu_capability();
    std::strncpy(buf, s.c_str(), static_cast<size_t>(len - 1));
    buf[len - 1] = '\0';
    return static_cast<int>(s.size());
  } catch (...) {
    return -1;
  }
}

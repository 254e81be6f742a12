#pragma once
// Where LibTorch 1.13 (Debian 12) and 2.x (Debian 13) differ in API: the one
// place that knows. Everything else in stitch is written once for both.

#include <torch/optim/optimizer.h>
#include <torch/version.h>

#include <memory>
#include <string>

namespace stitch::torch_compat {

/// torch::optim::Optimizer::state(), keyed by the parameter's TensorImpl:
/// as a string of its address on 1.13, as the address itself on 2.x.
using OptimizerStateMap = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>;

inline auto optimizer_state_key(const at::Tensor& parameter) {
#if TORCH_VERSION_MAJOR >= 2
  return static_cast<void*>(parameter.unsafeGetTensorImpl());
#else
  return c10::guts::to_string(parameter.unsafeGetTensorImpl());
#endif
}

/// c10d::TCPStoreOptions: 2.x defaults to the libuv store, which Debian's
/// LibTorch 2.6 is built without ("use_libuv was requested but PyTorch was
/// build without libuv support"); the classic store is 1.13's only one.
template <typename StoreOptions>
void use_classic_tcp_store(StoreOptions& options) {
#if TORCH_VERSION_MAJOR >= 2
  options.useLibUV = false;
#else
  (void)options;
#endif
}

}  // namespace stitch::torch_compat

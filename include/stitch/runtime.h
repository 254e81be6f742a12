#pragma once
// Process-wide runtime settings.

namespace stitch {

/// Sets LibTorch's intra-op thread count. LibTorch starts with one thread;
/// 0 means: the STITCH_THREADS environment variable if set, else every core
/// this process may use. Returns the count set.
int set_threads(int threads = 0);

}  // namespace stitch

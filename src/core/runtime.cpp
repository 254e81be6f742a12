#include "stitch/runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <cstdlib>
#include <string>
#include <thread>

namespace stitch {

namespace {
int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}
}  // namespace

int set_threads(int threads) {
  if (threads <= 0) {
    const char* env = std::getenv("STITCH_THREADS");
    threads = env ? std::atoi(env) : 0;
  }
  if (threads <= 0) threads = usable_cores();
  at::set_num_threads(threads);
  return threads;
}

}  // namespace stitch

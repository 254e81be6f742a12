#include "stitch/runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <algorithm>
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

int terminal_columns(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  const char* env = std::getenv("COLUMNS");
  const int columns = env ? std::atoi(env) : 0;
  return columns > 0 ? columns : 80;
}

std::string fit_to_columns(const std::string& line, int columns) {
  const size_t room = static_cast<size_t>(std::max(columns - 1, 4));
  if (line.size() <= room) return line;
  return line.substr(0, room - 3) + "...";
}

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

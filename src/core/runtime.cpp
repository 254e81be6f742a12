#include "stitch/runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
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

/// A setting that the environment gives until the program sets it.
template <typename T>
class Setting {
 public:
  explicit Setting(T (*from_environment)()) : from_environment_(from_environment) {}
  void set(T value) {
    value_.store(value);
    set_.store(true);
  }
  T get() const { return set_.load() ? value_.load() : from_environment_(); }

 private:
  T (*from_environment_)();
  std::atomic<T> value_{};
  std::atomic<bool> set_{false};
};

Setting<bool>& file_operators_setting() {
  static Setting<bool> setting([] {
    const char* env = std::getenv("STITCH_ALLOW_FILE_OPS");
    return env != nullptr && std::strcmp(env, "1") == 0;
  });
  return setting;
}

Setting<double>& probe_seconds_setting() {
  static Setting<double> setting([] {
    const char* env = std::getenv("STITCH_PROBE_SECONDS");
    if (env == nullptr || *env == '\0') return 120.0;
    char* end = nullptr;
    const double seconds = std::strtod(env, &end);
    return end != nullptr && *end == '\0' && seconds >= 0 ? seconds : 120.0;
  });
  return setting;
}

}  // namespace

void allow_file_operators(bool allowed) {
  file_operators_setting().set(allowed);
}
bool file_operators_allowed() {
  return file_operators_setting().get();
}

void set_probe_seconds(double seconds) {
  probe_seconds_setting().set(std::max(0.0, seconds));
}
double probe_seconds() {
  return probe_seconds_setting().get();
}

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

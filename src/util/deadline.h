#pragma once
// A time limit on work that cannot be interrupted: a model's forward, or its
// code run by torch::jit::load, may never return, and LibTorch offers no way
// to stop it. Past the limit the process prints `error: MESSAGE` and exits 1.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace stitch::detail {

class Deadline {
 public:
  /// Starts the clock: `seconds` <= 0 means no limit. `message` is called
  /// only when the time is up, on the watcher thread.
  Deadline(double seconds, std::function<std::string()> message);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;
  std::thread watcher_;
};

}  // namespace stitch::detail

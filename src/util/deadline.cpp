#include "util/deadline.h"

#include <unistd.h>

#include <chrono>

namespace stitch::detail {

Deadline::Deadline(double seconds, std::function<std::string()> message) {
  if (seconds <= 0) return;
  watcher_ = std::thread([this, seconds, message = std::move(message)] {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto limit = std::chrono::duration<double>(seconds);
    if (done_changed_.wait_for(lock, limit, [this] { return done_; })) return;
    // The work is stuck in code that cannot be stopped: end the process
    // without running destructors that would wait for it.
    const std::string line = "error: " + message() + "\n";
    for (size_t written = 0; written < line.size();) {
      const ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    ::_exit(1);
  });
}

Deadline::~Deadline() {
  if (!watcher_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  done_changed_.notify_one();
  watcher_.join();
}

}  // namespace stitch::detail

// Progress of a training run: a redrawn bar on a terminal, plain lines in
// logs and pipes.

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "stitch/runtime.h"
#include "train/train_internal.h"

namespace stitch::train_detail {

namespace {

std::string clock_str(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

}  // namespace

Progress::Progress(bool enabled, std::function<void(const std::string&)> log)
    : enabled_(enabled), tty_(::isatty(STDERR_FILENO) != 0), log_(std::move(log)) {}

void Progress::start_epoch(int64_t epoch, int64_t epochs, int64_t steps_in_epoch,
                           int64_t first_step) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps_in_epoch;
  done_ = first_step;
  samples_ = 0;
  started_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::step(int64_t step_in_epoch, double loss, int64_t samples) {
  if (!enabled_ || !tty_) return;  // plain output: one line per epoch
  samples_ += samples;
  const auto now = std::chrono::steady_clock::now();
  const bool last = step_in_epoch + 1 == steps_;
  if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const int64_t done_here = step_in_epoch + 1 - done_;
  const double rate = elapsed > 0 ? samples_ / elapsed : 0.0;
  const double per_step = done_here > 0 ? elapsed / done_here : 0.0;
  const double eta = per_step * ((steps_ - step_in_epoch - 1) + steps_ * (epochs_ - epoch_ - 1));
  // The bar takes what the terminal has left, 8 to 24 columns; a line that
  // is still too long loses its speed, then its end.
  const std::string head = fmt::format("epoch {}/{} ", epoch_ + 1, epochs_);
  std::string tail = fmt::format(" step {}/{} loss {:.4f} {:.0f} samples/s ETA {}",
                                 step_in_epoch + 1, steps_, loss, rate, clock_str(eta));
  const int columns = terminal_columns(STDERR_FILENO);
  if (int(head.size() + tail.size()) + 2 + 8 >= columns) {
    tail = fmt::format(" step {}/{} loss {:.4f} ETA {}", step_in_epoch + 1, steps_, loss,
                       clock_str(eta));
  }
  const int width = std::clamp(columns - 1 - int(head.size() + tail.size()) - 2, 8, 24);
  const int filled = steps_ > 0 ? static_cast<int>(width * (step_in_epoch + 1) / steps_) : 0;
  const std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  const std::string line = fit_to_columns(head + "[" + bar + "]" + tail, columns);
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
}

void Progress::end_epoch(const std::string& summary) {
  if (!enabled_) return;
  if (tty_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  log_(summary);
}

}  // namespace stitch::train_detail

#include "progress_line.h"

#include <stitch/runtime.h>
#include <unistd.h>

#include <cstdio>

namespace stitch::cli {

ProgressLine::ProgressLine() : tty_(::isatty(STDERR_FILENO) != 0) {}

ProgressLine::~ProgressLine() {
  if (drawn_) std::fputs("\r\033[K", stderr);
}

void ProgressLine::show(const std::string& text, bool milestone) {
  if (tty_) {
    const std::string line = fit_to_columns(text, terminal_columns(STDERR_FILENO));
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
    drawn_ = true;
  } else if (milestone) {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

}  // namespace stitch::cli

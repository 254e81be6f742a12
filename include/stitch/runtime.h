#pragma once
// Process-wide runtime settings.

#include <string>

namespace stitch {

/// Sets LibTorch's intra-op thread count. LibTorch starts with one thread;
/// 0 means: the STITCH_THREADS environment variable if set, else every core
/// this process may use. Returns the count set.
int set_threads(int threads = 0);

/// The columns of the terminal on file descriptor `fd` (its window size),
/// else $COLUMNS, else 80: the width progress lines keep to.
int terminal_columns(int fd);

/// `line` cut to fit in `columns - 1` columns (a line that fills the last
/// column wraps on some terminals), ending in "..." when cut.
std::string fit_to_columns(const std::string& line, int columns);

}  // namespace stitch

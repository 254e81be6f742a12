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

/// Whether models may call TorchScript's file operators (torch.from_file,
/// torch.save, torchvision's read_file/write_file/write_png/write_jpeg).
/// stitch refuses such a model before LibTorch reads it, because a model is
/// code that runs as it loads and as it is probed. Off unless allowed here or
/// by the environment variable STITCH_ALLOW_FILE_OPS=1.
void allow_file_operators(bool allowed);
bool file_operators_allowed();

/// How long one run of a model stitch makes on its own (a check's probe run,
/// inspect's example run, loading a file) may take, in seconds; past it the
/// process ends with an `error:` line naming the model (a forward that never
/// returns cannot be stopped any other way). Default: the environment
/// variable STITCH_PROBE_SECONDS, else 120; 0 means no limit.
void set_probe_seconds(double seconds);
double probe_seconds();

}  // namespace stitch

#pragma once
// Progress of long work on stderr (bench's rounds, run's batches): one line
// redrawn in place on a terminal, plain lines otherwise.

#include <string>

namespace stitch::cli {

/// Clears its line when destroyed, so that what follows (a table, an error
/// message) starts on a line of its own.
class ProgressLine {
 public:
  ProgressLine();
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  /// On a terminal, `text` replaces the line; otherwise it is printed as a
  /// line of its own when `milestone` (a round done, every tenth batch).
  void show(const std::string& text, bool milestone);

 private:
  bool tty_;
  bool drawn_ = false;
};

}  // namespace stitch::cli

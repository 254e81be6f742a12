#pragma once
// The Python side of stitch::bench: one Python process running
// kWorkerScript, answering JSON lines over a socket pair (a pipe both ways
// that never raises SIGPIPE in stitch when the worker dies).

#include <sys/types.h>
#include <torch/script.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace stitch::bench_detail {

extern const char* const kWorkerScript;

/// The timed runs of one request, as the worker measured them.
struct WorkerTimes {
  std::vector<double> times_ms;
  std::optional<int64_t> peak_bytes;
  bool peak_since_start = false;
};

class PythonWorker {
 public:
  /// Starts `interpreter` and has it load `model` with `threads` intra-op
  /// threads and random inputs shaped like `inputs`; with `eager`, it also
  /// prepares the forward as Python code. Throws Error when the interpreter
  /// is missing, has no torch, or cannot load the model.
  PythonWorker(const std::filesystem::path& interpreter, const std::filesystem::path& model,
               int threads, const std::vector<torch::Tensor>& inputs, bool eager);
  /// Closes the socket (the worker exits at end of input) and reaps it.
  ~PythonWorker();
  PythonWorker(const PythonWorker&) = delete;
  PythonWorker& operator=(const PythonWorker&) = delete;

  const std::string& torch_version() const { return torch_version_; }
  bool has_eager() const { return has_eager_; }
  const std::string& eager_note() const { return eager_note_; }

  /// `side` is "python" or "eager".
  void warmup(const std::string& side, int64_t runs);
  WorkerTimes time(const std::string& side, int64_t runs);

 private:
  /// Sends one request, returns the reply; Error on {"error": ...} or
  /// when the worker is gone.
  nlohmann::json request(const nlohmann::json& message);
  std::string read_line();
  /// Closes the socket and reaps the worker; returns its wait status.
  int stop();
  [[noreturn]] void worker_gone();

  std::filesystem::path interpreter_;
  int socket_ = -1;
  pid_t pid_ = -1;
  std::string buffer_;
  std::string torch_version_;
  bool has_eager_ = false;
  std::string eager_note_;
};

}  // namespace stitch::bench_detail

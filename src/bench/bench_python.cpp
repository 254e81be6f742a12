#include "bench/bench_python.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "stitch/error.h"
#include "stitch/shape.h"

extern char** environ;

namespace stitch::bench_detail {

namespace {

/// The fix line for a Python that is missing or has no torch.
constexpr const char* kPythonFix =
    "  fix: install PyTorch (Debian: apt-get install python3-torch), or set STITCH_PYTHON "
    "to a Python that has it";

}  // namespace

PythonWorker::PythonWorker(const std::filesystem::path& interpreter,
                           const std::filesystem::path& model, int threads,
                           const std::vector<torch::Tensor>& inputs, bool eager)
    : interpreter_(interpreter) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    throw Error(fmt::format("comparing with Python: socketpair: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, ends[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, ends[1], STDOUT_FILENO);
  // The worker reports every failure as a reply; Python's own warnings are
  // not stitch's output.
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::string program = interpreter.string();
  std::vector<char*> argv = {program.data(), const_cast<char*>("-c"),
                             const_cast<char*>(kWorkerScript), nullptr};
  // posix_spawnp: a bare name (STITCH_PYTHON=python3) is looked up in PATH.
  const int spawned =
      ::posix_spawnp(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(ends[1]);
  socket_ = ends[0];
  if (spawned != 0) {
    pid_ = -1;
    stop();
    throw Error(fmt::format("comparing with Python: cannot run {}: {}\n{}", program,
                            std::strerror(spawned), kPythonFix));
  }

  nlohmann::json shapes = nlohmann::json::array();
  for (const auto& t : inputs) {
    nlohmann::json shape = {{"shape", t.sizes().vec()}, {"dtype", dtype_str(t.scalar_type())}};
    // An integer input of one value (a lengths input, a probe: value) is
    // sent as that value: random ids 0-1 would not do for it.
    if (!at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kBool && t.numel() > 0 &&
        t.min().item<int64_t>() == t.max().item<int64_t>()) {
      shape["fill"] = t.reshape(-1)[0].item<int64_t>();
    }
    shapes.push_back(std::move(shape));
  }
  nlohmann::json reply;
  try {
    reply = request({{"cmd", "load"},
                     {"model", model.string()},
                     {"threads", threads},
                     {"seed", 0},
                     {"eager", eager},
                     {"inputs", shapes}});
  } catch (const Error& e) {
    stop();  // the destructor does not run when the constructor throws
    const std::string what = e.what();
    if (what.find("No module named 'torch'") != std::string::npos) {
      throw Error(
          fmt::format("comparing with Python: {} cannot import torch\n{}", program, kPythonFix));
    }
    throw;
  }
  torch_version_ = reply.value("torch", "");
  has_eager_ = reply.value("eager", false);
  eager_note_ = reply.value("eager_note", "");
}

PythonWorker::~PythonWorker() {
  stop();
}

int PythonWorker::stop() {
  if (socket_ >= 0) ::close(socket_);
  socket_ = -1;
  int status = 0;
  if (pid_ > 0) {
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  return status;
}

void PythonWorker::warmup(const std::string& side, int64_t runs) {
  request({{"cmd", "warmup"}, {"side", side}, {"runs", runs}});
}

WorkerTimes PythonWorker::time(const std::string& side, int64_t runs) {
  nlohmann::json reply = request({{"cmd", "time"}, {"side", side}, {"runs", runs}});
  WorkerTimes out;
  out.times_ms = reply.at("times_ms").get<std::vector<double>>();
  if (reply.contains("peak_bytes")) out.peak_bytes = reply["peak_bytes"].get<int64_t>();
  out.peak_since_start = reply.value("peak_since_start", false);
  return out;
}

nlohmann::json PythonWorker::request(const nlohmann::json& message) {
  const std::string line = message.dump() + "\n";
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = ::send(socket_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) worker_gone();
    sent += static_cast<size_t>(n);
  }
  nlohmann::json reply = nlohmann::json::parse(read_line(), nullptr, false);
  if (reply.is_discarded() || !reply.is_object()) {
    throw Error("comparing with Python: the Python worker sent something that is not JSON");
  }
  if (reply.contains("error")) {
    throw Error(fmt::format("comparing with Python: {}: {}", interpreter_.string(),
                            reply["error"].get<std::string>()));
  }
  return reply;
}

std::string PythonWorker::read_line() {
  for (;;) {
    const size_t end = buffer_.find('\n');
    if (end != std::string::npos) {
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      return line;
    }
    char chunk[4096];
    const ssize_t n = ::recv(socket_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) worker_gone();
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

void PythonWorker::worker_gone() {
  const int status = stop();
  std::string how = "ended";
  if (WIFEXITED(status)) {
    how = fmt::format("exited with status {}", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    how = fmt::format("was ended by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  }
  throw Error(fmt::format("comparing with Python: the Python worker ({}) {} unexpectedly",
                          interpreter_.string(), how));
}

}  // namespace stitch::bench_detail

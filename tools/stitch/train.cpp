// stitch train SPEC.yaml [--resume] [--nproc N]
//
// With --nproc N this process is a launcher: it starts N copies of itself
// with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) on
// loopback and waits for them. A process started with RANK set (by this
// launcher or by torchrun-like tools on several machines) is a worker.

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <stitch/train.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli.h"

namespace stitch::cli {

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int env_int(const char* name, const std::string& value) {
  try {
    size_t used = 0;
    int v = std::stoi(value, &used);
    if (used == value.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(fmt::format("{}={} is not a number", name, value));
}

/// A free TCP port on loopback for the c10d store (the kernel picks it).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error("cannot find a free port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// What a worker wrote to its log (an unlinked file).
std::string read_all(int fd) {
  std::string out;
  char buffer[4096];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof buffer, at);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
    at += n;
  }
  return out;
}

std::string read_all(const std::string& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// This process's command line, as main got it (from /proc/self/cmdline),
/// for starting workers with the same arguments.
std::vector<std::string> own_arguments() {
  const std::string all = read_all("/proc/self/cmdline");
  std::vector<std::string> args;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  if (args.empty()) throw Error("cannot read this process's command line");
  return args;
}

/// The signal that asked a training to stop (SIGINT, SIGTERM), for
/// TrainOptions::stop. The first one stops at the next step with a
/// checkpoint; a second one ends the process at once (SA_RESETHAND).
std::atomic<int> stop_requested{0};

void on_stop_signal(int signal) {
  stop_requested.store(signal);
}

void stop_gracefully_on_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

/// Shows a worker's failure as stitch's own: its `error:` line, naming the
/// worker, then the rest of its log indented.
void report_worker_failure(int rank, int nproc, int status, const std::string& log) {
  const std::string who = fmt::format("worker {} of {}", rank, nproc);
  std::istringstream lines(log);
  std::string line;
  bool said = false;
  while (std::getline(lines, line)) {
    if (!said && line.rfind("error: ", 0) == 0) {
      std::cerr << "error: " << who << ": " << line.substr(7) << "\n";
      said = true;
    } else if (said) {
      std::cerr << (line.empty() || line[0] == ' ' ? "" : "  ") << line << "\n";
    }
  }
  if (!said) std::cerr << "error: " << who << " failed (exit status " << status << ")\n";
}

/// Starts `nproc` workers (this binary, same arguments) and waits for them.
/// Rank 0's output goes to the terminal; another worker's log is shown when
/// it is the first to fail (rank 0 is then stopped before saying anything).
int launch(int nproc, const std::vector<std::string>& args) {
  std::string why;
  if (!distributed_available(&why)) throw Error("--nproc " + std::to_string(nproc) + ": " + why);
  const int port = free_port();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / unsigned(nproc)));
  std::vector<pid_t> pids;
  // Each worker but rank 0 writes to a log file that has no name: unlinked
  // at once, it is gone however the launcher ends.
  std::vector<int> logs;
  const pid_t launcher = ::getpid();
  for (int rank = 0; rank < nproc; ++rank) {
    int log = -1;
    if (rank > 0) {
      char tmpl[] = "/tmp/stitch-train-rank-XXXXXX";
      log = ::mkostemp(tmpl, O_CLOEXEC);
      if (log < 0) throw Error("cannot create a log file in /tmp");
      ::unlink(tmpl);
    }
    logs.push_back(log);
    pid_t pid = ::fork();
    if (pid < 0) throw Error("cannot start a worker process (fork failed)");
    if (pid == 0) {
      // A worker ends with the launcher (even a SIGKILLed one), and only the
      // launcher signals it: in a process group of its own, Ctrl-C on the
      // terminal reaches the launcher, which passes it on once.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(1);  // it ended before prctl
      ::setpgid(0, 0);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("STITCH_THREADS", threads.c_str(), 0);  // share the cores
      if (log >= 0) {
        if (::dup2(log, STDERR_FILENO) < 0 || !std::freopen("/dev/null", "w", stdout)) ::_exit(1);
      }
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "error: cannot start worker %d: exec failed\n", rank);
      ::_exit(1);
    }
    pids.push_back(pid);
  }
  // Wait for all. When one fails, give the others a moment to end by
  // themselves (with the same bad input they all fail at once, and rank 0
  // says why on the terminal), then stop them: they would wait for it. A
  // SIGINT or SIGTERM here is passed on to every worker, which stops at its
  // next step with a checkpoint. A worker that has not ended kStopWait after
  // it was told to is killed.
  using Clock = std::chrono::steady_clock;
  constexpr auto kStopWait = std::chrono::seconds(60);
  stop_gracefully_on_signals();
  std::vector<int> status(nproc, -1);
  std::vector<bool> stopped(nproc, false);         // ended by the SIGKILL sent here
  std::vector<bool> killed_outside(nproc, false);  // by a signal stitch did not send
  int first_failed = -1;
  Clock::time_point stop_at, kill_at;
  bool stop_sent = false, kill_sent = false, signal_passed = false;
  int running = nproc;
  auto signal_running = [&](int signal) {
    for (int r = 0; r < nproc; ++r) {
      if (status[r] < 0) ::kill(pids[r], signal);
    }
  };
  while (running > 0) {
    if (stop_requested.load() != 0 && !signal_passed) {
      signal_running(stop_requested.load());
      signal_passed = true;
      kill_at = Clock::now() + kStopWait;
    }
    int st = 0;
    const pid_t pid = ::waitpid(-1, &st, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;
    if (pid == 0) {
      const auto now = Clock::now();
      if (first_failed >= 0 && !stop_sent && now >= stop_at) {
        // A worker stops gracefully on SIGTERM, at its next step; one that
        // waits for the failed one never gets there.
        signal_running(SIGKILL);
        stop_sent = kill_sent = true;
      }
      if ((stop_sent || signal_passed) && !kill_sent && now >= kill_at) {
        signal_running(SIGKILL);
        kill_sent = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    for (int r = 0; r < nproc; ++r) {
      if (pids[r] != pid) continue;
      status[r] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      stopped[r] = stop_sent && WIFSIGNALED(st);
      killed_outside[r] = WIFSIGNALED(st) && !kill_sent && !signal_passed;
      --running;
      if (status[r] != 0 && first_failed < 0) {
        first_failed = r;
        stop_at = Clock::now() + std::chrono::seconds(3);
      }
    }
  }
  // A worker killed by a signal from elsewhere said nothing: say it here.
  // Rank 0 writes to the terminal: when it ended by itself, its error (if
  // any) is there already. Otherwise the first worker that failed says why.
  const bool rank0_said_it = status[0] != 0 && !stopped[0] && !killed_outside[0];
  if (first_failed >= 0 && killed_outside[first_failed]) {
    const char* name = ::sigabbrev_np(status[first_failed] - 128);
    std::cerr << fmt::format(
        "error: worker {} of {} ended by SIG{}, a signal stitch did not send; the others were "
        "stopped\n"
        "  fix: the same command with --resume continues from the run's last checkpoint\n",
        first_failed, nproc, name ? name : std::to_string(status[first_failed] - 128));
  } else if (first_failed > 0 && !rank0_said_it) {
    report_worker_failure(first_failed, nproc, status[first_failed], read_all(logs[first_failed]));
  }
  for (int log : logs) {
    if (log >= 0) ::close(log);
  }
  return first_failed < 0 ? 0 : 1;
}

void print_result(const TrainResult& r) {
  std::string line = fmt::format("trained {} ({}) in {:.1f} s: train loss {:.4f}",
                                 detail::count_of(r.epochs, "epoch"),
                                 detail::count_of(r.steps, "step"), r.seconds, r.train_loss);
  if (!std::isnan(r.val_loss)) line += fmt::format(", val loss {:.4f}", r.val_loss);
  if (!std::isnan(r.val_accuracy)) {
    line += fmt::format(", val accuracy {:.2f}%", 100 * r.val_accuracy);
  }
  std::cout << line << "\nwrote " << r.model.string() << "\n";
}

}  // namespace

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a combined model as its spec's train: says");
  auto spec_file = std::make_shared<std::string>();
  auto resume = std::make_shared<bool>(false);
  auto overwrite = std::make_shared<bool>(false);
  auto nproc = std::make_shared<int>(1);
  cmd->add_option("spec", *spec_file, "the spec (.yaml) with a train: section")->required();
  cmd->add_flag("--resume", *resume, "continue from the last checkpoint in the run's out folder");
  cmd->add_flag("--overwrite", *overwrite,
                "replace an earlier run's checkpoints, metrics.csv and model.pt in out")
      ->excludes("--resume");
  cmd->add_option("--nproc", *nproc, "train data-parallel on N local processes (c10d, Gloo)")
      ->check(in_range(1, 256));
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "print the result as JSON (progress stays on stderr)");
  cmd->callback([=] {
    const auto rank = env("RANK");
    if (*nproc > 1 && !rank) {
      const int code = launch(*nproc, own_arguments());
      // NOTE: the failing worker has printed its `error:` line already;
      // exit without adding a second one.
      if (code != 0) {
        std::cout.flush();
        std::exit(code);
      }
      return;
    }
    TrainOptions options;
    options.resume(*resume).overwrite(*overwrite);
    if (rank) {
      const auto world = env("WORLD_SIZE");
      if (!world) throw UsageError("RANK is set but WORLD_SIZE is not");
      options.rank(env_int("RANK", *rank))
          .world_size(env_int("WORLD_SIZE", *world))
          .master_addr(env("MASTER_ADDR").value_or("127.0.0.1"))
          .master_port(env_int("MASTER_PORT", env("MASTER_PORT").value_or("29500")));
    }
    if (const auto join = env("STITCH_JOIN_SECONDS")) {
      options.join_seconds(static_cast<double>(env_int("STITCH_JOIN_SECONDS", *join)));
    }
    Spec spec = load_spec(*spec_file);
    stop_gracefully_on_signals();
    options.stop(&stop_requested);
    TrainResult result = train(spec, options);
    if (options.rank() == 0) {
      if (*json) {
        std::cout << result.json();
      } else {
        print_result(result);
      }
    }
  });
}

}  // namespace stitch::cli

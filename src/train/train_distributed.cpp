// Data-parallel training over PyTorch's own c10d: a TCPStore on rank 0 for
// the rendezvous, ProcessGroupGloo for the all-reduce.
//
// NOTE: Debian's libtorch ships ProcessGroupGloo in libtorch_cpu.so, but its
// header is only usable with Gloo's headers (libgloo-dev) and
// USE_C10D_GLOO defined. Without them stitch still builds and trains on one
// process; --nproc > 1 then says what is missing.

#if __has_include(<gloo/algorithm.h>)
#define STITCH_HAVE_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#else
#define STITCH_HAVE_GLOO 0
#endif

#include <c10/util/Logging.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "train/train_internal.h"
#include "util/torch_compat.h"

namespace stitch {

bool distributed_available(std::string* why) {
  if (STITCH_HAVE_GLOO) return true;
  if (why) {
    *why =
        "this stitch was built without Gloo's headers, which c10d's ProcessGroupGloo "
        "needs\n  fix: install libgloo-dev and rebuild stitch";
  }
  return false;
}

namespace train_detail {

namespace {

#if STITCH_HAVE_GLOO
bool agent_serves_store() {
  const char* env = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  return env != nullptr && std::string(env) == "True";
}

class GlooCommunicator : public Communicator {
 public:
  explicit GlooCommunicator(const TrainOptions& o) : rank_(o.rank()), world_(o.world_size()) {
    const auto join_limit =
        std::chrono::milliseconds(static_cast<int64_t>(std::max(1.0, o.join_seconds()) * 1000));
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(o.master_port());
    // Under torchrun (torch.distributed.elastic) the agent already serves the
    // store at MASTER_ADDR:MASTER_PORT: rank 0 joins it as a client.
    store_options.isServer = o.rank() == 0 && !agent_serves_store();
    // No numWorkers: the server would wait for them inside the constructor
    // and fail without saying how many came; wait_for_everyone says it.
    store_options.timeout = join_limit;
    torch_compat::use_classic_tcp_store(store_options);
    // A restarted torchrun job meets in the same store: its keys go under
    // the restart's own prefix.
    const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
    auto store = c10::make_intrusive<c10d::PrefixStore>(
        fmt::format("stitch/{}", restart ? restart : "0"),
        c10::make_intrusive<c10d::TCPStore>(o.master_addr(), store_options));
    wait_for_everyone(*store, o);
    // Every wait is bounded: joining (join_seconds, for the store and the
    // others) and each collective (300 s), so that a peer that died or
    // hangs is an error, never a hang.
    auto options = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(300));
    // GLOO_SOCKET_IFNAME (as PyTorch reads it: the first of a comma list)
    // names the interface. Else, on loopback every process is on this
    // machine: bind Gloo to 127.0.0.1; otherwise Gloo picks the interface of
    // this host's name.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = o.master_addr() == "127.0.0.1" || o.master_addr() == "localhost";
    if (ifname != nullptr && *ifname != '\0') {
      const std::string names = ifname;
      options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForInterface(names.substr(0, names.find(','))));
    } else {
      options->devices.push_back(loopback
                                     ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
    }
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank(), o.world_size(), options);
  }

  /// Counts this process in and waits until every process of the job has
  /// joined, at most join_seconds.
  static void wait_for_everyone(c10d::Store& store, const TrainOptions& o) {
    const std::string key = "stitch/joined";
    store.add(key, 1);
    const auto limit = std::chrono::duration<double>(std::max(1.0, o.join_seconds()));
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      const int64_t joined = store.add(key, 0);
      if (joined >= o.world_size()) return;
      if (std::chrono::steady_clock::now() - start > limit) {
        throw Error(fmt::format(
            "rank {} of {} cannot join {}:{} (c10d Gloo): {} of {} processes joined within "
            "{:g} s\n"
            "  fix: start all {} ranks with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE; "
            "if they start slowly, wait longer: STITCH_JOIN_SECONDS=600",
            o.rank(), o.world_size(), o.master_addr(), o.master_port(), joined, o.world_size(),
            limit.count(), o.world_size()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  void all_reduce_sum(torch::Tensor& t) override {
    collective("exchanging gradients", [&] {
      std::vector<at::Tensor> tensors{t};
      group_->allreduce(tensors)->wait();
    });
  }

  void barrier() override {
    collective("waiting for the other processes", [&] { group_->barrier()->wait(); });
  }

 private:
  /// Gloo's own error (`[../gloo/transport/tcp/pair.cc:589] Read error ...`)
  /// said in words: a peer of this job ended or cannot be reached.
  template <typename Fn>
  void collective(const char* what, Fn&& fn) {
    try {
      fn();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {  // c10::Error, or Gloo's own exceptions
      const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
      throw Error(fmt::format(
          "rank {} of {}: {} failed: another process of the job ended or stopped answering\n"
          "  Gloo says: {}\n"
          "  fix: see the other processes' errors; once they are fixed, --resume continues from "
          "the last checkpoint",
          rank_, world_, what,
          c10_error ? detail::short_message(*c10_error) : detail::first_line(e.what())));
    }
  }

  int rank_, world_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};
#endif

}  // namespace

/// c10d logs its own view of a failure (a socket timeout, a peer gone) to
/// stderr before it throws, in glog's format or c10's; stitch says it once,
/// as its `error:` line. Only fatal messages are logged from here on.
void quiet_c10d_logging() {
#ifdef C10_USE_GLOG
  FLAGS_minloglevel = std::max(FLAGS_minloglevel, 3);  // glog's FATAL
#else
  FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, 3);  // c10's own logging
#endif
}

std::unique_ptr<Communicator> connect(const TrainOptions& options) {
  if (options.world_size() <= 1) return nullptr;
  quiet_c10d_logging();
  std::string why;
  if (!distributed_available(&why)) throw Error("cannot train on several processes: " + why);
#if STITCH_HAVE_GLOO
  return with_context(
      fmt::format("rank {} of {} cannot join {}:{} (c10d Gloo)", options.rank(),
                  options.world_size(), options.master_addr(), options.master_port()),
      [&]() -> std::unique_ptr<Communicator> {
        return std::make_unique<GlooCommunicator>(options);
      });
#else
  return nullptr;
#endif
}

}  // namespace train_detail
}  // namespace stitch

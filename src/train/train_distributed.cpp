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
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#else
#define STITCH_HAVE_GLOO 0
#endif

#include <fmt/format.h>

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
class GlooCommunicator : public Communicator {
 public:
  explicit GlooCommunicator(const TrainOptions& o) : rank_(o.rank()), world_(o.world_size()) {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(o.master_port());
    store_options.isServer = o.rank() == 0;
    store_options.numWorkers = o.world_size();
    store_options.timeout = std::chrono::seconds(120);
    torch_compat::use_classic_tcp_store(store_options);
    auto store = c10::make_intrusive<c10d::TCPStore>(o.master_addr(), store_options);
    // Every wait is bounded: joining (the store, 120 s) and each collective
    // (300 s), so that a peer that died or hangs is an error, never a hang.
    auto options = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(300));
    // On loopback every process is on this machine: bind Gloo to 127.0.0.1.
    // Otherwise let Gloo pick the interface of this host's name (or
    // GLOO_SOCKET_IFNAME, as with torchrun).
    const bool loopback = o.master_addr() == "127.0.0.1" || o.master_addr() == "localhost";
    options->devices.push_back(loopback
                                   ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank(), o.world_size(), options);
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

std::unique_ptr<Communicator> connect(const TrainOptions& options) {
  if (options.world_size() <= 1) return nullptr;
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

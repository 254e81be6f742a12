// Shape checking on random graphs: inputs of random shapes and dtypes, then
// built-in ops (chosen from the signature table) with random arguments and
// keywords, built through the C++ API and checked.
#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_util.h"
#include "ops/registry.h"
#include "stitch/check.h"

namespace {

using stitch::Dim;
using stitch::Literal;
using stitch::Value;
using Kind = stitch::ParamDef::Kind;

class GraphMaker {
 public:
  GraphMaker(const uint8_t* data, size_t size) : in_(data, size) {}

  void run() {
    const int inputs = in_.ConsumeIntegralInRange(1, 3);
    for (int i = 0; i < inputs; ++i) {
      values_.push_back(g_.input("x" + std::to_string(i), shape(), dtype()));
    }
    const auto ops = stitch::op_names();
    while (in_.remaining_bytes() > 0 && g_.nodes().size() < 32) {
      stitch::fuzz::expect_only_stitch_errors([&] {
        if (in_.ConsumeIntegralInRange(0, 15) == 0) {
          values_.push_back(g_.index(value(), int64_t{in_.ConsumeIntegralInRange(-2, 3)}));
        } else {
          add_op(ops[in_.ConsumeIntegralInRange<size_t>(0, ops.size() - 1)]);
        }
      });
    }
    g_.output("out", values_.back());
    (void)stitch::check(g_);
  }

 private:
  stitch::Shape shape() {
    stitch::Shape out;
    const int rank = in_.ConsumeIntegralInRange(0, 5);
    for (int d = 0; d < rank; ++d) {
      switch (in_.ConsumeIntegralInRange(0, 3)) {
        case 0:
          out.push_back(stitch::N);
          break;
        case 1:
          out.push_back(Dim::symbol("T"));
          break;
        default:
          out.push_back(in_.ConsumeIntegralInRange<int64_t>(1, 64));
      }
    }
    return out;
  }

  at::ScalarType dtype() {
    constexpr at::ScalarType kTypes[] = {at::kFloat, at::kFloat, at::kDouble, at::kHalf,
                                         at::kLong,  at::kInt,   at::kBool};
    return in_.PickValueInArray(kTypes);
  }

  Value value() { return values_[in_.ConsumeIntegralInRange<size_t>(0, values_.size() - 1)]; }

  int64_t small_int() { return in_.ConsumeIntegralInRange<int64_t>(-3, 70); }

  Literal literal(Kind kind) {
    switch (kind) {
      case Kind::Int:
        return small_int();
      case Kind::Float:
        return in_.ConsumeFloatingPointInRange(-2.0, 2.0);
      case Kind::Bool:
        return in_.ConsumeBool();
      case Kind::String: {
        constexpr const char* kWords[] = {"avg", "max", "relu", "gelu", "tanh", "x0", "x1", ""};
        return in_.PickValueInArray(kWords);
      }
      case Kind::IntList:
      case Kind::FloatList:
      case Kind::Shape: {
        std::vector<Literal> items(in_.ConsumeIntegralInRange(0, 5));
        for (auto& item : items) {
          if (kind == Kind::FloatList) {
            item = in_.ConsumeFloatingPointInRange(-1.0, 1.0);
          } else if (kind == Kind::Shape && in_.ConsumeBool()) {
            item = in_.ConsumeBool() ? "N" : "T";
          } else {
            item = small_int();
          }
        }
        return items;
      }
      default:
        return Literal();
    }
  }

  void add_op(const std::string& name) {
    const stitch::OpSignature& sig = stitch::find_op(name)->signature;
    std::vector<stitch::Arg> args;
    stitch::Kwargs kwargs;
    for (const auto& p : sig.params) {
      if (p.fallback && in_.ConsumeBool()) continue;  // leave the default
      if (p.kind == Kind::Tensor) {
        args.push_back(value());
      } else if (p.kind == Kind::Tensors || p.kind == Kind::Scalar) {
        for (int n = in_.ConsumeIntegralInRange(1, 3); n > 0; --n) {
          if (p.kind == Kind::Scalar && in_.ConsumeIntegralInRange(0, 3) == 0) {
            args.push_back(literal(Kind::Float));
          } else {
            args.push_back(value());
          }
        }
      } else {
        kwargs.emplace_back(p.name, literal(p.kind));
      }
    }
    values_.push_back(g_.op(name, std::move(args), std::move(kwargs)));
  }

  FuzzedDataProvider in_;
  stitch::Graph g_;
  std::vector<Value> values_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stitch::fuzz::expect_only_stitch_errors([&] { GraphMaker(data, size).run(); });
  return 0;
}

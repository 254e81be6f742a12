#pragma once
// Built-in ops as C++ functions. Each adds one node to its argument's graph,
// exactly as the same call written in a spec's `graph:` does.
//   auto logits = stitch::linear(stitch::flatten(features), 5);

#include <string>
#include <vector>

#include "stitch/graph.h"

namespace stitch {

// merge
Value concat(std::vector<Value> xs, int64_t dim = 1);
Value add(std::vector<Value> xs);
Value stack(std::vector<Value> xs, int64_t dim = 1);
Value mul(Value a, Value b);

// combine outputs of one shape: "mean", "logsumexp" (log(mean(exp(x_i))),
// for log-probabilities) or "vote" (the most frequent argmax over the last
// dim, ties to the lowest class, as int64)
Value ensemble(std::vector<Value> xs, const std::string& how = "mean");

// shape
Value flatten(Value x, int64_t start = 1);
Value reshape(Value x, std::vector<int64_t> shape);
Value permute(Value x, std::vector<int64_t> dims);
Value unsqueeze(Value x, int64_t dim);
Value squeeze(Value x, int64_t dim);
Value mean(Value x, int64_t dim = 1);
/// Global pooling to [N, C]: "avg" or "max".
Value pool(Value x, const std::string& kind = "avg");
Value resize(Value x, std::vector<int64_t> size);
Value select(Value x, int64_t dim, int64_t index);

// learned: input sizes are inferred from the checked shapes
Value linear(Value x, int64_t out, bool bias = true);
Value conv(Value x, int64_t out, int64_t kernel = 1, int64_t stride = 1, int64_t padding = 0);
Value mlp(Value x, std::vector<int64_t> sizes, const std::string& act = "relu",
          double dropout = 0.0);
Value embedding(Value x, int64_t vocab, int64_t dim);
Value layernorm(Value x);
Value batchnorm(Value x);
Value scale_offset(Value x, double scale = 1.0, double offset = 0.0, bool learnable = true);

// fixed
Value normalize(Value x, std::vector<double> mean, std::vector<double> std);
Value relu(Value x);
Value gelu(Value x);
Value sigmoid(Value x);
Value tanh(Value x);
Value softmax(Value x, int64_t dim);
Value dropout(Value x, double p);
Value l2norm(Value x, int64_t dim = 1);

// adapt: stitch picks the smallest adapter (flatten, pool, reshape, permute,
// a linear or 1x1-conv projection, resize); `check` reports which.
/// adapt(x, to=[N, 512]): to a shape, dims as in g.input ({stitch::N, 512}).
Value adapt(Value x, const Shape& to);
/// adapt(x, like=MODEL): to what a model the graph calls expects.
Value adapt(Value x, const Model& like);

/// Whether `name` is a built-in op of the spec language (linear, mlp, conv,
/// ...): a model cannot take such a name.
[[nodiscard]] bool is_builtin_op(const std::string& name);

}  // namespace stitch

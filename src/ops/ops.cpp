#include "stitch/ops.h"

#include "ops/registry.h"

namespace stitch {

namespace {
std::vector<Arg> values(const std::vector<Value>& xs) {
  return {xs.begin(), xs.end()};
}
Graph& graph_of(const std::vector<Value>& xs) {
  if (xs.empty()) {
    throw Error("a merge op needs at least one value");
  }
  return xs.front().graph();
}
Value unary(const char* op, Value x, Kwargs kwargs = {}) {
  return x.graph().op(op, {x}, std::move(kwargs));
}
}  // namespace

Value concat(std::vector<Value> xs, int64_t dim) {
  return graph_of(xs).op("concat", values(xs), {{"dim", dim}});
}
Value add(std::vector<Value> xs) {
  return graph_of(xs).op("add", values(xs));
}
Value stack(std::vector<Value> xs, int64_t dim) {
  return graph_of(xs).op("stack", values(xs), {{"dim", dim}});
}
Value mul(Value a, Value b) {
  return a.graph().op("mul", {a, b});
}
Value ensemble(std::vector<Value> xs, const std::string& how) {
  return graph_of(xs).op("ensemble", values(xs), {{"how", how}});
}

Value flatten(Value x, int64_t start) {
  return unary("flatten", x, {{"start", start}});
}
Value reshape(Value x, std::vector<int64_t> shape) {
  return unary("reshape", x, {{"shape", Literal(shape)}});
}
Value permute(Value x, std::vector<int64_t> dims) {
  return unary("permute", x, {{"dims", Literal(dims)}});
}
Value unsqueeze(Value x, int64_t dim) {
  return unary("unsqueeze", x, {{"dim", dim}});
}
Value squeeze(Value x, int64_t dim) {
  return unary("squeeze", x, {{"dim", dim}});
}
Value mean(Value x, int64_t dim) {
  return unary("mean", x, {{"dim", dim}});
}
Value pool(Value x, const std::string& kind) {
  return unary("pool", x, {{"kind", kind}});
}
Value resize(Value x, std::vector<int64_t> size) {
  return unary("resize", x, {{"size", Literal(size)}});
}
Value select(Value x, int64_t dim, int64_t index) {
  return unary("select", x, {{"dim", dim}, {"index", index}});
}

Value linear(Value x, int64_t out, bool bias) {
  return unary("linear", x, {{"out", out}, {"bias", bias}});
}
Value conv(Value x, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return unary("conv", x,
               {{"out", out}, {"kernel", kernel}, {"stride", stride}, {"padding", padding}});
}
Value mlp(Value x, std::vector<int64_t> sizes, const std::string& act, double dropout) {
  return unary("mlp", x, {{"sizes", Literal(sizes)}, {"act", act}, {"dropout", dropout}});
}
Value embedding(Value x, int64_t vocab, int64_t dim) {
  return unary("embedding", x, {{"vocab", vocab}, {"dim", dim}});
}
Value layernorm(Value x) {
  return unary("layernorm", x);
}
Value batchnorm(Value x) {
  return unary("batchnorm", x);
}
Value scale_offset(Value x, double scale, double offset, bool learnable) {
  return unary("scale_offset", x, {{"scale", scale}, {"offset", offset}, {"learnable", learnable}});
}

Value normalize(Value x, std::vector<double> mean, std::vector<double> std) {
  return unary("normalize", x, {{"mean", Literal(mean)}, {"std", Literal(std)}});
}
Value relu(Value x) {
  return unary("relu", x);
}
Value gelu(Value x) {
  return unary("gelu", x);
}
Value sigmoid(Value x) {
  return unary("sigmoid", x);
}
Value tanh(Value x) {
  return unary("tanh", x);
}
Value softmax(Value x, int64_t dim) {
  return unary("softmax", x, {{"dim", dim}});
}
Value dropout(Value x, double p) {
  return unary("dropout", x, {{"p", p}});
}
Value l2norm(Value x, int64_t dim) {
  return unary("l2norm", x, {{"dim", dim}});
}

Value adapt(Value x, const Shape& to) {
  std::vector<Literal> dims;
  for (const Dim& d : to) {
    dims.push_back(d.is_static() ? Literal(d.size()) : Literal(d.str()));
  }
  return unary("adapt", x, {{"to", Literal(std::move(dims))}});
}
Value adapt(Value x, const Model& like) {
  // Registered here too, since the adapter is planned before the call that
  // follows it (adapt(features, head) then head(...)) is in the graph.
  x.graph().add_model(like.spec());
  return unary("adapt", x, {{"like", like.spec().name}});
}

bool is_builtin_op(const std::string& name) {
  return find_op(name) != nullptr;
}

}  // namespace stitch

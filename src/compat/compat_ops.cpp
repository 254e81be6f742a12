// Operators of newer PyTorch versions, registered on an older LibTorch under
// their real names and schemas (see stitch/compat.h). Each is a composite of
// ATen operators this LibTorch has (CompositeImplicitAutograd), so autograd
// differentiates it, and its numbers follow PyTorch's own reference
// ("math") implementation.

#include <torch/library.h>
#include <torch/version.h>

#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "stitch/compat.h"

namespace stitch {

#if TORCH_VERSION_MAJOR < 2

namespace {

/// PyTorch 2.x's aten::scaled_dot_product_attention, as its math backend
/// computes it (aten/src/ATen/native/transformers/attention.cpp): q and k
/// each scaled by sqrt(scale), a bool mask as 0 / -inf, the causal mask
/// lower-triangular, grouped-query key/value heads repeated, a softmax whose
/// fully masked rows are 0 (_safe_softmax), dropout whenever dropout_p > 0.
at::Tensor scaled_dot_product_attention(const at::Tensor& query, const at::Tensor& key,
                                        const at::Tensor& value,
                                        const c10::optional<at::Tensor>& attn_mask,
                                        double dropout_p, bool is_causal,
                                        c10::optional<double> scale, bool enable_gqa) {
  TORCH_CHECK(query.dim() >= 2 && key.dim() >= 2 && value.dim() >= 2,
              "scaled_dot_product_attention: query, key and value need at least 2 dims");
  TORCH_CHECK(query.size(-1) == key.size(-1),
              "scaled_dot_product_attention: query's and key's last dims differ (", query.size(-1),
              " and ", key.size(-1), ")");
  TORCH_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0,
              "scaled_dot_product_attention: dropout_p must be in [0, 1], got ", dropout_p);
  const double factor = scale.has_value() ? *scale : 1.0 / std::sqrt(double(query.size(-1)));
  const double root = std::sqrt(std::abs(factor));

  c10::optional<at::Tensor> mask;
  const auto to_additive = [&](const at::Tensor& allowed) {
    return at::zeros_like(allowed, query.options())
        .masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  };
  if (attn_mask.has_value() && attn_mask->defined()) {
    mask = attn_mask->scalar_type() == at::kBool ? to_additive(*attn_mask) : *attn_mask;
  }
  if (is_causal) {
    TORCH_CHECK(!mask.has_value(),
                "_scaled_dot_product_attention: Explicit attn_mask should not be set when "
                "is_causal=True");
    const int64_t target = query.size(-2), source = key.size(-2);
    mask = to_additive(at::ones({target, source}, query.options().dtype(at::kBool)).tril());
  }

  at::Tensor k = key, v = value;
  if (enable_gqa && query.dim() >= 3 && key.dim() >= 3 && query.size(-3) != key.size(-3)) {
    TORCH_CHECK(
        key.size(-3) > 0 && query.size(-3) % key.size(-3) == 0 && key.size(-3) == value.size(-3),
        "scaled_dot_product_attention: with enable_gqa, the query's heads (", query.size(-3),
        ") must be a multiple of the key's and value's (", key.size(-3), ", ", value.size(-3), ")");
    const int64_t repeats = query.size(-3) / key.size(-3);
    k = key.repeat_interleave(repeats, -3);
    v = value.repeat_interleave(repeats, -3);
  }

  at::Tensor scores = at::matmul(query * (factor < 0 ? -root : root), k.transpose(-2, -1) * root);
  if (mask.has_value()) scores = scores + *mask;
  at::Tensor weights = at::softmax(scores, -1);
  // _safe_softmax: a row with every position masked attends to nothing (0),
  // not NaN.
  const at::Tensor masked_rows =
      scores.eq(-std::numeric_limits<double>::infinity()).all(-1, /*keepdim=*/true);
  weights = at::where(masked_rows, at::zeros({}, weights.options()), weights);
  if (dropout_p > 0.0) weights = at::dropout(weights, dropout_p, /*train=*/true);
  return at::matmul(weights, v);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(aten, m) {
  m.def(
      "scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, "
      "Tensor? attn_mask=None, float dropout_p=0.0, bool is_causal=False, *, "
      "float? scale=None, bool enable_gqa=False) -> Tensor");
}

TORCH_LIBRARY_IMPL(aten, CompositeImplicitAutograd, m) {
  m.impl("scaled_dot_product_attention", TORCH_FN(scaled_dot_product_attention));
}

const std::vector<std::string>& compat_operators() {
  static const std::vector<std::string> names{"aten::scaled_dot_product_attention"};
  return names;
}

#else

const std::vector<std::string>& compat_operators() {
  static const std::vector<std::string> none;
  return none;
}

#endif

void register_compat_operators() {
  // The registrations above run when this file's object is linked in, before
  // main; calling this function is what makes a static link keep it.
}

std::vector<std::string> compat_operators_used(const torch::jit::Module& module) {
  const auto& ours = compat_operators();
  std::set<std::string> used;
  if (ours.empty()) return {};
  const std::set<std::string> wanted(ours.begin(), ours.end());
  std::function<void(torch::jit::Block*)> walk = [&](torch::jit::Block* block) {
    for (torch::jit::Node* node : block->nodes()) {
      const std::string kind = node->kind().toQualString();
      if (wanted.count(kind)) used.insert(kind);
      for (torch::jit::Block* inner : node->blocks()) walk(inner);
    }
  };
  // Every function of every compilation unit the module's parts come from
  // (a stitch artifact's components keep their own).
  std::set<const torch::jit::CompilationUnit*> seen;
  for (const torch::jit::Module& part : module.modules()) {
    const auto unit = part._ivalue()->compilation_unit();
    if (unit == nullptr || !seen.insert(unit.get()).second) continue;
    // A removed function leaves a null behind.
    for (torch::jit::Function* fn : unit->get_functions()) {
      if (fn == nullptr || !fn->isGraphFunction()) continue;
      fn->ensure_defined();
      if (auto graph = torch::jit::toGraphFunction(*fn).graph()) walk(graph->block());
    }
  }
  return {used.begin(), used.end()};
}

}  // namespace stitch

#include "build/small_matmul.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace stitch::detail {

namespace {

constexpr int64_t kMaxSide = 64;

// The loop below, compiled for AVX-512, AVX2 and the baseline; the loader
// picks the best the CPU has (GCC and Clang function multiversioning).
#if defined(__x86_64__) && defined(__linux__)
#define STITCH_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STITCH_CLONES
#endif

/// c[i, :] = sum_k a[i, k] * b[k, :] for one matrix of the batch: a with
/// any strides, b's rows contiguous (ldb apart), c contiguous. With the
/// width kN known, a row's kN accumulators stay in vector registers.
template <int64_t kN>
inline __attribute__((always_inline)) void rows(const float* __restrict a, int64_t lda_row,
                                                int64_t lda_col, const float* __restrict b,
                                                int64_t ldb, float* __restrict c, int64_t m,
                                                int64_t k, int64_t n) {
  const int64_t width = kN > 0 ? kN : n;
  for (int64_t i = 0; i < m; ++i) {
    float fixed[kN > 0 ? kN : 1];
    float* __restrict acc = kN > 0 ? fixed : c + i * width;
    for (int64_t j = 0; j < width; ++j) acc[j] = 0.0f;
    for (int64_t p = 0; p < k; ++p) {
      const float x = a[i * lda_row + p * lda_col];
      const float* __restrict brow = b + p * ldb;
      for (int64_t j = 0; j < width; ++j) acc[j] += x * brow[j];
    }
    if (kN > 0) {
      for (int64_t j = 0; j < width; ++j) c[i * width + j] = acc[j];
    }
  }
}

#define STITCH_ROWS(name, width)                                                            \
  STITCH_CLONES void name(const float* a, int64_t lda_row, int64_t lda_col, const float* b, \
                          int64_t ldb, float* c, int64_t m, int64_t k, int64_t n) {         \
    rows<width>(a, lda_row, lda_col, b, ldb, c, m, k, n);                                   \
  }
STITCH_ROWS(rows16, 16)
STITCH_ROWS(rows32, 32)
STITCH_ROWS(rows64, 64)
STITCH_ROWS(rows_any, 0)
#undef STITCH_ROWS

at::Tensor small_bmm_forward(const at::Tensor& a, const at::Tensor& b) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  at::Tensor c = at::empty({batch, m, n}, a.options());
  const float* ap = a.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  float* cp = c.data_ptr<float>();
  const auto as = a.strides();
  const auto bs = b.strides();
  // b's rows must be contiguous: a transposed b (k^T in attention) is
  // copied matrix by matrix into a small buffer first.
  const bool pack = bs[2] != 1;
  const auto kernel = n == 16 ? rows16 : n == 32 ? rows32 : n == 64 ? rows64 : rows_any;
  const int64_t grain = std::max<int64_t>(1, 32768 / (m * k * n));
  at::parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> packed(pack ? k * n : 0);
    for (int64_t i = begin; i < end; ++i) {
      const float* bi = bp + i * bs[0];
      int64_t ldb = bs[1];
      if (pack) {
        for (int64_t p = 0; p < k; ++p) {
          for (int64_t j = 0; j < n; ++j) packed[p * n + j] = bi[p * bs[1] + j * bs[2]];
        }
        bi = packed.data();
        ldb = n;
      }
      kernel(ap + i * as[0], as[1], as[2], bi, ldb, cp + i * m * n, m, k, n);
    }
  });
  return c;
}

struct SmallBmm : torch::autograd::Function<SmallBmm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a,
                            const at::Tensor& b) {
    ctx->save_for_backward({a, b});
    return small_bmm_forward(a, b);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& grad = grads[0];
    at::Tensor grad_a, grad_b;
    if (ctx->needs_input_grad(0)) grad_a = detail::bmm(grad, saved[1].transpose(1, 2));
    if (ctx->needs_input_grad(1)) grad_b = detail::bmm(saved[0].transpose(1, 2), grad);
    return {grad_a, grad_b};
  }
};

bool small_side(int64_t size) {
  return size >= 1 && size <= kMaxSide;
}

TORCH_LIBRARY(stitch, m) {
  m.def("bmm(Tensor self, Tensor mat2) -> Tensor", TORCH_FN(bmm));
  m.def("matmul(Tensor self, Tensor other) -> Tensor", TORCH_FN(matmul));
}

void replace_in(torch::jit::Block* block, int& replaced) {
  static const auto bmm_op = c10::Symbol::fromQualString("stitch::bmm");
  static const auto matmul_op = c10::Symbol::fromQualString("stitch::matmul");
  for (auto it = block->nodes().begin(); it != block->nodes().end();) {
    torch::jit::Node* node = *it++;
    for (torch::jit::Block* inner : node->blocks()) replace_in(inner, replaced);
    c10::Symbol kind;
    if (node->matches("aten::bmm(Tensor self, Tensor mat2) -> Tensor")) {
      kind = bmm_op;
    } else if (node->matches("aten::matmul(Tensor self, Tensor other) -> Tensor")) {
      kind = matmul_op;
    } else {
      continue;
    }
    node->replaceWithNewSymbol(kind);
    node->destroy();
    ++replaced;
  }
}

}  // namespace

bool small_bmm_applies(const at::Tensor& a, const at::Tensor& b) {
  return a.dim() == 3 && b.dim() == 3 && a.device().is_cpu() && b.device().is_cpu() &&
         a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.size(0) == b.size(0) &&
         a.size(2) == b.size(1) && a.size(0) >= 1 && small_side(a.size(1)) &&
         small_side(a.size(2)) && small_side(b.size(2)) && a.layout() == at::kStrided &&
         b.layout() == at::kStrided;
}

at::Tensor bmm(const at::Tensor& a, const at::Tensor& b) {
  if (!small_bmm_applies(a, b)) return at::bmm(a, b);
  return SmallBmm::apply(a, b);
}

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) {
  const int64_t da = a.dim(), db = b.dim();
  if (da < 3 || da != db || a.sizes().slice(0, da - 2) != b.sizes().slice(0, db - 2)) {
    return at::matmul(a, b);
  }
  std::vector<int64_t> out(a.sizes().begin(), a.sizes().end() - 2);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const at::Tensor a3 = a.reshape({-1, m, k});
  const at::Tensor b3 = b.reshape({-1, b.size(-2), n});
  if (!small_bmm_applies(a3, b3)) return at::matmul(a, b);
  out.push_back(m);
  out.push_back(n);
  return SmallBmm::apply(a3, b3).view(out);
}

int use_small_matmul(torch::jit::Module& module) {
  auto& forward = torch::jit::toGraphFunction(module.get_method("forward").function());
  const std::shared_ptr<torch::jit::Graph> graph = forward.graph();
  torch::jit::Inline(*graph);
  int replaced = 0;
  replace_in(graph->block(), replaced);
  return replaced;
}

}  // namespace stitch::detail

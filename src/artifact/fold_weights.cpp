// stitch::fold_weights: the inference artifact of `stitch compose --optimize`.

#include "artifact/fold_weights.h"

#include <torch/csrc/jit/ir/ir.h>

#include "artifact/metadata.h"
#include "stitch/artifact.h"
#include "stitch/error.h"

namespace stitch {

namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

bool is_conv2d(const Node* node) {
  return node->kind() == c10::aten::conv2d || node->kind() == c10::aten::_convolution;
}

/// Stores the weight of every 2-d convolution in channels-last order. oneDNN,
/// which runs LibTorch's CPU convolutions, then keeps the activations in NHWC
/// from one convolution to the next instead of reordering them around every
/// call: resnet18 at batch 8 runs in about 0.68x of eager PyTorch, against
/// about 0.95x with freeze alone. The strides are saved with the constant, so
/// this survives save + load (optimize_for_inference's prepacked oneDNN
/// weights do not, in LibTorch 1.13).
void store_conv_weights_channels_last(Block* block) {
  for (Node* node : block->nodes()) {
    for (Block* inner : node->blocks()) store_conv_weights_channels_last(inner);
    if (!is_conv2d(node) || node->inputs().size() < 2) continue;
    Node* weight = node->input(1)->node();
    if (weight->kind() != c10::prim::Constant || !weight->hasAttribute(c10::attr::value) ||
        weight->kindOf(c10::attr::value) != torch::jit::AttributeKind::t) {
      continue;
    }
    const at::Tensor& w = weight->t(c10::attr::value);
    if (w.dim() == 4 && w.is_floating_point()) {
      weight->t_(c10::attr::value, w.contiguous(c10::MemoryFormat::ChannelsLast));
    }
  }
}

/// Makes every tensor the graph returns (directly, or in the dict or tuple
/// it returns) contiguous: with channels-last weights a 4-d output would
/// otherwise come out NHWC-strided, which `view` refuses where the plain
/// artifact's output was fine. A no-op on outputs that are contiguous.
void return_contiguous_outputs(torch::jit::Graph& graph) {
  Value* returned = graph.outputs().at(0);
  Node* construct = returned->node();
  const bool container = construct->kind() == c10::prim::DictConstruct ||
                         construct->kind() == c10::prim::TupleConstruct;
  auto contiguous = [&](Value* v, Node* before) {
    torch::jit::WithInsertPoint guard(before);
    return graph.insert(c10::aten::contiguous, {v});
  };
  if (container) {
    for (size_t i = 0; i < construct->inputs().size(); ++i) {
      Value* v = construct->input(i);
      if (v->type()->kind() == c10::TypeKind::TensorType) {
        construct->replaceInput(i, contiguous(v, construct));
      }
    }
  } else if (returned->type()->kind() == c10::TypeKind::TensorType) {
    graph.return_node()->replaceInput(0, contiguous(returned, graph.return_node()));
  }
}

/// torch::jit::freeze of an eval-mode copy, conv weights channels-last and
/// `method`'s tensor outputs contiguous. `keep` (with `method`) survives.
torch::jit::Module fold(const torch::jit::Module& module, const std::string& method,
                        std::vector<std::string> keep) {
  torch::jit::Module copy = module.clone();
  copy.eval();
  if (method != "forward") keep.push_back(method);
  // torch::jit::freeze folds BatchNorm and scales into the convolution
  // before them, across component boundaries too (the graph is inlined).
  torch::jit::Module frozen = torch::jit::freeze(copy, keep);
  auto graph = frozen.get_method(method).graph();
  store_conv_weights_channels_last(graph->block());
  return_contiguous_outputs(*graph);
  return frozen;
}

}  // namespace

torch::jit::Module fold_weights(const torch::jit::Module& module) {
  return with_context("optimizing the model for inference", [&] {
    return fold(module, "forward", {kSpecAttr, kManifestAttr});
  });
}

namespace detail {

torch::jit::Module fold_frozen_model(const torch::jit::Module& model, const std::string& method) {
  try {
    return fold(model, method, {});
  } catch (const std::exception&) {
    // torch::jit::freeze refuses some models (one that sets its own
    // attributes in forward): they train as they are, only not faster.
    return model;
  }
}

}  // namespace detail

}  // namespace stitch

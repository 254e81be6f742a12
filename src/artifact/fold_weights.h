#pragma once
// Inference folding of one component, for training (see fold_weights in
// stitch/artifact.h for the whole artifact).

#include <torch/script.h>

#include <string>

namespace stitch::detail {

/// fold_weights for a model inside a training run that is frozen as a
/// whole: eval mode, BatchNorm folded, conv weights channels-last, `method`
/// kept. Its parameters become constants of its graph. A model that
/// torch::jit::freeze refuses comes back as it is.
torch::jit::Module fold_frozen_model(const torch::jit::Module& model, const std::string& method);

}  // namespace stitch::detail

#pragma once
// The example values stitch feeds a model when nobody gives it any: check's
// shape probes, verify's inputs and bench's inputs are all made here.
//
//   - floating inputs are random (standard normal);
//   - an integer input with a `probe:` value in the spec takes that value in
//     every element;
//   - a lengths input (a 1-D integer input whose name contains "len") takes
//     the length of the sequences beside it: dim 1 of the first floating
//     input with two or more dims, what a caller passes for unpadded
//     sequences (torchaudio's Conformer and wav2vec2 check it);
//   - other integers are small ids (0 or 1), valid for any embedding.

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

namespace stitch {

/// One tensor to make: the input's (or argument's) name, sizes and dtype.
struct ExampleSlot {
  std::string name;
  std::vector<int64_t> sizes;
  at::ScalarType dtype = at::kFloat;
  std::optional<int64_t> probe;  // the spec's `probe:` value, evaluated
};

/// The value every element of slots[i] takes; nullopt when it is random.
std::optional<int64_t> example_fill(const std::vector<ExampleSlot>& slots, size_t i);

/// One tensor per slot, by the rules above.
std::vector<at::Tensor> example_tensors(const std::vector<ExampleSlot>& slots,
                                        at::Generator generator);

/// "feats: float[2, 16, 80] random, lengths: int64[2] all 16"
std::string example_text(const std::vector<ExampleSlot>& slots);

}  // namespace stitch

#pragma once
// Tensor files for `stitch run` and `stitch train`: `.pt` written by Python's
// torch.save (a tensor, or a dict of tensors), `.safetensors`, `.npy`, or a
// folder of `.npy` files (one tensor per file, keyed by file stem).

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

namespace stitch {

/// Named tensors, ordered by name. A file holding a single tensor (a `.npy`,
/// or a `.pt` of one tensor) reads as one entry keyed by the file's stem.
using TensorMap = std::map<std::string, torch::Tensor>;

/// Reads a tensor file; the format follows the extension (`.pt`/`.pth`,
/// `.safetensors`, `.npy`) or, for a directory, every `*.npy` in it.
/// Throws stitch::IoError naming the file and what is wrong with it. Never
/// allocates more than the file can hold: declared sizes are checked against
/// the file size first.
[[nodiscard]] TensorMap read_tensors(const std::filesystem::path& file);

/// Writes tensors; the format follows the extension. `.pt` holding a single
/// entry is written as a bare tensor (what torch.load gives back is a
/// Tensor), several as a dict. `.npy` takes exactly one tensor. Writes to a
/// temporary file in the same folder and renames it, so a failure never
/// leaves a partial file. Throws stitch::IoError.
void write_tensors(const std::filesystem::path& file, const TensorMap& tensors);

/// The file extensions read_tensors and write_tensors know, for help text:
/// ".pt, .pth, .safetensors, .npy" (`last_separator` before the last one).
[[nodiscard]] std::string tensor_file_types(const std::string& last_separator = ", ");

/// Throws stitch::IoError "WHAT holds K NaN or Inf values (the first in
/// sample I)" when a floating tensor has any; `what` names it ("x.pt: 'x'").
void check_finite(const torch::Tensor& tensor, const std::string& what);

}  // namespace stitch

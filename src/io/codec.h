#pragma once
// What the tensor codecs share (codec.cpp): failing with a message, sizes
// checked against overflow, dtype names, tensors from and to bytes. And the
// codecs themselves, one file each: pt.cpp (torch.save's zip and pickle),
// safetensors.cpp, npy.cpp. tensor_io.cpp's table says which extension
// goes to which.

#include <ATen/core/ivalue.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/types.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "stitch/tensor_io.h"

namespace stitch::io_detail {

// Far beyond real tensors; keeps hostile shapes from costing time or memory.
constexpr size_t kMaxDims = 64;

// Codecs throw this; read_tensors and write_tensors put the path in front.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw std::runtime_error(fmt::format(format, std::forward<Args>(args)...));
}

std::string shape_str(c10::IntArrayRef shape);

/// Bytes a tensor of `shape` needs, failing instead of overflowing.
int64_t byte_size(c10::IntArrayRef shape, c10::ScalarType dtype, const std::string& what);

/// A dtype's name in each format.
struct DtypeName {
  c10::ScalarType type;
  const char* safetensors;
  const char* npy;  // nullptr: numpy has no such dtype
};
using NameField = const char* DtypeName::*;

std::optional<c10::ScalarType> dtype_named(std::string_view name, NameField field);
/// nullptr when the format has no name for the dtype.
const char* name_of(c10::ScalarType type, NameField field);
/// Every name the format has, for messages.
std::string all_names(NameField field);

/// `value` as n little-endian bytes.
std::string le_bytes(uint64_t value, int n);
/// A tensor owning a copy of `bytes`, which the caller checked against the shape.
torch::Tensor tensor_from_bytes(std::string_view bytes, c10::ScalarType dtype,
                                c10::IntArrayRef shape);
/// A dense, contiguous CPU tensor holding only `t`'s elements, ready to write.
torch::Tensor writable(const std::string& name, const torch::Tensor& t);
std::string_view bytes_of(const torch::Tensor& t);

// The codecs. `stem` names a file's single tensor.
TensorMap read_pt(std::string_view file, const std::string& stem);
std::string encode_pt(const TensorMap& tensors);
/// A torch.save file of nested dicts (string keys), lists, tuples, tensors,
/// ints, floats, bools, strings and None, through the same checked reader
/// as read_pt; tuples come back as tuples, dicts as GenericDicts. For
/// checkpoints, which Python's torch.load reads as they are.
c10::IValue read_pickled(std::string_view file);
/// Writes such a value (tensors dense and contiguous) as torch.save would.
std::string encode_pickled(const c10::IValue& value);
TensorMap read_safetensors(std::string_view file, const std::string& stem);
std::string encode_safetensors(const TensorMap& tensors);
TensorMap read_npy(std::string_view file, const std::string& stem);
std::string encode_npy(const TensorMap& tensors);

}  // namespace stitch::io_detail

#include "io/codec.h"

#include <fmt/ranges.h>

#include <cstring>

namespace stitch::io_detail {

std::string shape_str(c10::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t byte_size(c10::IntArrayRef shape, c10::ScalarType dtype, const std::string& what) {
  if (shape.size() > kMaxDims) fail("{} has {} dims, over {}", what, shape.size(), kMaxDims);
  int64_t bytes = static_cast<int64_t>(c10::elementSize(dtype));
  for (int64_t dim : shape) {
    if (dim < 0) fail("{} has a negative dimension in shape {}", what, shape_str(shape));
    if (__builtin_mul_overflow(bytes, dim, &bytes)) {
      fail("{} has shape {}, too large to address", what, shape_str(shape));
    }
  }
  return bytes;
}

namespace {
constexpr DtypeName kDtypes[] = {{at::kDouble, "F64", "<f8"}, {at::kFloat, "F32", "<f4"},
                                 {at::kHalf, "F16", "<f2"},   {at::kBFloat16, "BF16", nullptr},
                                 {at::kLong, "I64", "<i8"},   {at::kInt, "I32", "<i4"},
                                 {at::kShort, "I16", "<i2"},  {at::kChar, "I8", "|i1"},
                                 {at::kByte, "U8", "|u1"},    {at::kBool, "BOOL", "|b1"}};
}  // namespace

std::optional<c10::ScalarType> dtype_named(std::string_view name, NameField field) {
  for (const auto& d : kDtypes) {
    if (d.*field != nullptr && name == d.*field) return d.type;
  }
  return std::nullopt;
}

const char* name_of(c10::ScalarType type, NameField field) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return d.*field;
  }
  return nullptr;
}

std::string all_names(NameField field) {
  std::string out;
  for (const auto& d : kDtypes) {
    if (d.*field != nullptr) out += (out.empty() ? "" : " ") + std::string(d.*field);
  }
  return out;
}

std::string le_bytes(uint64_t value, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
  return out;
}

torch::Tensor tensor_from_bytes(std::string_view bytes, c10::ScalarType dtype,
                                c10::IntArrayRef shape) {
  // Bool bytes other than 0/1 are undefined behaviour in LibTorch; normalise.
  auto t = torch::empty(shape, torch::dtype(dtype == at::kBool ? at::kByte : dtype));
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return dtype == at::kBool ? t.ne(0) : t;
}

torch::Tensor writable(const std::string& name, const torch::Tensor& t) {
  if (!t.defined()) fail("tensor '{}' is undefined", name);
  if (t.layout() != at::kStrided || t.is_quantized()) {
    fail("tensor '{}' is not a dense tensor", name);
  }
  auto out = t.detach().to(at::kCPU).contiguous();
  // A slice shares its base's storage, which torch.save would write whole.
  if (out.storage_offset() != 0 || out.storage().nbytes() != out.nbytes()) out = out.clone();
  return out;
}

std::string_view bytes_of(const torch::Tensor& t) {
  return {static_cast<const char*>(t.data_ptr()), t.nbytes()};
}

}  // namespace stitch::io_detail

// .npy: numpy's one-tensor format.

#include <charconv>

#include "io/codec.h"
#include "util/zip_reader.h"

namespace stitch::io_detail {

using detail::read_le;
using detail::slice;

namespace {

const std::string_view kNpyMagic = "\x93NUMPY";

std::string_view trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\n");
  return begin == s.npos ? "" : s.substr(begin, s.find_last_not_of(" \t\n") - begin + 1);
}

/// The text after `'key':` in the Python dict literal numpy writes, such as
/// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
std::string_view npy_field(std::string_view header, const std::string& key) {
  size_t at = header.find("'" + key + "':");
  if (at == header.npos) at = header.find("\"" + key + "\":");
  if (at == header.npos) fail("header has no '{}'", key);
  return trim(header.substr(at + key.size() + 3));
}

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

NpyHeader parse_npy_header(std::string_view header) {
  NpyHeader h;
  const auto descr = npy_field(header, "descr");
  const size_t quote = descr.empty() ? descr.npos : descr.find(descr[0], 1);
  if (descr.empty() || descr[0] == '[') fail("structured dtypes are not supported");
  if ((descr[0] != '\'' && descr[0] != '"') || quote == descr.npos) fail("malformed 'descr'");
  h.descr = descr.substr(1, quote - 1);

  const auto order = npy_field(header, "fortran_order");
  if (order.substr(0, 4) != "True" && order.substr(0, 5) != "False") {
    fail("malformed 'fortran_order'");
  }
  h.fortran_order = order[0] == 'T';

  const auto shape = npy_field(header, "shape");
  const size_t close = shape.find(')');
  if (shape.empty() || shape[0] != '(' || close == shape.npos) fail("malformed 'shape'");
  // "(2, 3)", "(2,)" or "()"; Python 2 numpy wrote longs as "3L".
  for (auto dims = shape.substr(1, close - 1); !trim(dims).empty();) {
    const size_t comma = std::min(dims.find(','), dims.size());
    auto dim = trim(dims.substr(0, comma));
    dims.remove_prefix(std::min(comma + 1, dims.size()));
    if (!dim.empty() && dim.back() == 'L') dim.remove_suffix(1);
    int64_t value = 0;
    const auto [end, error] = std::from_chars(dim.data(), dim.data() + dim.size(), value);
    if (error == std::errc::result_out_of_range) fail("shape has a dimension above 2^63");
    if (error != std::errc() || end != dim.data() + dim.size()) {
      fail("malformed dimension '{}'", dim);
    }
    if (value < 0) fail("shape has a negative dimension {}", value);
    if (h.shape.size() == kMaxDims) fail("shape has over {} dims", kMaxDims);
    h.shape.push_back(value);
  }
  return h;
}

torch::Tensor npy_tensor(std::string_view file) {
  if (file.substr(0, kNpyMagic.size()) != kNpyMagic) fail("not a .npy file (no \\x93NUMPY magic)");
  const auto major = read_le(file, 6, 1), minor = read_le(file, 7, 1);
  if (major < 1 || major > 3) fail("unsupported .npy version {}.{}", major, minor);
  const int length_bytes = major == 1 ? 2 : 4;
  const uint64_t header_size = read_le(file, 8, length_bytes), start = 8 + length_bytes;
  const auto header = parse_npy_header(slice(file, start, header_size));
  if (header.fortran_order) fail("array is in Fortran order; save np.ascontiguousarray(a) instead");
  const auto dtype = dtype_named(header.descr, &DtypeName::npy);
  if (!dtype) {
    fail("unsupported dtype '{}' (supported: {})", header.descr, all_names(&DtypeName::npy));
  }
  const int64_t bytes = byte_size(header.shape, *dtype, "array");
  const std::string_view data = file.substr(start + header_size);
  if (static_cast<uint64_t>(bytes) != data.size()) {
    fail("array of shape {} and dtype '{}' declares {} bytes but the file holds {}",
         shape_str(header.shape), header.descr, bytes, data.size());
  }
  return tensor_from_bytes(data, *dtype, header.shape);
}

}  // namespace

TensorMap read_npy(std::string_view file, const std::string& stem) {
  return {{stem, npy_tensor(file)}};
}

std::string encode_npy(const TensorMap& tensors) {
  if (tensors.size() != 1) {
    fail(".npy holds exactly one tensor, not {}; use .safetensors or .pt", tensors.size());
  }
  const auto t = writable(tensors.begin()->first, tensors.begin()->second);
  const char* descr = name_of(t.scalar_type(), &DtypeName::npy);
  if (descr == nullptr) fail("dtype {} has no .npy equivalent", c10::toString(t.scalar_type()));
  const auto dims = t.sizes();
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}{}), }}",
                                   descr, fmt::join(dims, ", "), dims.size() == 1 ? "," : "");
  // Like numpy: pad with spaces and a newline so the data starts 64-byte aligned.
  header.append(63 - (10 + header.size()) % 64, ' ').push_back('\n');
  return std::string(kNpyMagic) + std::string("\x01\x00", 2) + le_bytes(header.size(), 2) + header +
         std::string(bytes_of(t));
}

}  // namespace stitch::io_detail

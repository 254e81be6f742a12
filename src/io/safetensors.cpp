// .safetensors: an 8-byte header size, a JSON header, then the data.

#include <algorithm>
#include <nlohmann/json.hpp>

#include "io/codec.h"
#include "util/zip_reader.h"

namespace stitch::io_detail {

using detail::read_le;
using detail::slice;

namespace {

/// A JSON value for an error message: scalars as written, containers by
/// kind (dumping a hostile, deeply nested value would recurse without bound).
std::string json_excerpt(const nlohmann::json& j) {
  return j.is_primitive() ? j.dump() : fmt::format("a JSON {}", j.type_name());
}

std::vector<int64_t> json_ints(const nlohmann::json& j, const std::string& what) {
  if (!j.is_array() || j.size() > kMaxDims) {
    fail("{} must be a list of up to {} ints", what, kMaxDims);
  }
  std::vector<int64_t> out;
  for (const auto& v : j) {
    if (v.is_number_integer() && !v.is_number_unsigned()) {
      fail("{} has negative value {}", what, json_excerpt(v));
    }
    if (!v.is_number_unsigned() || v.get<uint64_t>() > INT64_MAX) {
      fail("{} has {}, not an integer below 2^63", what, json_excerpt(v));
    }
    out.push_back(v.get<int64_t>());
  }
  return out;
}

/// One tensor of a .safetensors header, checked against the data section.
struct SafetensorsEntry {
  std::string name;
  c10::ScalarType dtype;
  std::vector<int64_t> shape;
  int64_t begin, end;
};

SafetensorsEntry safetensors_entry(const std::string& name, const nlohmann::json& info,
                                   uint64_t data_size) {
  const std::string what = fmt::format("tensor '{}'", name);
  if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
      !info.contains("data_offsets")) {
    fail("{} needs \"dtype\", \"shape\" and \"data_offsets\"", what);
  }
  const auto& dtype_name = info.at("dtype");
  const auto dtype = dtype_name.is_string()
                         ? dtype_named(dtype_name.get<std::string>(), &DtypeName::safetensors)
                         : std::nullopt;
  if (!dtype) {
    fail("{} has unsupported dtype {} (supported: {})", what, json_excerpt(dtype_name),
         all_names(&DtypeName::safetensors));
  }
  const auto shape = json_ints(info.at("shape"), what + " shape");
  const auto offsets = json_ints(info.at("data_offsets"), what + " data_offsets");
  if (offsets.size() != 2) fail("{} data_offsets must be [begin, end]", what);
  const int64_t bytes = byte_size(shape, *dtype, what);
  if (static_cast<uint64_t>(bytes) > data_size) {
    fail("{} declares {} bytes but the file holds {}", what, bytes, data_size);
  }
  const auto [begin, end] = std::pair(offsets[0], offsets[1]);
  if (begin > end || static_cast<uint64_t>(end) > data_size) {
    fail("{} has data_offsets [{}, {}] outside the {}-byte data section", what, begin, end,
         data_size);
  }
  if (end - begin != bytes) {
    fail("{} has shape {} of {} ({} bytes) but data_offsets [{}, {}] hold {}", what,
         shape_str(shape), dtype_name.get<std::string>(), bytes, begin, end, end - begin);
  }
  return {name, *dtype, shape, begin, end};
}

}  // namespace

TensorMap read_safetensors(std::string_view file, const std::string& /*stem*/) {
  if (file.size() < 8) fail("too short for a .safetensors header ({} bytes)", file.size());
  const uint64_t header_size = read_le(file, 0, 8);
  if (header_size > file.size() - 8) {
    fail("header declares {} bytes but the file holds {}", header_size, file.size() - 8);
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.substr(8, header_size));
  } catch (const nlohmann::json::exception& e) {
    fail("header is not valid JSON: {}", e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  const std::string_view data = file.substr(8 + header_size);

  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name != "__metadata__") entries.push_back(safetensors_entry(name, info, data.size()));
  }
  // Disjoint spans before any tensor is allocated: entries that all claim
  // the same bytes would otherwise allocate the data section many times over.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].begin < entries[i - 1].end) {
      fail("tensors '{}' and '{}' overlap in the data section", entries[i - 1].name,
           entries[i].name);
    }
  }
  TensorMap out;
  for (const auto& e : entries) {
    out[e.name] = tensor_from_bytes(data.substr(e.begin, e.end - e.begin), e.dtype, e.shape);
  }
  return out;
}

std::string encode_safetensors(const TensorMap& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") fail("'__metadata__' is reserved in .safetensors");
    const auto t = writable(name, tensor);
    const char* dtype = name_of(t.scalar_type(), &DtypeName::safetensors);
    if (dtype == nullptr) {
      fail("tensor '{}' has dtype {}, which .safetensors cannot hold", name,
           c10::toString(t.scalar_type()));
    }
    header[name] = {{"dtype", dtype},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {data.size(), data.size() + t.nbytes()}}};
    data.append(bytes_of(t));
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // aligns the data, as the reference writer does
  return le_bytes(json.size(), 8) + json + data;
}

}  // namespace stitch::io_detail

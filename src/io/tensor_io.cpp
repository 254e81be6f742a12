#include "stitch/tensor_io.h"
#include "io/tensor_io_bytes.h"

#include "util/atomic_file.h"
#include "stitch/error.h"
#include "util/zip_reader.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <deque>
#include <optional>
#include <unordered_map>

namespace fs = std::filesystem;

// Every format here stores little-endian bytes, which are copied as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "stitch needs a little-endian host");

namespace stitch {
namespace {

using detail::read_le;
using detail::slice;
using detail::ZipArchive;

// Far beyond real tensors; keeps hostile shapes from costing time or memory.
constexpr size_t kMaxDims = 64;

// Parsers throw this; read_tensors and write_tensors put the path in front.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw std::runtime_error(fmt::format(format, std::forward<Args>(args)...));
}

std::string shape_str(c10::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

/// Bytes a tensor of `shape` needs, failing instead of overflowing.
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

struct DtypeName {
  c10::ScalarType type;
  const char* safetensors;
  const char* npy;  // nullptr: numpy has no such dtype
};
using NameField = const char* DtypeName::*;

constexpr DtypeName kDtypes[] = {
    {at::kDouble, "F64", "<f8"}, {at::kFloat, "F32", "<f4"}, {at::kHalf, "F16", "<f2"},
    {at::kBFloat16, "BF16", nullptr}, {at::kLong, "I64", "<i8"}, {at::kInt, "I32", "<i4"},
    {at::kShort, "I16", "<i2"}, {at::kChar, "I8", "|i1"}, {at::kByte, "U8", "|u1"},
    {at::kBool, "BOOL", "|b1"}};

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

/// A tensor owning a copy of `bytes`, which the caller checked against the shape.
torch::Tensor tensor_from_bytes(std::string_view bytes, c10::ScalarType dtype,
                                c10::IntArrayRef shape) {
  // Bool bytes other than 0/1 are undefined behaviour in LibTorch; normalise.
  auto t = torch::empty(shape, torch::dtype(dtype == at::kBool ? at::kByte : dtype));
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return dtype == at::kBool ? t.ne(0) : t;
}

/// A dense, contiguous CPU tensor holding only `t`'s elements, ready to write.
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

// ---------------------------------------------------------------- safetensors

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
      ? dtype_named(dtype_name.get<std::string>(), &DtypeName::safetensors) : std::nullopt;
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

TensorMap read_safetensors(std::string_view file) {
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
    header[name] = {{"dtype", dtype}, {"shape", t.sizes().vec()},
                    {"data_offsets", {data.size(), data.size() + t.nbytes()}}};
    data.append(bytes_of(t));
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // aligns the data, as the reference writer does
  return le_bytes(json.size(), 8) + json + data;
}

// ----------------------------------------------------------------------- npy

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

torch::Tensor read_npy(std::string_view file) {
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
  return std::string(kNpyMagic) + std::string("\x01\x00", 2) + le_bytes(header.size(), 2) +
         header + std::string(bytes_of(t));
}

// ------------------------------------------------------------------------ pt

/// A Python value in a torch.save pickle. Values live in the Unpickler's
/// arena and point at each other, so cycles and deep nesting are harmless.
struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kStr, kGlobal, kTuple, kList, kDict, kStorage,
                    kTensor };
  Kind kind = Kind::kNone;
  int64_t number = 0;
  std::string text;             // kStr; kGlobal as "module.name"
  std::vector<PyValue*> items;  // kTuple, kList; kDict as key, value, key, ...
  torch::Tensor tensor;         // kStorage: 1-D copy of the storage; kTensor
};
using Kind = PyValue::Kind;

std::string describe(const PyValue& v) {
  constexpr const char* kNames[] = {"None", "a bool", "an int", "a float", "a string", "",
                                    "a tuple", "a list", "a dict", "a storage", "a tensor"};
  return v.kind == Kind::kGlobal ? "'" + v.text + "'" : kNames[static_cast<int>(v.kind)];
}

/// Runs the part of pickle that torch.save emits for tensors and dicts of
/// tensors. LibTorch 1.13's torch::pickle_load lacks SETITEM and BUILD, so it
/// cannot read a one-entry dict or a state_dict, and it trusts stack and memo
/// indices in the file. This one checks every access and caps what it allocates.
class Unpickler {
 public:
  Unpickler(std::string_view pickle, const ZipArchive& zip, size_t file_size)
      : in_(pickle), zip_(zip), budget_(4 * static_cast<int64_t>(file_size) + (1 << 20)) {}

  const PyValue& run() {
    for (;;) {
      const auto op = static_cast<uint8_t>(arg(1));
      switch (op) {
        case 0x80: arg(1); break;  // PROTO
        case 0x95: arg(8); break;  // FRAME, a size hint
        case '(': marks_.push_back(stack_.size()); break;
        case '.': return *pop();
        case 'N': push(Kind::kNone); break;
        case 0x88: case 0x89: push(Kind::kBool, op == 0x88); break;
        case 'K': push(Kind::kInt, arg(1)); break;
        case 'M': push(Kind::kInt, arg(2)); break;
        case 'J': push(Kind::kInt, static_cast<int32_t>(arg(4))); break;
        case 0x8a: push(Kind::kInt, long1()); break;
        case 'G': arg(8); push(Kind::kFloat); break;
        case 'X': push(Kind::kStr, 0, bytes(arg(4))); break;
        case 0x8c: push(Kind::kStr, 0, bytes(arg(1))); break;
        case 0x8d: push(Kind::kStr, 0, bytes(arg(8))); break;
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module(line());
          push(Kind::kGlobal, 0, module + "." + std::string(line()));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const auto* name = pop();
          push(Kind::kGlobal, 0, pop()->text + "." + name->text);
          break;
        }
        case ')': push(Kind::kTuple); break;
        case ']': push(Kind::kList); break;
        case '}': push(Kind::kDict); break;
        case 't': case 0x85: case 0x86: case 0x87: {  // TUPLE, TUPLE1..3
          std::vector<PyValue*> items(op == 't' ? 0 : op - 0x84);
          for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop();
          if (op == 't') items = pop_mark();
          push(Kind::kTuple)->items = std::move(items);
          break;
        }
        case 'a': add_to(Kind::kList, {pop()}); break;
        case 'e': add_to(Kind::kList, pop_mark()); break;
        case 's': {
          auto* value = pop();
          add_to(Kind::kDict, {pop(), value});
          break;
        }
        case 'u': add_to(Kind::kDict, pop_mark()); break;
        case 'q': memo_[arg(1)] = top(); break;
        case 'r': memo_[arg(4)] = top(); break;
        case 0x94: memo_[memo_.size()] = top(); break;
        case 'h': stack_.push_back(memo(arg(1))); break;
        case 'j': stack_.push_back(memo(arg(4))); break;
        case 'Q': stack_.push_back(persistent_load(*pop())); break;
        case 'R': case 0x81: {  // REDUCE, NEWOBJ
          const auto* args = pop();
          stack_.push_back(reduce(*pop(), *args));
          break;
        }
        case 'b': pop(), top(); break;  // BUILD sets attributes, e.g. a state_dict's _metadata
        default: fail("unsupported pickle opcode 0x{:02x} at byte {}", op, pos_ - 1);
      }
    }
  }

 private:
  uint64_t arg(int n) { return read_le(in_, std::exchange(pos_, pos_ + n), n); }
  std::string_view bytes(uint64_t n) { return slice(in_, std::exchange(pos_, pos_ + n), n); }
  std::string_view line() {
    const size_t end = in_.find('\n', pos_);
    if (end == in_.npos) fail("corrupt pickle: unterminated name");
    const size_t start = std::exchange(pos_, end + 1);
    return in_.substr(start, end - start);
  }
  int64_t long1() {
    const int n = static_cast<int>(arg(1));
    if (n == 0) return 0;
    if (n > 8) fail("pickle holds an integer too large for 64 bits");
    const int shift = 64 - 8 * n;  // sign-extends from n bytes
    return static_cast<int64_t>(arg(n) << shift) >> shift;
  }

  PyValue* make(Kind kind, int64_t number = 0, std::string_view text = {}) {
    if (arena_.size() >= (1u << 22)) fail("pickle holds over 4M values; not a dict of tensors");
    charge(static_cast<int64_t>(text.size()));  // memoized strings can be concatenated again and again
    return &arena_.emplace_back(PyValue{kind, number, std::string(text), {}, {}});
  }
  PyValue* push(Kind kind, int64_t number = 0, std::string_view text = {}) {
    return stack_.emplace_back(make(kind, number, text));
  }
  PyValue* top() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) {
      fail("corrupt pickle: stack underflow at byte {}", pos_);
    }
    return stack_.back();
  }
  PyValue* pop() {
    auto* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<PyValue*> pop_mark() {
    if (marks_.empty()) fail("corrupt pickle: no mark at byte {}", pos_);
    std::vector<PyValue*> items(stack_.begin() + marks_.back(), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  PyValue* memo(uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail("corrupt pickle: unknown memo key {}", key);
    return it->second;
  }
  void add_to(Kind kind, const std::vector<PyValue*>& items) {
    auto* target = top();
    if (target->kind != kind || items.size() % (kind == Kind::kDict ? 2 : 1) != 0) {
      fail("corrupt pickle: cannot add items to {} at byte {}", describe(*target), pos_);
    }
    target->items.insert(target->items.end(), items.begin(), items.end());
  }
  // Shared storages, broadcast views and memoized strings could otherwise
  // expand a small file.
  void charge(int64_t bytes) {
    budget_ -= bytes;
    if (budget_ < 0) fail("its contents would take over 4 times the file size in memory");
  }

  /// torch.save's storage id: ('storage', torch.FloatStorage, key, location, numel).
  PyValue* persistent_load(const PyValue& id) {
    const auto& a = id.items;
    if (id.kind != Kind::kTuple || a.size() != 5 || a[0]->text != "storage" ||
        a[1]->kind != Kind::kGlobal || a[2]->kind != Kind::kStr || a[4]->kind != Kind::kInt) {
      fail("unsupported persistent id in pickle");
    }
    const std::string& key = a[2]->text;
    if (const auto it = storages_.find(key); it != storages_.end()) return it->second;
    std::optional<c10::ScalarType> dtype;
    for (auto type : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                      at::kShort, at::kChar, at::kByte, at::kBool, at::kComplexFloat,
                      at::kComplexDouble}) {
      if (a[1]->text == fmt::format("torch.{}Storage", c10::toString(type))) dtype = type;
    }
    if (!dtype) fail("unsupported storage type {}", a[1]->text);
    const int64_t bytes = byte_size({a[4]->number}, *dtype, "storage '" + key + "'");
    const auto record = zip_.find("data/" + key);
    if (!record) fail("storage '{}' is missing from the archive", key);
    if (static_cast<uint64_t>(bytes) > record->size()) {
      fail("storage '{}' declares {} bytes but the file holds {}", key, bytes, record->size());
    }
    charge(bytes);
    auto* storage = make(Kind::kStorage);
    storage->tensor = tensor_from_bytes(record->substr(0, bytes), *dtype, {a[4]->number});
    return storages_[key] = storage;
  }

  static std::vector<int64_t> ints(const PyValue& v) {
    if (v.kind != Kind::kTuple) fail("tensor sizes and strides must be tuples");
    std::vector<int64_t> out;
    for (const auto* item : v.items) {
      if (item->kind != Kind::kInt || out.size() == kMaxDims) {
        fail("tensor sizes and strides must be tuples of up to {} ints", kMaxDims);
      }
      out.push_back(item->number);
    }
    return out;
  }

  /// _rebuild_tensor_v2(storage, offset, sizes, strides, ...): a view into a
  /// storage, checked to stay inside it before it is copied out.
  PyValue* rebuild_tensor(const std::vector<PyValue*>& a) {
    if (a.size() < 4 || a[0]->kind != Kind::kStorage || a[1]->kind != Kind::kInt) {
      fail("corrupt pickle: bad arguments to _rebuild_tensor");
    }
    const auto& storage = a[0]->tensor;
    const auto sizes = ints(*a[2]), strides = ints(*a[3]);
    const int64_t offset = a[1]->number;
    if (sizes.size() != strides.size() || offset < 0) fail("tensor has bad strides or offset");
    int64_t last = offset;  // the highest element the view reads
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] < 0 || strides[i] < 0) fail("tensor has negative sizes or strides");
    }
    const bool empty = std::count(sizes.begin(), sizes.end(), 0) > 0;
    for (size_t i = 0; i < sizes.size() && !empty; ++i) {
      int64_t step = 0;
      if (__builtin_mul_overflow(sizes[i] - 1, strides[i], &step) ||
          __builtin_add_overflow(last, step, &last)) {
        fail("tensor view of shape {} is too large", shape_str(sizes));
      }
    }
    if (!empty && last >= storage.numel()) {
      fail("tensor view of shape {} (strides {}, offset {}) reaches past its {}-element storage",
           shape_str(sizes), shape_str(strides), offset, storage.numel());
    }
    charge(byte_size(sizes, storage.scalar_type(), "tensor"));
    auto* out = make(Kind::kTensor);
    out->tensor = storage.as_strided(sizes, strides, offset).clone(at::MemoryFormat::Contiguous);
    return out;
  }

  PyValue* reduce(const PyValue& fn, const PyValue& args) {
    if (fn.kind != Kind::kGlobal || args.kind != Kind::kTuple) fail("corrupt pickle: bad REDUCE");
    const std::string& name = fn.text;
    if (name == "collections.OrderedDict" && args.items.empty()) return make(Kind::kDict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      return rebuild_tensor(args.items);
    }
    // A Parameter wraps its tensor; C++'s pickle_save tags dicts with their type.
    if ((name == "torch._utils._rebuild_parameter" ||
         name == "torch._utils._rebuild_parameter_with_state" ||
         name == "torch.jit._pickle.restore_type_tag") && !args.items.empty()) {
      return args.items[0];
    }
    fail("holds {}; save a tensor or a dict of tensors (e.g. model.state_dict())", name);
  }

  std::string_view in_;
  size_t pos_ = 0;
  const ZipArchive& zip_;
  int64_t budget_;
  std::deque<PyValue> arena_;
  std::vector<PyValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyValue*> memo_;
  std::unordered_map<std::string, PyValue*> storages_;
};

TensorMap read_pt(std::string_view file, const std::string& stem) {
  if (file.substr(0, 4) != "PK\x03\x04") {
    if (!file.empty() && static_cast<uint8_t>(file[0]) == 0x80) {
      fail("written in torch.save's legacy format; re-save it with a current torch.save");
    }
    fail("not a torch.save file (expected a zip archive)");
  }
  const ZipArchive zip(file);
  if (const auto order = zip.find("byteorder"); order && *order != "little") {
    fail("tensors are big-endian");
  }
  const auto pickle = zip.find("data.pkl");
  if (!pickle) fail("archive has no data.pkl; was it written by torch.save?");
  Unpickler unpickler(*pickle, zip, file.size());
  const PyValue& root = unpickler.run();
  if (root.kind == Kind::kTensor) return {{stem, root.tensor}};
  if (root.kind != Kind::kDict) fail("holds {}, not a tensor or a dict of tensors", describe(root));
  TensorMap out;
  for (size_t i = 0; i < root.items.size(); i += 2) {
    const PyValue &key = *root.items[i], &value = *root.items[i + 1];
    if (key.kind != Kind::kStr) fail("has a dict key that is {}, not a string", describe(key));
    if (value.kind != Kind::kTensor) {
      fail("entry '{}' is {}, not a tensor", key.text, describe(value));
    }
    out[key.text] = value.tensor;
  }
  return out;
}

std::string encode_pt(const TensorMap& tensors) {
  c10::IValue value;
  if (tensors.size() == 1) {
    value = writable(tensors.begin()->first, tensors.begin()->second);
  } else {
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& [name, tensor] : tensors) dict.insert(name, writable(name, tensor));
    value = dict;
  }
  // torch::jit::pickle_save, without its type tags: PyTorch 2.6's torch.load
  // (weights_only=True by default) refuses torch.jit._pickle.restore_type_tag.
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* data, size_t n) { pickle.insert(pickle.end(), data, data + n); },
      nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::string bytes;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(),
                                     writer);
  writer.writeEndOfFile();
  return bytes;
}

// ------------------------------------------------------------------ dispatch

enum class Format { kPt, kSafetensors, kNpy };

std::string lower_extension(const fs::path& file) {
  std::string ext = file.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

Format format_of(const fs::path& file) {
  const std::string ext = lower_extension(file);
  if (ext == ".pt" || ext == ".pth") return Format::kPt;
  if (ext == ".safetensors") return Format::kSafetensors;
  if (ext == ".npy") return Format::kNpy;
  throw IoError(fmt::format("{}: unknown tensor file type '{}' (expected .pt, .pth, .safetensors, "
                            ".npy or a folder of .npy files)", file.string(), ext));
}

/// Runs `fn`, turning any failure into an IoError that starts with `file`.
template <typename Fn>
auto guarded(const fs::path& file, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw IoError(file.string() + ": " + detail::short_message(e));
  } catch (const std::bad_alloc&) {
    throw IoError(file.string() + ": out of memory");
  } catch (const std::exception& e) {
    throw IoError(file.string() + ": " + detail::first_line(e.what()));
  }
}

TensorMap read_npy_folder(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (lower_extension(it->path()) == ".npy" && it->is_regular_file(ec)) {
      files.push_back(it->path());
    }
  }
  if (ec) throw IoError(fmt::format("{}: cannot list folder ({})", dir.string(), ec.message()));
  if (files.empty()) throw IoError(fmt::format("{}: folder holds no .npy files", dir.string()));
  TensorMap out;
  for (const auto& file : files) {
    auto entry = *read_tensors(file).begin();
    if (!out.insert(entry).second) {
      throw IoError(fmt::format("{}: two files give tensor name '{}'", dir.string(), entry.first));
    }
  }
  return out;
}

}  // namespace

namespace detail {

TensorMap read_tensor_bytes(std::string_view bytes, const fs::path& name) {
  const Format format = format_of(name);
  const std::string stem = name.stem().string();
  return guarded(name, [&]() -> TensorMap {
    switch (format) {
      case Format::kPt: return read_pt(bytes, stem);
      case Format::kSafetensors: return read_safetensors(bytes);
      case Format::kNpy: return {{stem, read_npy(bytes)}};
    }
    throw std::logic_error("unknown format");
  });
}

}  // namespace detail

TensorMap read_tensors(const fs::path& file) {
  std::error_code ec;
  if (fs::is_directory(file, ec)) return read_npy_folder(file);
  if (!fs::exists(file, ec)) {
    throw IoError(fmt::format("{}: no such file or directory", file.string()));
  }
  format_of(file);  // an unknown extension is an error before the file is read
  return detail::read_tensor_bytes(read_file(file), file);
}

void write_tensors(const fs::path& file, const TensorMap& tensors) {
  const Format format = format_of(file);
  const std::string bytes = guarded(file, [&] {
    switch (format) {
      case Format::kPt: return encode_pt(tensors);
      case Format::kSafetensors: return encode_safetensors(tensors);
      case Format::kNpy: return encode_npy(tensors);
    }
    throw std::logic_error("unknown format");
  });
  write_file_atomically(file, bytes);
}

void check_finite(const torch::Tensor& tensor, const std::string& what) {
  if (!tensor.is_floating_point()) return;
  const auto bad = tensor.isfinite().logical_not();
  if (!bad.any().item<bool>()) return;
  const int64_t count = bad.sum().item<int64_t>();
  const int64_t first = bad.flatten().nonzero()[0][0].item<int64_t>();
  const int64_t per_sample =
      tensor.dim() > 0 && tensor.size(0) > 0 ? tensor.numel() / tensor.size(0) : 1;
  throw IoError(fmt::format("{} holds {} NaN or Inf values (the first in sample {})", what, count,
                            first / per_sample));
}

}  // namespace stitch

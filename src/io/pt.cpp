// .pt and .pth: torch.save's zip archive, its pickle read by a small unpickler that
// accepts only tensors, dicts, lists and tuples of them.

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <cstring>
#include <deque>
#include <unordered_map>

#include "io/codec.h"
#include "util/zip_reader.h"

namespace stitch::io_detail {

using detail::read_le;
using detail::slice;
using detail::ZipArchive;

namespace {

/// A Python value in a torch.save pickle. Values live in the Unpickler's
/// arena and point at each other, so cycles and deep nesting are harmless.
struct PyValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kStr,
    kGlobal,
    kTuple,
    kList,
    kDict,
    kStorage,
    kTensor
  };
  Kind kind = Kind::kNone;
  int64_t number = 0;
  std::string text;             // kStr; kGlobal as "module.name"
  std::vector<PyValue*> items;  // kTuple, kList; kDict as key, value, key, ...
  torch::Tensor tensor;         // kStorage: 1-D copy of the storage; kTensor
  double real = 0.0;            // kFloat
};
using Kind = PyValue::Kind;

std::string describe(const PyValue& v) {
  constexpr const char* kNames[] = {"None",    "a bool", "an int", "a float",   "a string", "",
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
        case 0x80:
          arg(1);
          break;  // PROTO
        case 0x95:
          arg(8);
          break;  // FRAME, a size hint
        case '(':
          marks_.push_back(stack_.size());
          break;
        case '.':
          return *pop();
        case 'N':
          push(Kind::kNone);
          break;
        case 0x88:
        case 0x89:
          push(Kind::kBool, op == 0x88);
          break;
        case 'K':
          push(Kind::kInt, arg(1));
          break;
        case 'M':
          push(Kind::kInt, arg(2));
          break;
        case 'J':
          push(Kind::kInt, static_cast<int32_t>(arg(4)));
          break;
        case 0x8a:
          push(Kind::kInt, long1());
          break;
        case 'G': {  // BINFLOAT: a big-endian double
          const uint64_t bits = __builtin_bswap64(arg(8));
          double value = 0.0;
          std::memcpy(&value, &bits, sizeof value);
          push(Kind::kFloat)->real = value;
          break;
        }
        case 'X':
          push(Kind::kStr, 0, bytes(arg(4)));
          break;
        case 0x8c:
          push(Kind::kStr, 0, bytes(arg(1)));
          break;
        case 0x8d:
          push(Kind::kStr, 0, bytes(arg(8)));
          break;
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
        case ')':
          push(Kind::kTuple);
          break;
        case ']':
          push(Kind::kList);
          break;
        case '}':
          push(Kind::kDict);
          break;
        case 't':
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE, TUPLE1..3
          std::vector<PyValue*> items(op == 't' ? 0 : op - 0x84);
          for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop();
          if (op == 't') items = pop_mark();
          push(Kind::kTuple)->items = std::move(items);
          break;
        }
        case 'a':
          add_to(Kind::kList, {pop()});
          break;
        case 'e':
          add_to(Kind::kList, pop_mark());
          break;
        case 's': {
          auto* value = pop();
          add_to(Kind::kDict, {pop(), value});
          break;
        }
        case 'u':
          add_to(Kind::kDict, pop_mark());
          break;
        case 'q':
          memo_[arg(1)] = top();
          break;
        case 'r':
          memo_[arg(4)] = top();
          break;
        case 0x94:
          memo_[memo_.size()] = top();
          break;
        case 'h':
          stack_.push_back(memo(arg(1)));
          break;
        case 'j':
          stack_.push_back(memo(arg(4)));
          break;
        case 'Q':
          stack_.push_back(persistent_load(*pop()));
          break;
        case 'R':
        case 0x81: {  // REDUCE, NEWOBJ
          const auto* args = pop();
          stack_.push_back(reduce(*pop(), *args));
          break;
        }
        case 'b':
          pop(), top();
          break;  // BUILD sets attributes, e.g. a state_dict's _metadata
        default:
          fail("unsupported pickle opcode 0x{:02x} at byte {}", op, pos_ - 1);
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
    charge(
        static_cast<int64_t>(text.size()));  // memoized strings can be concatenated again and again
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
    for (auto type :
         {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kShort,
          at::kChar, at::kByte, at::kBool, at::kComplexFloat, at::kComplexDouble}) {
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
         name == "torch.jit._pickle.restore_type_tag") &&
        !args.items.empty()) {
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

/// Opens torch.save's archive, runs its pickle and hands `use` the root
/// value (which lives as long as the call).
template <typename Use>
auto with_pickle_root(std::string_view file, Use use) {
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
  return use(unpickler.run());
}

/// Deeper than any checkpoint; keeps a hostile file's nesting (or a cycle
/// through the memo) from recursing without end.
constexpr int kMaxPickleDepth = 32;

c10::IValue to_ivalue(const PyValue& v, int depth) {
  if (depth > kMaxPickleDepth) fail("nests values over {} deep", kMaxPickleDepth);
  switch (v.kind) {
    case Kind::kNone:
      return {};
    case Kind::kBool:
      return v.number != 0;
    case Kind::kInt:
      return v.number;
    case Kind::kFloat:
      return v.real;
    case Kind::kStr:
      return v.text;
    case Kind::kTensor:
      return v.tensor;
    case Kind::kList: {
      c10::impl::GenericList list(c10::AnyType::get());
      for (const auto* item : v.items) list.push_back(to_ivalue(*item, depth + 1));
      return list;
    }
    case Kind::kTuple: {
      std::vector<c10::IValue> items;
      for (const auto* item : v.items) items.push_back(to_ivalue(*item, depth + 1));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case Kind::kDict: {
      c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
      for (size_t i = 0; i < v.items.size(); i += 2) {
        const PyValue& key = *v.items[i];
        if (key.kind != Kind::kStr) fail("has a dict key that is {}, not a string", describe(key));
        dict.insert_or_assign(key.text, to_ivalue(*v.items[i + 1], depth + 1));
      }
      return dict;
    }
    default:
      fail("holds {}, which a checkpoint never holds", describe(v));
  }
}

}  // namespace

TensorMap read_pt(std::string_view file, const std::string& stem) {
  return with_pickle_root(file, [&](const PyValue& root) {
    if (root.kind == Kind::kTensor) return TensorMap{{stem, root.tensor}};
    if (root.kind != Kind::kDict) {
      fail("holds {}, not a tensor or a dict of tensors", describe(root));
    }
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
  });
}

c10::IValue read_pickled(std::string_view file) {
  return with_pickle_root(file, [](const PyValue& root) { return to_ivalue(root, 0); });
}

std::string encode_pt(const TensorMap& tensors) {
  if (tensors.size() == 1) {
    return encode_pickled(writable(tensors.begin()->first, tensors.begin()->second));
  }
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : tensors) dict.insert(name, writable(name, tensor));
  return encode_pickled(dict);
}

std::string encode_pickled(const c10::IValue& value) {
  // torch::jit::pickle_save, without its type tags: PyTorch 2.6's torch.load
  // (weights_only=True by default) refuses torch.jit._pickle.restore_type_tag.
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* data, size_t n) { pickle.insert(pickle.end(), data, data + n); }, nullptr,
      nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
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

}  // namespace stitch::io_detail

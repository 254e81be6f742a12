#include "load/component.h"

#include <caffe2/serialize/read_adapter_interface.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "load/archive_check.h"
#include "load/load_failure.h"
#include "load/merge_weights.h"
#include "load/surgery.h"
#include "stitch/compat.h"
#include "stitch/runtime.h"
#include "util/atomic_file.h"
#include "util/deadline.h"

namespace fs = std::filesystem;

namespace stitch {

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += fmt::format("{:02x}", digest[i]);
  }
  return hex;
}

namespace {

/// The bytes of a file as LibTorch's archive reader reads them, without the
/// copy an istringstream would make (a 100 MB model would take 300 MB).
class BytesReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BytesReader(std::shared_ptr<const std::string> bytes) : bytes_(std::move(bytes)) {}
  size_t size() const override { return bytes_->size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_->size()) return 0;
    n = std::min<size_t>(n, bytes_->size() - pos);
    std::memcpy(buf, bytes_->data() + pos, n);
    return n;
  }

 private:
  std::shared_ptr<const std::string> bytes_;
};

/// Reads and loads one TorchScript file for model `spec` (errors start with
/// the spec's location and name the model); `sha256` gets the file's hash.
torch::jit::Module read_torchscript(const fs::path& file, const ModelSpec& spec,
                                    std::string& sha256) {
  std::shared_ptr<const std::string> shared;
  try {
    shared = std::make_shared<const std::string>(read_file(file));
  } catch (const IoError& e) {
    throw ModelError(fmt::format("{}model '{}': {}", spec.loc.prefix(), spec.name, e.what()));
  }
  const std::string& bytes = *shared;
  sha256 = sha256_hex(bytes);
  if (auto why = not_torchscript(file, bytes)) {
    throw ModelError(spec.loc.prefix() + *why);
  }
  try {
    check_torchscript_archive(bytes);
  } catch (const std::bad_alloc&) {
    throw ModelError(fmt::format("{}cannot load {}: out of memory while checking its code",
                                 spec.loc.prefix(), file.string()));
  } catch (const std::exception& e) {
    throw ModelError(
        fmt::format("{}cannot load {}: {}", spec.loc.prefix(), file.string(), e.what()));
  }
  register_compat_operators();
  try {
    detail::Deadline deadline(probe_seconds(), [&] {
      return fmt::format(
          "{}model '{}': loading {} did not end within {:g} s (a model's code runs as it loads: "
          "a __setstate__ that never returns?)\n"
          "  fix: if the file is only slow to load, let it take longer: STITCH_PROBE_SECONDS=600 "
          "(0: no limit)",
          spec.loc.prefix(), spec.name, file.string(), probe_seconds());
    });
    return torch::jit::load(std::make_shared<BytesReader>(shared));
  } catch (const c10::Error& e) {
    throw ModelError(spec.loc.prefix() +
                     load_failure(file, bytes, detail::short_message(e), false));
  } catch (const std::exception& e) {
    // TorchScript's compiler throws a std::exception whose message goes on
    // with the source excerpt.
    throw ModelError(spec.loc.prefix() +
                     load_failure(file, bytes, detail::first_line(e.what()), true));
  }
}

/// The merge of spec.merge's files, written into the first (loaded for it
/// alone); `sources` gets each file's hash (the base's last), `summary`
/// what was merged.
torch::jit::Module read_merge(const ModelSpec& spec, std::vector<std::string>& sources,
                              std::string& summary) {
  const MergeOptions& options = spec.merge_options;
  try {
    options.validate(spec.merge.size());
  } catch (const Error& e) {
    throw ModelError(fmt::format("{}model '{}': {}", spec.loc.prefix(), spec.name, e.what()));
  }
  std::vector<MergeSource> models;
  for (const auto& file : spec.merge) {
    sources.emplace_back();
    models.push_back({read_torchscript(file, spec, sources.back()), file.filename().string()});
  }
  std::optional<MergeSource> base;
  if (options.needs_base()) {
    sources.emplace_back();
    base = MergeSource{read_torchscript(options.base(), spec, sources.back()),
                       options.base().filename().string()};
  }
  try {
    MergeSummary done;
    torch::jit::Module merged =
        merge_weights(models, base ? &*base : nullptr, options, &done, MergeInto::first);
    summary = done.str(options.method(), models[0].label);
    return merged;
  } catch (const Error& e) {
    throw ModelError(fmt::format("{}model '{}': {}", spec.loc.prefix(), spec.name, e.what()));
  }
}

}  // namespace

std::string merge_identity(const MergeOptions& options, const std::vector<std::string>& sha256s) {
  std::string text = options.str();
  for (const auto& sha : sha256s) text += " " + sha;
  return sha256_hex(text);
}

std::optional<std::string> source_identity(const ModelSpec& spec) {
  auto sha256 = [](const fs::path& file) -> std::optional<std::string> {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return std::nullopt;
    return sha256_hex(read_file(file));
  };
  if (spec.merge.empty()) return sha256(spec.file);
  std::vector<fs::path> files = spec.merge;
  if (spec.merge_options.needs_base()) files.push_back(spec.merge_options.base());
  std::vector<std::string> sha256s;
  for (const auto& file : files) {
    auto sha = sha256(file);
    if (!sha) return std::nullopt;
    sha256s.push_back(*sha);
  }
  return merge_identity(spec.merge_options, sha256s);
}

Component load_component(const ModelSpec& spec) {
  Component c;
  c.spec = spec;
  if (spec.merge.empty()) {
    c.module = read_torchscript(spec.file, spec, c.sha256);
  } else {
    c.module = read_merge(spec, c.merge_sha256, c.merge_summary);
    c.sha256 = merge_identity(spec.merge_options, c.merge_sha256);
  }
  if (!c.module.find_method(spec.method)) {
    throw ModelError(fmt::format("{}model '{}' ({}) has no method '{}'", spec.loc.prefix(),
                                 spec.name, spec.file.filename().string(), spec.method));
  }
  apply_surgery(c);
  c.module.eval();
  return c;
}

std::vector<c10::Argument> Component::arguments() const {
  auto method = module.get_method(spec.method);
  const auto& args = method.function().getSchema().arguments();
  return {args.begin() + 1, args.end()};  // drop self
}

c10::IValue Component::run(const std::vector<c10::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  return module.get_method(spec.method)(inputs);
}

// ---- What a model expects ----------------------------------------------------

namespace {

using JitNode = torch::jit::Node;
using JitValue = torch::jit::Value;

/// self.a.b.weight as a path of attribute names, or nullopt.
std::optional<std::vector<std::string>> attr_path(JitValue* v) {
  std::vector<std::string> path;
  while (v->node()->kind() == c10::prim::GetAttr) {
    path.insert(path.begin(), v->node()->s(c10::attr::name));
    v = v->node()->input(0);
  }
  if (v->node()->kind() != c10::prim::Param) {
    return std::nullopt;
  }
  return path;
}

std::optional<torch::Tensor> tensor_at(const torch::jit::Module& root,
                                       const std::vector<std::string>& path) {
  torch::jit::Module m = root;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (!m.hasattr(path[i])) return std::nullopt;
    auto attr = m.attr(path[i]);
    if (!attr.isModule()) return std::nullopt;
    m = attr.toModule();
  }
  if (path.empty() || !m.hasattr(path.back())) return std::nullopt;
  auto attr = m.attr(path.back());
  if (!attr.isTensor()) return std::nullopt;
  return attr.toTensor();
}

std::string layer_of(const std::vector<std::string>& path) {
  std::string out;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    out += (i ? "." : "") + path[i];
  }
  return out;
}

/// The one consumer of `v`, if it has exactly one real use.
JitNode* only_use(JitValue* v) {
  JitNode* user = nullptr;
  for (const auto& use : v->uses()) {
    if (user != nullptr && user != use.user) return nullptr;
    user = use.user;
  }
  return user;
}

}  // namespace

std::optional<Expectation> expected_input(const Component& c, size_t index) {
  std::shared_ptr<torch::jit::Graph> graph;
  try {
    graph = c.module.get_method(c.spec.method).graph()->copy();
    torch::jit::Inline(*graph);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (index + 1 >= graph->inputs().size()) return std::nullopt;
  JitValue* v = graph->inputs()[index + 1];
  Expectation e;
  // Follow the input through shape-keeping or flattening ops to the first
  // layer with weights.
  for (int hops = 0; hops < 8; ++hops) {
    JitNode* n = only_use(v);
    if (n == nullptr) return std::nullopt;
    const std::string kind = n->kind().toQualString();
    auto weight = [&](size_t input) -> std::optional<std::pair<std::string, torch::Tensor>> {
      if (n->inputs().size() <= input) return std::nullopt;
      auto path = attr_path(n->input(input));
      if (!path) return std::nullopt;
      auto t = tensor_at(c.module, *path);
      if (!t) return std::nullopt;
      return std::make_pair(layer_of(*path), *t);
    };
    if (kind == "aten::flatten" || kind == "aten::contiguous" || kind == "aten::dropout" ||
        kind == "aten::relu") {
      e.flattened = e.flattened || kind == "aten::flatten";
      v = n->output();
      continue;
    }
    if (kind == "aten::linear") {
      auto w = weight(1);
      if (!w || w->second.dim() != 2) return std::nullopt;
      e.layer = w->first;
      e.description = fmt::format("Linear(in_features={})", w->second.size(1));
      e.shape = {N, w->second.size(1)};
      return e;
    }
    if (kind == "aten::_convolution" || kind == "aten::conv1d" || kind == "aten::conv2d" ||
        kind == "aten::conv3d") {
      auto w = weight(1);
      if (!w || w->second.dim() < 3) return std::nullopt;
      e.layer = w->first;
      int64_t dims = w->second.dim() - 2;
      e.description = fmt::format("Conv{}d(in_channels={})", dims, w->second.size(1));
      e.shape = {N, w->second.size(1)};
      for (int64_t i = 0; i < dims; ++i)
        e.shape.push_back(Dim::symbol(i ? "W" : (dims == 1 ? "L" : "H")));
      return e;
    }
    if (kind == "aten::batch_norm") {
      auto w = weight(1);
      if (!w) return std::nullopt;
      e.layer = w->first;
      e.description = fmt::format("BatchNorm(num_features={})", w->second.size(0));
      e.shape = {N, w->second.size(0)};
      return e;
    }
    if (kind == "aten::layer_norm") {
      auto w = weight(2);
      if (!w) return std::nullopt;
      e.layer = w->first;
      e.description = fmt::format("LayerNorm({})", w->second.size(0));
      e.shape = {N, w->second.size(0)};
      return e;
    }
    if (kind == "aten::embedding") {
      auto w = weight(0);
      if (!w) return std::nullopt;
      e.layer = w->first;
      e.description = fmt::format("Embedding({}, {}) over integer indices", w->second.size(0),
                                  w->second.size(1));
      e.shape = {N, Dim::symbol("L")};
      return e;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace stitch

// The tensor file formats, one row each, and reading and writing by
// extension. The codecs are in pt.cpp, safetensors.cpp and npy.cpp.

#include "stitch/tensor_io.h"

#include <fmt/format.h>

#include <cctype>

#include "io/codec.h"
#include "io/tensor_io_bytes.h"
#include "stitch/error.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

// Every format here stores little-endian bytes, which are copied as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "stitch needs a little-endian host");

namespace stitch {

namespace {

using namespace io_detail;

struct TensorFormat {
  std::vector<std::string> extensions;  // lower case, with the dot
  TensorMap (*read)(std::string_view bytes, const std::string& stem);
  std::string (*write)(const TensorMap& tensors);
};

const std::vector<TensorFormat>& formats() {
  static const std::vector<TensorFormat> kFormats = {
      {{".pt", ".pth"}, read_pt, encode_pt},
      {{".safetensors"}, read_safetensors, encode_safetensors},
      {{".npy"}, read_npy, encode_npy},
  };
  return kFormats;
}

/// The folder form: every file of this extension, one tensor each.
const char* const kFolderExtension = ".npy";

std::string lower_extension(const fs::path& file) {
  std::string ext = file.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

const TensorFormat& format_of(const fs::path& file) {
  const std::string ext = lower_extension(file);
  for (const auto& format : formats()) {
    for (const auto& e : format.extensions) {
      if (e == ext) return format;
    }
  }
  throw IoError(
      fmt::format("{}: unknown tensor file type '{}' (expected {} or a folder of {} files)",
                  file.string(), ext, tensor_file_types(), kFolderExtension));
}

TensorMap read_folder(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (lower_extension(it->path()) == kFolderExtension && it->is_regular_file(ec)) {
      files.push_back(it->path());
    }
  }
  if (ec) throw IoError(fmt::format("{}: cannot list folder ({})", dir.string(), ec.message()));
  if (files.empty()) {
    throw IoError(fmt::format("{}: folder holds no {} files", dir.string(), kFolderExtension));
  }
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

std::string tensor_file_types(const std::string& last_separator) {
  std::vector<std::string> all;
  for (const auto& format : formats()) {
    all.insert(all.end(), format.extensions.begin(), format.extensions.end());
  }
  std::string out;
  for (size_t i = 0; i < all.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == all.size() ? last_separator : ", ") + all[i];
  }
  return out;
}

namespace detail {

TensorMap read_tensor_bytes(std::string_view bytes, const fs::path& name) {
  const TensorFormat& format = format_of(name);
  return with_context<IoError>(name.string(),
                               [&] { return format.read(bytes, name.stem().string()); });
}

}  // namespace detail

TensorMap read_tensors(const fs::path& file) {
  std::error_code ec;
  if (fs::is_directory(file, ec)) return read_folder(file);
  if (!fs::exists(file, ec)) {
    throw IoError(fmt::format("{}: no such file or directory", file.string()));
  }
  format_of(file);  // an unknown extension is an error before the file is read
  return detail::read_tensor_bytes(read_file(file), file);
}

void write_tensors(const fs::path& file, const TensorMap& tensors) {
  const TensorFormat& format = format_of(file);
  const std::string bytes =
      with_context<IoError>(file.string(), [&] { return format.write(tensors); });
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

#pragma once
// read_tensors for bytes already in memory, for the fuzz targets and tests.

#include <filesystem>
#include <string_view>

#include "stitch/tensor_io.h"

namespace stitch::detail {

/// Reads `bytes` as read_tensors reads the file `name`: its extension picks
/// the format, its stem names a single tensor, errors start with it.
/// Throws stitch::IoError.
TensorMap read_tensor_bytes(std::string_view bytes, const std::filesystem::path& name);

}  // namespace stitch::detail

#pragma once
// Writing output files so that a failure never leaves a partial file and never
// touches an earlier file of the same name: write beside it, then rename.

#include <filesystem>
#include <functional>
#include <string>

namespace stitch {

/// Calls `write(tmp)` with a temporary path in the same folder as `target`,
/// then renames tmp onto target. On any failure the temporary file is
/// removed, `target` is left as it was, and stitch::IoError is thrown.
void write_atomically(const std::filesystem::path& target,
                      const std::function<void(const std::filesystem::path&)>& write);

/// write_atomically for bytes already in memory.
void write_file_atomically(const std::filesystem::path& target,
                           const std::string& bytes);

/// Reads a whole file; stitch::IoError if it is missing, a directory or
/// unreadable.
std::string read_file(const std::filesystem::path& file);

}  // namespace stitch

#pragma once
// Reading input files without blocking or running out of memory, and writing
// output files so that a failure never leaves a partial file and never
// touches an earlier file of the same name: write beside it, then rename.

#include <filesystem>
#include <functional>
#include <string>

namespace stitch {

/// Takes bytes, as the writer functions of LibTorch's serializers do
/// (torch::jit::ExportModule, torch::serialize::OutputArchive::save_to).
using ByteSink = std::function<size_t(const void* data, size_t size)>;

/// Calls `write(sink)`, the sink appending to a new temporary file in the
/// same folder as `target` (a symlink at `target` is followed, so the link
/// stays a link), flushes it to disk, then renames it onto the target. On
/// any failure (an exception of any type included) the temporary file is
/// removed, `target` is left as it was, and stitch::IoError is thrown.
/// Only regular files are written: a directory, device or FIFO at `target`
/// is refused before anything is created.
///
/// The sink reports every byte as taken even after a write failed (a full
/// disk, a file size limit): LibTorch's zip writer, told of a short write,
/// throws from its destructor and so aborts the process. The failure is
/// thrown once `write` returns instead.
void write_atomically(const std::filesystem::path& target,
                      const std::function<void(const ByteSink&)>& write);

/// write_atomically for bytes already in memory.
void write_file_atomically(const std::filesystem::path& target, const std::string& bytes);

/// Reads a whole regular file; stitch::IoError if it is missing, a
/// directory, a device, a FIFO or a socket (reading those could block or
/// never end), bigger than this machine's memory, or unreadable.
std::string read_file(const std::filesystem::path& file);

}  // namespace stitch

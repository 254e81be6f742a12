#pragma once
// What stitch checks in a TorchScript archive before LibTorch reads it:
// that no entry makes LibTorch allocate more than the file can hold, that
// its code nests no deeper than LibTorch's parser survives, and that its
// code calls no file operator (unless the user allows them). Also what the
// archive holds, read without running any of it (inspect --archive).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stitch/archive_report.h"

namespace stitch {

/// How deep TorchScript code may nest (brackets, or blocks of 2-space
/// indentation). torch.jit.save writes a few levels; LibTorch's parser
/// recurses once per level and overflows the stack at a few thousand.
constexpr int kMaxCodeNesting = 200;
/// What the deflated entries (code) may declare in all, inflated: this many
/// times the file's size, plus kInflationSlack bytes. torch.jit.save's code
/// deflates by 2-5x; LibTorch allocates what an entry declares.
constexpr int kMaxInflation = 64;
constexpr size_t kInflationSlack = size_t{16} << 20;

/// Throws std::runtime_error saying what is wrong. An archive stitch's own
/// zip reader cannot read is left to LibTorch, which refuses it.
void check_torchscript_archive(std::string_view bytes);

/// The first call in TorchScript code of an operator that reads or writes
/// files, as "torch.from_file, line 8"; nothing when there is none.
std::optional<std::string> file_operator_call(std::string_view code);

/// What the archive holds (ArchiveReport, without its file name), from
/// its zip entries alone. Never throws: a problem goes in
/// ArchiveReport::problem.
ArchiveReport read_archive_contents(std::string_view bytes);

}  // namespace stitch

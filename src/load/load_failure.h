#pragma once
// Why a model file did not load, in words a user can act on: what the file
// is (a torch.export .pt2 program, a torch.save state_dict or pickled
// module, text, a truncated archive...) and how to make a TorchScript file
// of it. LibTorch's own message never reaches the user as it is.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace stitch {

/// The error text for a file that is not TorchScript at all, judged by its
/// content before LibTorch reads it: a torch.export program (.pt2), a
/// torch.save file (state_dict, pickled module), a plain pickle, text.
/// nullopt when it may be a TorchScript archive.
std::optional<std::string> not_torchscript(const std::filesystem::path& file,
                                           std::string_view bytes);

/// The error text (first line and `fix:` lines) for `file`, whose bytes are
/// `bytes`, when torch::jit::load failed with `why` (its first line);
/// `in_code`: the failure came from compiling the archive's TorchScript code
/// (not from reading the archive).
std::string load_failure(const std::filesystem::path& file, std::string_view bytes,
                         const std::string& why, bool in_code);

}  // namespace stitch

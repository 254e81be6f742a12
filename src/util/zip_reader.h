#pragma once
// Bounded reading of untrusted bytes: slices and little-endian integers that
// fail instead of reading past the end, and the zip archives that torch.save
// and torch.jit.save write. Errors are
// std::runtime_error without a file name; callers put the file in front.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace stitch::detail {

/// `n` bytes at `pos`, failing if `bytes` ends first.
std::string_view slice(std::string_view bytes, uint64_t pos, uint64_t n);

/// The `n`-byte little-endian unsigned integer at `pos` (n <= 8).
uint64_t read_le(std::string_view bytes, uint64_t pos, int n);

/// The stored (uncompressed) zip archives that torch.save and torch.jit.save
/// write. Every entry is bounds-checked against the bytes before anything is
/// read, so nothing is allocated beyond the entry names. Entries are named
/// without the archive's top folder ("archive/data.pkl" -> "data.pkl").
class ZipArchive {
 public:
  explicit ZipArchive(std::string_view zip);

  /// The entry's bytes, a view into the zip; nullopt when there is no such
  /// entry. A compressed entry is an error (torch.jit.save compresses only
  /// its code files, which stitch never reads this way).
  std::optional<std::string_view> find(const std::string& name) const;

  /// Whether there is an entry of that name, stored or compressed.
  bool has(const std::string& name) const {
    return stored_.count(name) > 0 || compressed_.count(name) > 0;
  }

 private:
  std::unordered_map<std::string, std::string_view> stored_;
  std::unordered_set<std::string> compressed_;
};

}  // namespace stitch::detail

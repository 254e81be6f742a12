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

namespace stitch::detail {

/// `n` bytes at `pos`, failing if `bytes` ends first.
std::string_view slice(std::string_view bytes, uint64_t pos, uint64_t n);

/// The `n`-byte little-endian unsigned integer at `pos` (n <= 8).
uint64_t read_le(std::string_view bytes, uint64_t pos, int n);

/// The zip archives that torch.save and torch.jit.save write: entries
/// stored, and (torch.jit.save's code files) deflated. Every entry is bounds-checked against the
/// bytes before anything is read, so nothing is allocated beyond the entry names. Entries are named
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

  /// A compressed entry (deflated, method 8, unless the zip lies): its
  /// bytes in the zip and the size it declares.
  struct Deflated {
    std::string_view data;
    uint64_t size = 0;
    uint64_t method = 8;
  };
  const std::unordered_map<std::string, std::string_view>& stored() const { return stored_; }
  const std::unordered_map<std::string, Deflated>& deflated() const { return compressed_; }

  /// A deflated entry's bytes, inflated; fails when they are not the size
  /// it declares (never allocating more than that).
  std::string inflate(const Deflated& entry) const;

 private:
  std::unordered_map<std::string, std::string_view> stored_;
  std::unordered_map<std::string, Deflated> compressed_;
};

}  // namespace stitch::detail

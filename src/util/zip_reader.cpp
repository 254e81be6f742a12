#include "util/zip_reader.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace stitch::detail {

namespace {

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw std::runtime_error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace

std::string_view slice(std::string_view bytes, uint64_t pos, uint64_t n) {
  if (pos > bytes.size() || n > bytes.size() - pos) {
    fail("truncated: needs {} bytes at offset {} but the file ends at {}", n, pos, bytes.size());
  }
  return bytes.substr(pos, n);
}

uint64_t read_le(std::string_view bytes, uint64_t pos, int n) {
  const std::string_view b = slice(bytes, pos, n);
  uint64_t value = 0;
  for (int i = n - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(b[i]);
  return value;
}

ZipArchive::ZipArchive(std::string_view zip) {
  // The end-of-central-directory record is in the last 22 + 65535 bytes.
  if (zip.size() < 22) fail("not a zip archive");
  uint64_t eocd = zip.size() - 22;
  const uint64_t stop = eocd > 65535 ? eocd - 65535 : 0;
  while (read_le(zip, eocd, 4) != 0x06054b50) {
    if (eocd-- == stop) fail("not a zip archive (no end of central directory)");
  }
  uint64_t count = read_le(zip, eocd + 10, 2), pos = read_le(zip, eocd + 16, 4);
  if (count == 0xFFFF || pos == 0xFFFFFFFF) {  // the real values are in the zip64 record
    if (eocd < 20 || read_le(zip, eocd - 20, 4) != 0x07064b50) fail("corrupt zip64 locator");
    const uint64_t record = read_le(zip, eocd - 12, 8);
    if (read_le(zip, record, 4) != 0x06064b50) fail("corrupt zip64 end of central directory");
    count = read_le(zip, record + 32, 8);
    pos = read_le(zip, record + 48, 8);
  }
  for (uint64_t i = 0; i < count; ++i) {
    if (read_le(zip, pos, 4) != 0x02014b50) fail("corrupt zip central directory");
    uint64_t compressed = read_le(zip, pos + 20, 4), size = read_le(zip, pos + 24, 4);
    uint64_t local = read_le(zip, pos + 42, 4);
    const uint64_t name_size = read_le(zip, pos + 28, 2), extra_size = read_le(zip, pos + 30, 2);
    const std::string name(slice(zip, pos + 46, name_size));
    // The zip64 extra field holds 8-byte values for the fields set to 0xFFFFFFFF.
    const uint64_t extra_end = pos + 46 + name_size + extra_size;
    for (uint64_t e = pos + 46 + name_size; e + 4 <= extra_end; e += 4 + read_le(zip, e + 2, 2)) {
      if (read_le(zip, e, 2) != 1) continue;
      uint64_t field = e + 4;
      for (uint64_t* value : {&size, &compressed, &local}) {
        if (*value == 0xFFFFFFFF) *value = read_le(zip, std::exchange(field, field + 8), 8);
      }
    }
    const std::string key = name.substr(name.find('/') + 1);
    if (read_le(zip, local, 4) != 0x04034b50) fail("corrupt zip entry '{}'", name);
    const uint64_t data = local + 30 + read_le(zip, local + 26, 2) + read_le(zip, local + 28, 2);
    const uint64_t method = read_le(zip, pos + 10, 2);
    if (method == 0 && compressed == size) {
      stored_[key] = slice(zip, data, size);
    } else {
      // Deflated (method 8), or another method, which inflate() refuses.
      compressed_[key] = Deflated{slice(zip, data, compressed), size, method};
    }
    pos = extra_end + read_le(zip, pos + 32, 2);
  }
}

std::string ZipArchive::inflate(const Deflated& entry) const {
  if (entry.method != 8) fail("a zip entry is compressed by method {}, not deflate", entry.method);
  std::string out(entry.size, '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail("cannot inflate a zip entry");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(entry.data.data()));
  z.avail_in = static_cast<uInt>(std::min<uint64_t>(entry.data.size(), UINT32_MAX));
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(std::min<uint64_t>(out.size(), UINT32_MAX));
  const int status = ::inflate(&z, Z_FINISH);
  const uint64_t produced = z.total_out;
  inflateEnd(&z);
  if (status != Z_STREAM_END || produced != entry.size) {
    fail("a deflated zip entry does not inflate to the {} bytes it declares", entry.size);
  }
  return out;
}

std::optional<std::string_view> ZipArchive::find(const std::string& name) const {
  if (compressed_.count(name)) fail("zip entry '{}' is compressed, which PyTorch never does", name);
  const auto it = stored_.find(name);
  if (it == stored_.end()) return std::nullopt;
  return it->second;
}

}  // namespace stitch::detail

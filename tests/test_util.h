#pragma once
// Shared helpers for stitch's C++ tests.

#include <gtest/gtest.h>
#include <stitch/error.h>
#include <torch/script.h>
#include <unistd.h>

#include <filesystem>
#include <string>

/// Expects `expr` to throw `type` with `substring` in its message.
#define EXPECT_THROW_TYPE_WITH(expr, type, substring)                                         \
  do {                                                                                        \
    try {                                                                                     \
      (void)(expr);                                                                           \
      ADD_FAILURE() << "expected " #type " containing \"" << (substring) << "\" from " #expr; \
    } catch (const type& e_) {                                                                \
      EXPECT_NE(std::string(e_.what()).find(substring), std::string::npos)                    \
          << "message: " << e_.what() << "\nexpected to contain: " << (substring);            \
    }                                                                                         \
  } while (0)

/// Expects `expr` to throw with `substring` in its message.
#define EXPECT_THROW_WITH(expr, substring) EXPECT_THROW_TYPE_WITH(expr, std::exception, substring)

/// Expects `expr` to throw stitch::IoError with `substring` in its message.
#define EXPECT_IO_ERROR(expr, substring) EXPECT_THROW_TYPE_WITH(expr, stitch::IoError, substring)

namespace stitch::testing {

/// `v` as 8 little-endian bytes.
inline std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

/// The bytes of a .safetensors file: header size, JSON header, data.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

/// A model exported by tests/fixtures/make_fixtures.py.
inline std::string fixture(const std::string& name) {
  return (std::filesystem::path(STITCH_FIXTURES) / name).string();
}

/// A fresh temporary folder, removed with the object.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("stitch_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

/// Seeds LibTorch's RNG so every test sees the same random inputs.
class SeededTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(0); }
};

}  // namespace stitch::testing

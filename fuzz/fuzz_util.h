#pragma once
// Shared by the fuzz targets: a stitch::Error is the expected answer to a bad
// input; anything else (another exception, a sanitizer report, a signal)
// escapes to libFuzzer, which reports it as a crash with the input.

#include <cstddef>
#include <cstdint>
#include <string>

#include "stitch/error.h"

namespace stitch::fuzz {

inline std::string text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

template <typename Fn>
void expect_only_stitch_errors(Fn&& fn) {
  try {
    fn();
  } catch (const stitch::Error&) {
  }
}

}  // namespace stitch::fuzz

#pragma once
// The two checks the library makes, spelled out once:
//   STITCH_CHECK(cond, ErrorType, "format", args...)
//     a mistake in what the user gave (a spec, a file, a call): throws
//     ErrorType (a stitch::Error) with the formatted message;
//   STITCH_INTERNAL_ASSERT(cond, "format", args...)
//     a bug in stitch itself: throws stitch::Error saying so, with where.

#include <fmt/format.h>

#include <string>

#include "stitch/error.h"

namespace stitch::detail {

/// Throws stitch::Error "internal error in FILE:LINE (COND): MESSAGE ...".
[[noreturn]] void internal_error(const char* file, int line, const char* condition,
                                 const std::string& message);

}  // namespace stitch::detail

#define STITCH_CHECK(cond, ErrorType, ...)                  \
  do {                                                      \
    if (!(cond)) throw ErrorType(fmt::format(__VA_ARGS__)); \
  } while (0)

#define STITCH_INTERNAL_ASSERT(cond, ...)                                                    \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      ::stitch::detail::internal_error(__FILE__, __LINE__, #cond, fmt::format(__VA_ARGS__)); \
    }                                                                                        \
  } while (0)

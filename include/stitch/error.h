#pragma once
// Errors stitch throws. The first line of what() says what failed; further
// lines (indented) give detail and `fix:` hints. The CLI prints it after
// "error: " and exits with status 1.

#include <stdexcept>
#include <string>

namespace stitch {

/// Where in a spec file something was written. Empty for C++ API graphs.
struct SourceLoc {
  std::string file;
  int line = 0;    // 1-based; 0 means unknown
  int column = 0;  // 1-based

  bool known() const { return line > 0; }
  /// "spec.yaml:9:10: " or "" when unknown.
  std::string prefix() const;
};

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The spec (YAML or graph expressions) is malformed or refers to unknown
/// names.
class SpecError : public Error {
 public:
  using Error::Error;
};

/// Shapes or dtypes do not fit together.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A model file could not be loaded, or a layer path does not exist.
class ModelError : public Error {
 public:
  using Error::Error;
};

/// Reading or writing a file failed.
class IoError : public Error {
 public:
  using Error::Error;
};

/// Runs `fn`, turning c10::Error and std::exception other than stitch::Error
/// into stitch::Error with `context` in front. Keeps stitch::Error as is.
template <typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn());

}  // namespace stitch

#include "stitch/detail/error_inl.h"

#pragma once
// Errors stitch throws. The first line of what() says what failed; further
// lines (indented) give detail and `fix:` hints. The CLI prints it after
// "error: " and exits with status 1.

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

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

  /// "OWNER has no input 'NAME'; its inputs are: a, b" (OWNER: "the model",
  /// "the spec").
  [[nodiscard]] static Error no_such_input(const std::string& owner, const std::string& name,
                                           const std::vector<std::string>& inputs);
};

/// The spec (YAML or graph expressions) is malformed or refers to unknown
/// names.
class SpecError : public Error {
 public:
  using Error::Error;

  /// "LOC unknown WHAT 'NAME'" (then " in WHERE" if given), then
  /// "  fix: did you mean 'X'?" when one of `candidates` is close, else
  /// `otherwise` (a further line, or "").
  [[nodiscard]] static SpecError unknown_name(const SourceLoc& loc, const std::string& what,
                                              const std::string& name,
                                              const std::vector<std::string>& candidates,
                                              const std::string& otherwise = "",
                                              const std::string& where = "");
};

/// Shapes or dtypes do not fit together.
class ShapeError : public Error {
 public:
  using Error::Error;

  /// "LOC WHAT" then "  fix: FIX".
  [[nodiscard]] static ShapeError with_fix(const SourceLoc& loc, const std::string& what,
                                           const std::string& fix);
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

  /// "FILE: WHAT".
  [[nodiscard]] static IoError at(const std::filesystem::path& file, const std::string& what);
};

/// Runs `fn`, turning c10::Error, std::bad_alloc and std::exception other
/// than stitch::Error into an `E` (stitch::Error unless given) with `context`
/// in front: "CONTEXT: the error's useful line". Keeps stitch::Error as is.
/// The one place LibTorch's exceptions become stitch's.
template <typename E = Error, typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn());

}  // namespace stitch

#include "stitch/detail/error_inl.h"

#include "core/identifiers.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "core/artifact_names.h"

namespace stitch {

bool is_reserved_word(const std::string& name) {
  static const char* kReserved[] = {
      "self", "and",   "as",     "assert",   "break", "class", "continue", "def",   "del",
      "elif", "else",  "except", "finally",  "for",   "from",  "global",   "if",    "import",
      "in",   "is",    "lambda", "nonlocal", "not",   "or",    "pass",     "raise", "return",
      "try",  "while", "with",   "yield",    "None",  "True",  "False",    "torch", "Tensor",
      "List", "Dict",  "Tuple",  "Optional", "int",   "float", "bool",     "str",   "print"};
  return std::find(std::begin(kReserved), std::end(kReserved), name) != std::end(kReserved);
}

bool is_module_attribute(const std::string& name) {
  return name == "training" || name == "forward" || name == kSpecAttr || name == kManifestAttr ||
         (!name.empty() && name[0] == '_');
}

bool is_valid_name(const std::string& name) {
  return is_identifier(name) && !is_reserved_word(name) && name.rfind("__", 0) != 0;
}

void check_identifier(const std::string& what, const std::string& name, const SourceLoc& loc) {
  if (!is_identifier(name)) {
    throw SpecError(
        fmt::format("{}{} name '{}' is not an identifier (letters, digits and _, not starting "
                    "with a digit)",
                    loc.prefix(), what, name));
  }
  if (is_reserved_word(name)) {
    throw SpecError(
        fmt::format("{}{} name '{}' is reserved; choose another name", loc.prefix(), what, name));
  }
  if (name.rfind("__", 0) == 0) {
    throw SpecError(
        fmt::format("{}{} name '{}' may not start with '__'", loc.prefix(), what, name));
  }
}

}  // namespace stitch

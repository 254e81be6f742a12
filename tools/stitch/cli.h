#pragma once
// Shared pieces of the command-line tool: exit codes, --input parsing, and
// the registration function of each command (one file per command).

#include <stitch/stitch.h>

#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stitch::cli {

enum class ExitCode : int { kOk = 0, kError = 1, kUsage = 2 };

/// An `--input` value: NAME=VALUE, or a bare VALUE (name empty).
struct NamedArg {
  std::string name;
  std::string value;
};
NamedArg split_named(const std::string& text);

/// The --input values by name; a bare VALUE (allowed only alone) is keyed "".
/// UsageError for "=VALUE" and for a name given twice.
std::map<std::string, std::string> named_inputs(const std::vector<std::string>& args);

/// "1x3x224x224" -> {1, 3, 224, 224}; UsageError-style stitch::Error if
/// malformed.
std::vector<int64_t> parse_shape(const std::string& text);

/// Option checks whose message reads well ("--batch: must be a whole number
/// >= 1, got 0"); CLI11's own print the range as two doubles.
CLI::Validator at_least(int64_t low);
CLI::Validator in_range(int64_t low, int64_t high);

/// Every command registers itself on the app.
void add_compose(CLI::App& app);
void add_chain(CLI::App& app);
void add_check(CLI::App& app);
void add_run(CLI::App& app);
void add_verify(CLI::App& app);
void add_graph(CLI::App& app);
void add_inspect(CLI::App& app);
void add_train(CLI::App& app);
void add_bench(CLI::App& app);
void add_merge(CLI::App& app);
void add_export_checkpoint(CLI::App& app);
/// `completion` and `manpage`: registered last, they describe the others.
void add_completion(CLI::App& app);

/// Thrown for command-line misuse found after parsing (exit status 2).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace stitch::cli

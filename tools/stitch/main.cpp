// stitch: combine PyTorch models. main is a thin try/catch around the
// commands; each command lives in its own file.

#include <fmt/format.h>
#include <torch/version.h>

#include <algorithm>
#include <csignal>
#include <iostream>

#include "cli.h"

namespace stitch::cli {

NamedArg split_named(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos) return {"", text};
  return {text.substr(0, eq), text.substr(eq + 1)};
}

/// "42" -> 42; nothing for "", "4x", "abc" or a number out of range.
std::optional<int64_t> whole_number(const std::string& text) {
  size_t used = 0;
  try {
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return static_cast<int64_t>(v);
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::map<std::string, std::string> named_inputs(const std::vector<std::string>& args) {
  std::map<std::string, std::string> out;
  for (const auto& arg : args) {
    const NamedArg a = split_named(arg);
    if (a.name.empty() && arg.find('=') != std::string::npos) {
      throw UsageError(fmt::format("--input '{}': the name before '=' is empty", arg));
    }
    if (a.name.empty() && args.size() != 1) {
      throw UsageError(fmt::format(
          "--input '{}' has no name; with several --input, name each: --input NAME=VALUE", arg));
    }
    if (!out.emplace(a.name, a.value).second) {
      throw UsageError(fmt::format("--input {} is given twice", a.name));
    }
  }
  return out;
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> dims;
  size_t start = 0;
  while (start <= text.size()) {
    size_t x = text.find('x', start);
    std::string part = text.substr(start, x == std::string::npos ? std::string::npos : x - start);
    const std::optional<int64_t> v = whole_number(part);
    if (!v || *v <= 0 || *v > kMaxSize) {
      throw UsageError(
          fmt::format("invalid shape '{}': write sizes joined by x, like 1x3x224x224", text));
    }
    dims.push_back(*v);
    if (x == std::string::npos) break;
    start = x + 1;
  }
  return dims;
}

namespace {
std::string check_integer(const std::string& text, int64_t low, int64_t high) {
  const std::optional<int64_t> v = whole_number(text);
  const std::string range =
      high == kMaxSize ? fmt::format(">= {}", low) : fmt::format("from {} to {}", low, high);
  if (!v || *v < low || *v > high) {
    return fmt::format("must be a whole number {}, got '{}'", range, text);
  }
  return "";
}
}  // namespace

CLI::Validator at_least(int64_t low) {
  return in_range(low, kMaxSize);
}

CLI::Validator in_range(int64_t low, int64_t high) {
  return CLI::Validator(
      [=](std::string& text) { return check_integer(text, low, high); },
      high == kMaxSize ? fmt::format("INT>={}", low) : fmt::format("INT in [{} - {}]", low, high));
}

}  // namespace stitch::cli

/// "see 'stitch run --help'": the command the usage error is about.
std::string help_hint(const CLI::App* app) {
  std::string command = "stitch";
  for (const CLI::App* sub : app->get_subcommands()) command += " " + sub->get_name();
  return fmt::format("  see '{} --help'", command);
}

/// The first word that is not an option must name a command: `stitch frobnicate`
/// says so, instead of CLI11's "A subcommand is required".
void check_command_name(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (argc == 1) {
    throw stitch::cli::UsageError(fmt::format(
        "no command given; the commands are {} (stitch --help)", fmt::join(names, ", ")));
  }
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--threads") {
      ++i;  // its value
      continue;
    }
    if (!word.empty() && word[0] == '-') continue;
    if (std::find(names.begin(), names.end(), word) != names.end()) return;
    throw stitch::cli::UsageError(
        fmt::format("unknown command '{}'; the commands are {}", word, fmt::join(names, ", ")));
  }
}

int main(int argc, char** argv) {
  using stitch::cli::ExitCode;
  // A file size limit (ulimit -f) would otherwise kill stitch mid-write;
  // ignored, the write fails with EFBIG and stitch reports it.
  std::signal(SIGXFSZ, SIG_IGN);
  // Likewise a closed pipe (stitch inspect M.pt | head -1): the write fails
  // and stitch says so below, rather than ending by a signal.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"stitch: combine PyTorch models into one TorchScript file"};
  app.require_subcommand(1);
  app.fallthrough();  // --threads after the command too: stitch bench M.pt --threads 2
  app.failure_message([](const CLI::App* app, const CLI::Error& e) {
    return fmt::format("error: {}\n{}\n", stitch::detail::terminal_safe(e.what()), help_hint(app));
  });
  app.set_version_flag("--version",
                       fmt::format("stitch {} (LibTorch {})", stitch::version(), TORCH_VERSION));
  int threads = 0;
  app.add_option("--threads", threads,
                 "intra-op threads (default: STITCH_THREADS or every usable core)")
      ->check(stitch::cli::at_least(0));
  stitch::cli::add_compose(app);
  stitch::cli::add_chain(app);
  stitch::cli::add_check(app);
  stitch::cli::add_run(app);
  stitch::cli::add_verify(app);
  stitch::cli::add_graph(app);
  stitch::cli::add_inspect(app);
  stitch::cli::add_train(app);
  stitch::cli::add_bench(app);
  stitch::cli::add_merge(app);
  stitch::cli::add_export_checkpoint(app);
  stitch::cli::add_completion(app);
  // --threads belongs to stitch itself; say so in every command's --help.
  for (CLI::App* command : app.get_subcommands([](CLI::App*) { return true; })) {
    command->footer(
        "Options of stitch itself, before or after the command:\n"
        "  --threads INT  intra-op threads (default: STITCH_THREADS or every usable core)");
  }
  app.parse_complete_callback([&] { stitch::set_threads(threads); });
  try {
    check_command_name(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the usage error
    return code == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  } catch (const stitch::cli::UsageError& e) {
    std::cerr << "error: " << stitch::detail::terminal_safe(e.what()) << "\n";
    return static_cast<int>(ExitCode::kUsage);
  } catch (const stitch::Error& e) {
    std::cerr << "error: " << stitch::detail::terminal_safe(e.what()) << "\n";
    return static_cast<int>(ExitCode::kError);
  } catch (const c10::Error& e) {
    std::cerr << "error: " << stitch::detail::terminal_safe(stitch::detail::short_message(e))
              << "\n";
    return static_cast<int>(ExitCode::kError);
  } catch (const std::exception& e) {
    std::cerr << "error: " << stitch::detail::terminal_safe(stitch::detail::first_line(e.what()))
              << "\n";
    return static_cast<int>(ExitCode::kError);
  }
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "error: could not write to standard output (closed early?)\n";
    return static_cast<int>(ExitCode::kError);
  }
  return static_cast<int>(ExitCode::kOk);
}

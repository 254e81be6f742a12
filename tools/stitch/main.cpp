// stitch: combine PyTorch models. main is a thin try/catch around the
// commands; each command lives in its own file.

#include "cli.h"

#include <fmt/format.h>

#include <csignal>
#include <iostream>

namespace stitch::cli {

NamedArg split_named(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos) return {"", text};
  return {text.substr(0, eq), text.substr(eq + 1)};
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> dims;
  size_t start = 0;
  while (start <= text.size()) {
    size_t x = text.find('x', start);
    std::string part = text.substr(start, x == std::string::npos ? std::string::npos : x - start);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v <= 0 || v > kMaxSize) {
      throw UsageError(fmt::format(
          "invalid shape '{}': write sizes joined by x, like 1x3x224x224", text));
    }
    dims.push_back(v);
    if (x == std::string::npos) break;
    start = x + 1;
  }
  return dims;
}

}  // namespace stitch::cli

int main(int argc, char** argv) {
  using stitch::cli::ExitCode;
  // A file size limit (ulimit -f) would otherwise kill stitch mid-write;
  // ignored, the write fails with EFBIG and stitch reports it.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"stitch: combine PyTorch models into one TorchScript file"};
  app.require_subcommand(1);
  app.fallthrough();  // --threads after the command too: stitch bench M.pt --threads 2
  app.failure_message([](const CLI::App* app, const CLI::Error& e) {
    return fmt::format("error: {}\nRun '{} --help' for more information.\n", e.what(),
                       app->get_name());
  });
  app.set_version_flag("--version", std::string("stitch ") + stitch::version());
  int threads = 0;
  app.add_option("--threads", threads,
                 "intra-op threads (default: STITCH_THREADS or every usable core)")
      ->check(CLI::NonNegativeNumber);
  stitch::cli::add_compose(app);
  stitch::cli::add_chain(app);
  stitch::cli::add_check(app);
  stitch::cli::add_run(app);
  stitch::cli::add_verify(app);
  stitch::cli::add_graph(app);
  stitch::cli::add_inspect(app);
  stitch::cli::add_train(app);
  stitch::cli::add_bench(app);
  app.parse_complete_callback([&] { stitch::set_threads(threads); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the usage error
    return code == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  } catch (const stitch::cli::UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(ExitCode::kUsage);
  } catch (const stitch::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(ExitCode::kError);
  } catch (const c10::Error& e) {
    std::cerr << "error: " << stitch::detail::short_message(e) << "\n";
    return static_cast<int>(ExitCode::kError);
  } catch (const std::exception& e) {
    std::cerr << "error: " << stitch::detail::first_line(e.what()) << "\n";
    return static_cast<int>(ExitCode::kError);
  }
  return static_cast<int>(ExitCode::kOk);
}

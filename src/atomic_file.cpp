#include "atomic_file.h"

#include "stitch/error.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace stitch {

namespace {

fs::path temporary_beside(const fs::path& target) {
  std::random_device rd;
  auto name = fmt::format(".{}.tmp-{}-{:08x}", target.filename().string(),
                          ::getpid(), rd());
  return target.parent_path() / name;
}

void check_output_folder(const fs::path& target) {
  auto folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw IoError(fmt::format("cannot write {}: folder {} does not exist",
                              target.string(), folder.string()));
  }
  if (fs::is_directory(target, ec)) {
    throw IoError(fmt::format("cannot write {}: it is a directory", target.string()));
  }
}

}  // namespace

void write_atomically(const fs::path& target,
                      const std::function<void(const fs::path&)>& write) {
  check_output_folder(target);
  const fs::path tmp = temporary_beside(target);
  auto discard = [&] {
    std::error_code ignored;
    fs::remove(tmp, ignored);
  };
  try {
    write(tmp);
  } catch (const Error& e) {
    discard();
    throw IoError(fmt::format("cannot write {}: {}", target.string(), e.what()));
  } catch (const std::exception& e) {
    discard();
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw IoError(fmt::format("cannot write {}: {}", target.string(), what));
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    discard();
    throw IoError(fmt::format("cannot write {}: {}", target.string(), ec.message()));
  }
}

void write_file_atomically(const fs::path& target, const std::string& bytes) {
  write_atomically(target, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) {
      throw IoError(std::strerror(errno));
    }
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      throw IoError(fmt::format("write failed ({})", std::strerror(errno)));
    }
    out.close();
    if (!out) {
      throw IoError(fmt::format("write failed ({})", std::strerror(errno)));
    }
  });
}

std::string read_file(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    throw IoError(fmt::format("{}: no such file", file.string()));
  }
  if (fs::is_directory(file, ec)) {
    throw IoError(fmt::format("{}: is a directory, expected a file", file.string()));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw IoError(fmt::format("{}: cannot open ({})", file.string(), std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    throw IoError(fmt::format("{}: read failed", file.string()));
  }
  return buffer.str();
}

}  // namespace stitch

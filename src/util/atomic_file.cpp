#include "util/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "stitch/error.h"

namespace fs = std::filesystem;

namespace stitch {

namespace {

/// "a FIFO (named pipe)" for the kinds of file stitch neither reads nor writes.
const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string human_bytes(uint64_t n) {
  if (n >= (uint64_t(1) << 30)) return fmt::format("{:.1f} GB", double(n) / double(1 << 30));
  if (n >= (uint64_t(1) << 20)) return fmt::format("{:.1f} MB", double(n) / double(1 << 20));
  return fmt::format("{} bytes", n);
}

uint64_t physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : UINT64_MAX;
}

/// Closes a file descriptor when it goes out of scope.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

/// The file an output really goes to: `target`, or what a symlink at
/// `target` points to. Refuses anything but a regular file or a new name in
/// an existing folder.
fs::path output_file(const fs::path& target) {
  std::error_code ec;
  fs::path file = target;
  if (fs::is_symlink(target, ec)) {
    fs::path resolved = fs::weakly_canonical(target, ec);
    if (!ec) file = resolved;
  }
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw IoError(
        fmt::format("cannot write {}: it is a directory\n  fix: name a file in it, like {}",
                    target.string(), (target / "model.pt").string()));
  }
  if (::stat(file.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    throw IoError(
        fmt::format("cannot write {}: it is {}\n"
                    "  stitch writes its outputs to regular files only",
                    target.string(), kind_of(st.st_mode)));
  }
  const fs::path folder = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  if (::stat(folder.c_str(), &st) != 0) {
    const int err = errno;
    throw IoError(err == ENOENT ? fmt::format("cannot write {}: folder {} does not exist",
                                              target.string(), folder.string())
                                : fmt::format("cannot write {}: folder {}: {}", target.string(),
                                              folder.string(), std::strerror(err)));
  }
  if (!S_ISDIR(st.st_mode)) {
    throw IoError(fmt::format("cannot write {}: {} is {}, not a folder", target.string(),
                              folder.string(),
                              S_ISREG(st.st_mode) ? "a file" : kind_of(st.st_mode)));
  }
  return file;
}

/// Why writing `tmp` may have failed when the cause is outside stitch: the
/// file size limit was reached or the disk is full. Empty when neither.
std::string write_limit_hint(const fs::path& tmp) {
  struct rlimit limit {};
  struct stat st {};
  if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      ::stat(tmp.c_str(), &st) == 0 && uint64_t(st.st_size) >= uint64_t(limit.rlim_cur)) {
    return fmt::format("\n  the file size limit (ulimit -f) is {}",
                       human_bytes(uint64_t(limit.rlim_cur)));
  }
  const fs::path folder = tmp.parent_path().empty() ? fs::path(".") : tmp.parent_path();
  struct statvfs disk {};
  if (::statvfs(folder.c_str(), &disk) == 0 &&
      uint64_t(disk.f_bavail) * disk.f_frsize < (uint64_t(1) << 20)) {
    return fmt::format("\n  the disk holding {} is full", folder.string());
  }
  return "";
}

/// A new file of our own beside `file` (created exclusively, so never
/// someone else's file or symlink) to append to; removed when it goes out
/// of scope unless it was moved onto `file`.
class TemporaryFile {
 public:
  explicit TemporaryFile(const fs::path& file) {
    std::random_device random;
    // A long name is shortened so that the temporary name stays legal.
    const std::string stem = file.filename().string().substr(0, 100);
    for (int attempt = 0; attempt < 100; ++attempt) {
      fs::path candidate =
          file.parent_path() / fmt::format(".{}.tmp-{}-{:08x}", stem, ::getpid(), random());
      fd_ = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) {
        path_ = std::move(candidate);
        return;
      }
      if (errno != EEXIST) {
        throw IoError(fmt::format("cannot write {}: cannot create a file beside it ({})",
                                  file.string(), std::strerror(errno)));
      }
    }
    throw IoError(fmt::format("cannot write {}: no free temporary name beside it", file.string()));
  }
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  const fs::path& path() const { return path_; }

  /// Appends `size` bytes; after a failure, takes the rest without writing.
  size_t append(const void* data, size_t size) {
    const char* next = static_cast<const char*>(data);
    for (size_t left = size; left > 0 && error_ == 0;) {
      const ssize_t n = ::write(fd_, next, left);
      if (n < 0 && errno != EINTR) error_ = errno;
      if (n > 0) {
        next += n;
        left -= size_t(n);
      }
    }
    return size;
  }

  /// Flushes the file to disk (a full disk can show only here) and renames
  /// it onto `file`; throws the first failure.
  void move_to(const fs::path& file) {
    if (error_ == 0 && ::fsync(fd_) != 0) error_ = errno;
    if (::close(fd_) != 0 && error_ == 0) error_ = errno;
    fd_ = -1;
    if (error_ != 0) throw IoError(std::strerror(error_));
    if (::rename(path_.c_str(), file.c_str()) != 0) throw IoError(std::strerror(errno));
    path_.clear();
  }

 private:
  fs::path path_;
  int fd_ = -1;
  int error_ = 0;  // errno of the first failed write
};

}  // namespace

void write_atomically(const fs::path& target, const std::function<void(const ByteSink&)>& write) {
  const fs::path file = output_file(target);
  TemporaryFile tmp(file);
  // The hint is worked out while the partial file still fills the disk.
  auto failure = [&](const std::string& why) {
    return IoError(
        fmt::format("cannot write {}: {}{}", target.string(), why, write_limit_hint(tmp.path())));
  };
  try {
    write([&](const void* data, size_t size) { return tmp.append(data, size); });
    tmp.move_to(file);
  } catch (const Error& e) {
    throw failure(e.what());
  } catch (const c10::Error& e) {
    throw failure(detail::short_message(e));
  } catch (const std::exception& e) {
    throw failure(detail::first_line(e.what()));
  }
}

void write_file_atomically(const fs::path& target, const std::string& bytes) {
  write_atomically(target, [&](const ByteSink& sink) { sink(bytes.data(), bytes.size()); });
}

std::string read_file(const fs::path& file) {
  // The kind is checked before opening: opening a FIFO waits for a writer,
  // and opening some devices has effects of its own.
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) throw IoError(fmt::format("{}: no such file", file.string()));
    throw IoError(fmt::format("{}: cannot read ({})", file.string(), std::strerror(err)));
  }
  auto refuse_kind = [&](mode_t mode) {
    if (S_ISDIR(mode)) {
      throw IoError(fmt::format("{}: is a directory, expected a file", file.string()));
    }
    throw IoError(
        fmt::format("{}: is {}, not a regular file\n"
                    "  stitch reads regular files only: a device or FIFO could block "
                    "or never end\n"
                    "  fix: copy the data into a file first",
                    file.string(), kind_of(mode)));
  };
  if (!S_ISREG(st.st_mode)) refuse_kind(st.st_mode);
  // O_NONBLOCK: if the file was swapped for a FIFO since stat, open must
  // still not wait.
  Descriptor fd(::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) {
    throw IoError(fmt::format("{}: cannot open ({})", file.string(), std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) refuse_kind(st.st_mode);
  const uint64_t size = uint64_t(st.st_size);
  if (size > physical_memory()) {
    throw IoError(fmt::format("{}: is {}, more than this machine's memory ({})", file.string(),
                              human_bytes(size), human_bytes(physical_memory())));
  }
  std::string bytes(size, '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw IoError(fmt::format("{}: read failed ({})", file.string(), std::strerror(errno)));
    }
    if (n == 0) break;  // the file shrank while being read
    done += size_t(n);
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace stitch

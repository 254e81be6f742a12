// Tests for src/atomic_file.h: a failed write leaves no temporary file and an
// earlier file as it was; devices, FIFOs and directories are refused without
// blocking.

#include "util/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>

#include "stitch/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using stitch::IoError;
using stitch::read_file;
using stitch::write_atomically;
using stitch::write_file_atomically;
using stitch::testing::TempDir;

namespace {

std::vector<std::string> names_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool is_character_device(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISCHR(st.st_mode);
}

}  // namespace

TEST(AtomicFileTest, WriteThatThrowsMidwayKeepsTheEarlierFileAndNoTemporary) {
  TempDir dir;
  write_file_atomically(dir / "out.pt", "earlier");
  EXPECT_IO_ERROR(write_atomically(dir / "out.pt",
                                   [](const stitch::ByteSink& sink) {
                                     sink("half of it", 10);
                                     throw std::runtime_error("the writer failed");
                                   }),
                  "cannot write " + (dir / "out.pt").string() + ": the writer failed");
  EXPECT_EQ(read_file(dir / "out.pt"), "earlier");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.pt"});
}

TEST(AtomicFileTest, AnExceptionOfAnyTypeStillRemovesTheTemporary) {
  TempDir dir;
  EXPECT_THROW(write_atomically(dir / "out.pt", [](const stitch::ByteSink&) { throw 42; }), int);
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(AtomicFileTest, RefusesDevicesAndDirectoriesBeforeCreatingAnything) {
  TempDir dir;
  fs::create_directory(dir / "folder.pt");
  fs::create_symlink("/dev/full", dir / "full.pt");
  EXPECT_IO_ERROR(write_file_atomically(dir / "folder.pt", "x"), "it is a directory");
  EXPECT_IO_ERROR(write_file_atomically(dir / "folder.pt", "x"),
                  "fix: name a file in it, like " + (dir / "folder.pt" / "model.pt").string());
  EXPECT_IO_ERROR(write_file_atomically(dir / "full.pt", "x"), "it is a character device");
  EXPECT_IO_ERROR(write_file_atomically("/dev/full", "x"), "it is a character device");
  EXPECT_TRUE(is_character_device("/dev/full"));
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"folder.pt", "full.pt"}));
}

TEST(AtomicFileTest, WritesThroughASymlinkAndKeepsTheLink) {
  TempDir dir;
  fs::create_directory(dir / "real");
  write_file_atomically(dir / "real" / "out.pt", "earlier");
  fs::create_symlink(dir / "real" / "out.pt", dir / "link.pt");
  write_file_atomically(dir / "link.pt", "new");
  EXPECT_TRUE(fs::is_symlink(dir / "link.pt"));
  EXPECT_EQ(read_file(dir / "real" / "out.pt"), "new");
}

TEST(AtomicFileTest, AFolderThatIsAFileIsNamed) {
  TempDir dir;
  write_file_atomically(dir / "model.pt", "x");
  EXPECT_IO_ERROR(write_file_atomically(dir / "model.pt" / "out.pt", "y"),
                  "model.pt is a file, not a folder");
}

TEST(AtomicFileTest, AFileSizeLimitIsReportedNotFatal) {
  TempDir dir;
  write_file_atomically(dir / "out.pt", "earlier");
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  try {
    write_file_atomically(dir / "out.pt", std::string(4096, 'x'));
    ADD_FAILURE() << "a 4 KB write under a 1 KB limit succeeded";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("the file size limit (ulimit -f) is 1024 bytes"),
              std::string::npos)
        << e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(read_file(dir / "out.pt"), "earlier");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.pt"});
}

TEST(AtomicFileTest, ReadFileRefusesFifosAndDevicesWithoutBlocking) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "pipe.pt").c_str(), 0600), 0);
  EXPECT_IO_ERROR(read_file(dir / "pipe.pt"), "is a FIFO (named pipe), not a regular file");
  EXPECT_IO_ERROR(read_file("/dev/zero"), "is a character device, not a regular file");
  EXPECT_IO_ERROR(read_file(dir.path()), "is a directory, expected a file");
  EXPECT_IO_ERROR(read_file(dir / "missing.pt"), "missing.pt: no such file");
}

TEST(AtomicFileTest, ReadFileReadsEveryByte) {
  TempDir dir;
  std::string bytes(100000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  write_file_atomically(dir / "data.bin", bytes);
  EXPECT_EQ(read_file(dir / "data.bin"), bytes);
}

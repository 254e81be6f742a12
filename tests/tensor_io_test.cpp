// Tests for stitch/tensor_io.h: reading and writing .pt, .safetensors, .npy
// and folders of .npy, against files from numpy and torch.save, and with
// hostile input that must end in stitch::IoError rather than a crash.

#include "stitch/tensor_io.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "stitch/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using stitch::IoError;
using stitch::read_tensors;
using stitch::TensorMap;
using stitch::write_tensors;
using stitch::testing::le64;
using stitch::testing::safetensors_bytes;

namespace {

/// A .safetensors header entry for tensor `name`.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":{}}})", name, dtype, shape,
                     offsets);
}

/// A version 1.0 .npy file with `dict` as its header.
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string header = dict + "\n";
  return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size() & 0xFF) +
         static_cast<char>(header.size() >> 8) + header + data;
}

std::string floats(std::initializer_list<float> values) {
  return std::string(reinterpret_cast<const char*>(values.begin()), values.size() * sizeof(float));
}

bool have_python() {
  static const bool ok =
      std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
  return ok;
}

class TensorIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::temp_directory_path() / fmt::format("stitch_tensor_io_{}_{}", ::getpid(), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }

  fs::path write_bytes(const std::string& name, const std::string& bytes) const {
    fs::remove(path(name));  // ext4 flushes a file truncated in place: slow in loops
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }

  std::string read_bytes(const std::string& name) const {
    std::ifstream in(path(name), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  /// Runs `code` with /usr/bin/python3 inside the test folder; numpy is `np`.
  bool python(const std::string& code) const {
    std::ofstream(path("script.py")) << "import collections, numpy as np\n" << code;
    const auto command = fmt::format("cd '{}' && /usr/bin/python3 script.py", dir_.string());
    return std::system(command.c_str()) == 0;
  }

  fs::path dir_;
};

void expect_same(const torch::Tensor& expected, const torch::Tensor& actual) {
  ASSERT_TRUE(actual.defined());
  EXPECT_EQ(expected.scalar_type(), actual.scalar_type());
  EXPECT_EQ(expected.sizes(), actual.sizes());
  EXPECT_TRUE(actual.is_contiguous());
  EXPECT_TRUE(torch::equal(expected, actual)) << "expected\n" << expected << "\nactual\n" << actual;
}

// Tensors of every dtype the formats share, including 0-d and empty ones.
TensorMap sample_tensors() {
  return {{"f64", torch::arange(6, torch::kDouble).reshape({2, 3}) / 3},
          {"f32", torch::arange(-3, 3, torch::kFloat) * 0.5},
          {"f16", torch::arange(4, torch::kHalf)},
          {"i64", torch::tensor({INT64_MIN, int64_t{0}, INT64_MAX})},
          {"i32", torch::arange(-2, 2, torch::kInt)},
          {"i16", torch::arange(-2, 2, torch::kShort)},
          {"i8", torch::arange(-128, 128, 51, torch::kChar)},
          {"u8", torch::arange(0, 256, 51, torch::kByte)},
          {"bool", torch::tensor({true, false, true})},
          {"scalar", torch::tensor(2.5)},
          {"empty", torch::zeros({0, 3})}};
}

TEST_F(TensorIoTest, RoundTripsEveryDtypeThroughPtAndSafetensors) {
  auto tensors = sample_tensors();
  tensors["bf16"] = torch::arange(4, torch::kBFloat16);
  for (const char* name : {"all.pt", "all.safetensors"}) {
    write_tensors(path(name), tensors);
    const auto read = read_tensors(path(name));
    ASSERT_EQ(read.size(), tensors.size()) << name;
    for (const auto& [key, tensor] : tensors) {
      SCOPED_TRACE(fmt::format("{} {}", name, key));
      expect_same(tensor, read.at(key));
    }
  }
}

TEST_F(TensorIoTest, RoundTripsEachNpyDtypeUnderTheFileStem) {
  for (const auto& [key, tensor] : sample_tensors()) {
    SCOPED_TRACE(key);
    write_tensors(path(key + ".npy"), {{"ignored", tensor}});
    const auto read = read_tensors(path(key + ".npy"));
    ASSERT_EQ(read.size(), 1u);
    expect_same(tensor, read.at(key));
  }
}

TEST_F(TensorIoTest, SingleEntryPtReadsBackUnderTheFileStem) {
  write_tensors(path("weights.pt"), {{"w", torch::ones({2})}});
  const auto read = read_tensors(path("weights.pt"));
  ASSERT_EQ(read.count("weights"), 1u);
  expect_same(torch::ones({2}), read.at("weights"));
}

TEST_F(TensorIoTest, WritesOnlyTheElementsOfAView) {
  const auto base = torch::arange(100000, torch::kFloat);
  const auto view = base.slice(0, 10, 20);
  const auto transposed = base.slice(0, 0, 6).reshape({2, 3}).t();
  write_tensors(path("v.pt"), {{"view", view}, {"t", transposed}});
  EXPECT_LT(fs::file_size(path("v.pt")), 10000u);
  const auto read = read_tensors(path("v.pt"));
  expect_same(view, read.at("view"));
  expect_same(transposed, read.at("t"));
}

TEST_F(TensorIoTest, ReadsSafetensorsBuiltByHandAndIgnoresMetadata) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)" + entry("b", "F32", "[2]", "[8,16]") + "," +
      entry("a", "F32", "[1,2]", "[0,8]") + "," + entry("e", "I8", "[0]", "[8,8]") + "}";
  write_bytes("x.safetensors", safetensors_bytes(header, floats({1, 2, 3, 4})));
  const auto read = read_tensors(path("x.safetensors"));
  ASSERT_EQ(read.size(), 3u);
  expect_same(torch::tensor({{1.f, 2.f}}), read.at("a"));
  expect_same(torch::tensor({3.f, 4.f}), read.at("b"));
  expect_same(torch::zeros({0}, torch::kChar), read.at("e"));
}

TEST_F(TensorIoTest, ReadsFolderOfNpyKeyedByFileStem) {
  fs::create_directories(path("inputs/nested"));
  write_tensors(path("inputs/x.npy"), {{"", torch::ones({2})}});
  write_tensors(path("inputs/y.NPY"), {{"", torch::zeros({3}, torch::kLong)}});
  write_tensors(path("inputs/nested/z.npy"), {{"", torch::ones({1})}});
  write_bytes("inputs/notes.txt", "not a tensor");
  const auto read = read_tensors(path("inputs"));
  ASSERT_EQ(read.size(), 2u);
  expect_same(torch::ones({2}), read.at("x"));
  expect_same(torch::zeros({3}, torch::kLong), read.at("y"));
}

TEST_F(TensorIoTest, NormalisesBoolBytesToZeroOrOne) {
  write_bytes("b.npy", npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                                 std::string("\x00\x07\x01", 3)));
  const auto b = read_tensors(path("b.npy")).at("b");
  expect_same(torch::tensor({false, true, true}), b);
  EXPECT_EQ(b.to(torch::kByte).sum().item<int64_t>(), 2);
}

TEST_F(TensorIoTest, ReadsNpyWrittenByNumpy) {
  if (!have_python()) GTEST_SKIP() << "/usr/bin/python3 lacks torch or numpy";
  ASSERT_TRUE(python(R"(
a = np.arange(6, dtype='<f4').reshape(2, 3)
np.save('f4.npy', a)
np.save('i1.npy', np.array([-1, 2], dtype='|i1'))
np.save('b1.npy', np.array([True, False]))
np.save('f2.npy', np.array([0.5, 2], dtype='<f2'))
np.save('scalar.npy', np.float64(3.25))
np.save('strided.npy', np.arange(10, dtype='<i8')[::3])
for version in [(2, 0), (3, 0)]:
    with open('v%d.npy' % version[0], 'wb') as f:
        np.lib.format.write_array(f, a, version=version)
np.save('fortran.npy', np.asfortranarray(a))
np.save('big.npy', np.zeros(2, dtype='>f4'))
np.save('complex.npy', np.zeros(2, dtype='<c8'))
np.save('objects.npy', np.array([{}], dtype=object), allow_pickle=True)
)"));
  const auto a = torch::arange(6, torch::kFloat).reshape({2, 3});
  expect_same(a, read_tensors(path("f4.npy")).at("f4"));
  expect_same(a, read_tensors(path("v2.npy")).at("v2"));
  expect_same(a, read_tensors(path("v3.npy")).at("v3"));
  expect_same(torch::tensor({-1, 2}, torch::kChar), read_tensors(path("i1.npy")).at("i1"));
  expect_same(torch::tensor({true, false}), read_tensors(path("b1.npy")).at("b1"));
  expect_same(torch::tensor({0.5, 2.0}, torch::kHalf), read_tensors(path("f2.npy")).at("f2"));
  expect_same(torch::tensor(3.25, torch::kDouble), read_tensors(path("scalar.npy")).at("scalar"));
  expect_same(torch::tensor({0, 3, 6, 9}), read_tensors(path("strided.npy")).at("strided"));
  EXPECT_IO_ERROR(read_tensors(path("fortran.npy")), "Fortran order");
  EXPECT_IO_ERROR(read_tensors(path("big.npy")), "unsupported dtype '>f4'");
  EXPECT_IO_ERROR(read_tensors(path("complex.npy")), "unsupported dtype '<c8'");
  EXPECT_IO_ERROR(read_tensors(path("objects.npy")), "unsupported dtype '|O'");
}

TEST_F(TensorIoTest, ReadsPtWrittenByTorchSave) {
  if (!have_python()) GTEST_SKIP() << "/usr/bin/python3 lacks torch or numpy";
  ASSERT_TRUE(python(R"(
import torch
t = torch.arange(6.).reshape(2, 3)
torch.save(t, 'bare.pt')
torch.save({'only': t}, 'one.pth')
base = torch.arange(10)
torch.save({'view': base[2:8:2], 'whole': base, 't': t.t(), 'bf': t.bfloat16(),
            'mask': t > 2}, 'views.pt')
torch.save({'x': t, 'y': -t}, 'proto4.pt', pickle_protocol=4)
lin = torch.nn.Linear(3, 2)
with torch.no_grad():
    lin.weight.copy_(t); lin.bias.fill_(7)
torch.save(lin.state_dict(), 'state.pt')
torch.save(torch.nn.Parameter(t), 'param.pt')
torch.save(t.expand(1000, 2, 3), 'expanded.pt')
)"));
  const auto t = torch::arange(6, torch::kFloat).reshape({2, 3});
  expect_same(t, read_tensors(path("bare.pt")).at("bare"));
  expect_same(t, read_tensors(path("one.pth")).at("only"));
  expect_same(t, read_tensors(path("param.pt")).at("param"));

  const auto views = read_tensors(path("views.pt"));
  const auto base = torch::arange(10);
  expect_same(torch::tensor({2, 4, 6}), views.at("view"));
  expect_same(base, views.at("whole"));
  expect_same(t.t(), views.at("t"));
  expect_same(t.to(torch::kBFloat16), views.at("bf"));
  expect_same(t > 2, views.at("mask"));
  // Entries own separate memory even where the file shared a storage.
  EXPECT_EQ(views.at("view").storage().nbytes(), 3 * sizeof(int64_t));

  const auto proto4 = read_tensors(path("proto4.pt"));
  expect_same(-t, proto4.at("y"));
  const auto state = read_tensors(path("state.pt"));
  ASSERT_EQ(state.size(), 2u);
  expect_same(t, state.at("weight"));
  expect_same(torch::full({2}, 7.f), state.at("bias"));
  // A broadcast view would grow far beyond the file when copied out.
  expect_same(t.expand({1000, 2, 3}), read_tensors(path("expanded.pt")).at("expanded"));
}

TEST_F(TensorIoTest, RejectsPtHoldingOtherThanTensors) {
  if (!have_python()) GTEST_SKIP() << "/usr/bin/python3 lacks torch or numpy";
  ASSERT_TRUE(python(R"(
import torch
torch.save([torch.ones(1)], 'list.pt')
torch.save({'a': {'b': torch.ones(1)}}, 'nested.pt')
torch.save({1: torch.ones(1)}, 'intkey.pt')
torch.save({'lr': 0.1, 'w': torch.ones(1)}, 'float.pt')
torch.save(torch.nn.Linear(2, 2), 'module.pt')
torch.save(torch.ones(2), 'legacy.pt', _use_new_zipfile_serialization=False)
class Overreach:  # a tensor view reaching past its storage
    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (torch.ones(4).storage(), 2, (100,), (1,), False, collections.OrderedDict()))
torch.save({'a': Overreach()}, 'overreach.pt')
class Broadcast:  # 4 bytes that would expand to 4 TB
    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (torch.ones(1).storage(), 0, (2**20, 2**20), (0, 0), False,
                 collections.OrderedDict()))
torch.save(Broadcast(), 'broadcast.pt')
)"));
  EXPECT_IO_ERROR(read_tensors(path("list.pt")), "holds a list, not a tensor or a dict");
  EXPECT_IO_ERROR(read_tensors(path("nested.pt")), "entry 'a' is a dict, not a tensor");
  EXPECT_IO_ERROR(read_tensors(path("intkey.pt")), "dict key that is an int");
  EXPECT_IO_ERROR(read_tensors(path("float.pt")), "entry 'lr' is a float");
  EXPECT_IO_ERROR(read_tensors(path("module.pt")), "torch.nn.modules.linear.Linear");
  EXPECT_IO_ERROR(read_tensors(path("legacy.pt")), "legacy format");
  EXPECT_IO_ERROR(read_tensors(path("overreach.pt")), "reaches past its 4-element storage");
  EXPECT_IO_ERROR(read_tensors(path("broadcast.pt")), "over 4 times the file size");
}

TEST_F(TensorIoTest, TorchAndNumpyLoadFilesWrittenByStitch) {
  if (!have_python()) GTEST_SKIP() << "/usr/bin/python3 lacks torch or numpy";
  const auto t = torch::arange(6, torch::kFloat).reshape({2, 3});
  write_tensors(path("bare.pt"), {{"t", t}});
  write_tensors(path("dict.pt"), {{"a", t}, {"b", torch::ones({4}, torch::kBFloat16)}});
  write_tensors(path("a.npy"), {{"a", t.to(torch::kLong)}});
  write_tensors(path("s.safetensors"), {{"a", t}, {"m", torch::tensor({true, false})}});
  ASSERT_TRUE(python(R"(
import json, struct, torch
t = torch.arange(6.).reshape(2, 3)
bare = torch.load('bare.pt')
assert type(bare) is torch.Tensor and torch.equal(bare, t), bare
d = torch.load('dict.pt')
assert type(d) is dict and sorted(d) == ['a', 'b'], d
assert torch.equal(d['a'], t) and d['b'].dtype == torch.bfloat16
a = np.load('a.npy')
assert a.dtype == np.int64 and (a == t.long().numpy()).all(), a
raw = open('s.safetensors', 'rb').read()
n, = struct.unpack('<Q', raw[:8])
assert (8 + n) % 8 == 0
header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
assert header['a'] == {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}, header
assert header['m'] == {'dtype': 'BOOL', 'shape': [2], 'data_offsets': [24, 26]}, header
assert (np.frombuffer(data[:24], '<f4').reshape(2, 3) == t.numpy()).all()
assert data[24:] == b'\x01\x00'
)"));
}

// ------------------------------------------------------------- failures

TEST_F(TensorIoTest, ErrorsStartWithTheFilePath) {
  const auto file = write_bytes("x.safetensors", safetensors_bytes("[]", ""));
  try {
    (void)read_tensors(file);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(file.string() + ": ", 0), 0u) << e.what();
  }
}

TEST_F(TensorIoTest, RejectsMissingFilesUnknownExtensionsAndEmptyFolders) {
  EXPECT_IO_ERROR(read_tensors(path("missing.pt")), "missing.pt: no such file");
  write_bytes("x.csv", "1,2");
  EXPECT_IO_ERROR(read_tensors(path("x.csv")), "unknown tensor file type '.csv'");
  EXPECT_IO_ERROR(write_tensors(path("x.csv"), {}), "unknown tensor file type");
  fs::create_directories(path("empty"));
  write_bytes("empty/a.txt", "");
  EXPECT_IO_ERROR(read_tensors(path("empty")), "folder holds no .npy files");
}

TEST_F(TensorIoTest, RejectsSafetensorsWithBadSizes) {
  auto read = [&](const std::string& entries) {
    const std::string data(12, '\0');
    return read_tensors(write_bytes("x.safetensors", safetensors_bytes("{" + entries + "}", data)));
  };
  EXPECT_IO_ERROR(read(entry("a", "F32", "[1000000]", "[0,4000000]")),
                  "x.safetensors: tensor 'a' declares 4000000 bytes but the file holds 12");
  EXPECT_IO_ERROR(read(entry("a", "F32", "[2]", "[8,16]")),
                  "data_offsets [8, 16] outside the 12-byte data section");
  EXPECT_IO_ERROR(read(entry("a", "F32", "[2]", "[4,0]")), "outside");
  EXPECT_IO_ERROR(read(entry("a", "F32", "[2]", "[0,4]")),
                  "(8 bytes) but data_offsets [0, 4] hold 4");
  const auto overlapping =
      entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[1]", "[4,8]");
  EXPECT_IO_ERROR(read(overlapping), "tensors 'a' and 'b' overlap");
  EXPECT_IO_ERROR(read(entry("a", "F32", "[-1]", "[0,4]")), "negative value -1");
  EXPECT_IO_ERROR(read(entry("a", "U8", "[1099511627776]", "[0,4]")),
                  "declares 1099511627776 bytes but the file holds 12");
  EXPECT_IO_ERROR(read(entry("a", "F32", "[4294967296,4294967296]", "[0,4]")), "too large");
  EXPECT_IO_ERROR(read(entry("a", "F32", "[1e3]", "[0,4]")), "not an integer");
  EXPECT_IO_ERROR(read(entry("a", "F32", "[1]", "[0]")), "must be [begin, end]");
  EXPECT_IO_ERROR(read(entry("a", "F8_E4M3", "[1]", "[0,1]")), "unsupported dtype \"F8_E4M3\"");
  EXPECT_IO_ERROR(read(R"("a":{"dtype":"F32","shape":[1]})"), "needs \"dtype\"");
  EXPECT_IO_ERROR(read(R"("a":{"dtype":"F32",)"), "header is not valid JSON");
  EXPECT_IO_ERROR(read_tensors(write_bytes("x.safetensors", safetensors_bytes("[]", ""))),
                  "not a JSON object");
  EXPECT_IO_ERROR(read_tensors(write_bytes("x.safetensors", le64(uint64_t{1} << 62) + "{}")),
                  "header declares 4611686018427387904 bytes but the file holds 2");
  EXPECT_IO_ERROR(read_tensors(write_bytes("x.safetensors", "abc")), "too short");
}

TEST_F(TensorIoTest, RejectsNpyWithBadHeadersOrSizes) {
  auto read = [&](const std::string& descr, const std::string& shape) {
    const auto dict =
        fmt::format("{{'descr': {}, 'fortran_order': False, 'shape': {}, }}", descr, shape);
    return read_tensors(write_bytes("x.npy", npy_bytes(dict, floats({1, 2}))));
  };
  EXPECT_IO_ERROR(read("'<f4'", "(3,)"),
                  "x.npy: array of shape [3] and dtype '<f4' declares 12 bytes but the file "
                  "holds 8");
  EXPECT_IO_ERROR(read("'<f4'", "(1099511627776,)"), "declares 4398046511104 bytes");
  EXPECT_IO_ERROR(read("'<f4'", "(2**40,)"), "malformed dimension '2**40'");
  EXPECT_IO_ERROR(read("'<f4'", "(-2,)"), "negative dimension");
  EXPECT_IO_ERROR(read("'<f4'", "(99999999999999999999,)"), "above 2^63");
  EXPECT_IO_ERROR(read("'<f4'", "(2,,)"), "malformed dimension ''");
  EXPECT_IO_ERROR(read("'<f4'", "(2,"), "malformed 'shape'");
  EXPECT_IO_ERROR(read("[('a', '<f4')]", "(2,)"), "structured dtypes");
  EXPECT_IO_ERROR(read("'<f4", "(2,)"), "unsupported dtype '<f4, '");
  EXPECT_IO_ERROR(read("<f4", "(2,)"), "malformed 'descr'");
  auto read_dict = [&](const std::string& dict) {
    return read_tensors(write_bytes("x.npy", npy_bytes(dict, floats({1, 2}))));
  };
  EXPECT_IO_ERROR(read_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"),
                  "Fortran order");
  EXPECT_IO_ERROR(read_dict("{'descr': '<f4', 'shape': (2,), }"), "no 'fortran_order'");
  EXPECT_IO_ERROR(read_tensors(write_bytes("x.npy", "\x93NUMPY\x01")), "truncated");
  EXPECT_IO_ERROR(read_tensors(write_bytes("x.npy", std::string("\x93NUMPY\x09\x00", 8))),
                  "unsupported .npy version 9.0");
  EXPECT_IO_ERROR(read_tensors(write_bytes("x.npy", std::string("\x93NUMPY\x01\x00\xff\xff{", 11))),
                  "truncated");
  EXPECT_IO_ERROR(read_tensors(write_bytes("x.npy", "PK\x03\x04")), "not a .npy file");
}

TEST_F(TensorIoTest, RejectsWritesFormatsCannotHold) {
  const auto two = TensorMap{{"a", torch::ones(1)}, {"b", torch::ones(1)}};
  EXPECT_IO_ERROR(write_tensors(path("x.npy"), two), "x.npy: .npy holds exactly one tensor, not 2");
  EXPECT_IO_ERROR(write_tensors(path("x.npy"), {}), "not 0");
  EXPECT_IO_ERROR(write_tensors(path("x.npy"), {{"a", torch::ones(1, torch::kBFloat16)}}),
                  "BFloat16 has no .npy equivalent");
  EXPECT_IO_ERROR(
      write_tensors(path("x.safetensors"), {{"c", torch::ones(1, torch::kComplexFloat)}}),
      "tensor 'c' has dtype ComplexFloat, which .safetensors cannot hold");
  EXPECT_IO_ERROR(write_tensors(path("x.safetensors"), {{"__metadata__", torch::ones(1)}}),
                  "reserved");
  EXPECT_IO_ERROR(write_tensors(path("x.pt"), {{"u", torch::Tensor()}}), "tensor 'u' is undefined");
  EXPECT_IO_ERROR(write_tensors(path("x.pt"), {{"s", torch::ones({2, 2}).to_sparse()}}),
                  "not a dense tensor");
  EXPECT_IO_ERROR(write_tensors(path("missing/x.pt"), {{"a", torch::ones(1)}}), "does not exist");
  EXPECT_FALSE(fs::exists(path("x.npy")));
  EXPECT_FALSE(fs::exists(path("x.safetensors")));
  EXPECT_FALSE(fs::exists(path("x.pt")));
}

TEST_F(TensorIoTest, RejectsPtThatIsNotATorchSaveZip) {
  write_bytes("x.pt", "hello");
  EXPECT_IO_ERROR(read_tensors(path("x.pt")), "x.pt: not a torch.save file");
  write_bytes("x.pt", std::string("PK\x03\x04", 4) + std::string(100, '\0'));
  EXPECT_IO_ERROR(read_tensors(path("x.pt")), "no end of central directory");
  write_tensors(path("t.pt"), {{"a", torch::ones(1)}});
  std::string bytes = read_bytes("t.pt");
  bytes.replace(bytes.find("data.pkl"), 8, "data.pkX");  // rename in the local header
  bytes.replace(bytes.find("data.pkl"), 8, "data.pkX");  // and the central directory
  EXPECT_IO_ERROR(read_tensors(write_bytes("t.pt", bytes)), "archive has no data.pkl");
}

// Every proper prefix of a valid file is an IoError: sizes are declared up front.
TEST_F(TensorIoTest, EveryTruncationOfAValidFileIsAnIoError) {
  const TensorMap tensors = {{"a", torch::arange(6, torch::kFloat).reshape({2, 3})},
                             {"b", torch::tensor({true, false})}};
  for (const char* name : {"v.pt", "v.safetensors", "v.npy"}) {
    SCOPED_TRACE(name);
    write_tensors(path(name), std::string(name) == "v.npy" ? TensorMap{*tensors.begin()} : tensors);
    const std::string bytes = read_bytes(name);
    const std::string cut = std::string("cut") + fs::path(name).extension().string();
    for (size_t size = 0; size < bytes.size(); ++size) {
      EXPECT_THROW((void)read_tensors(write_bytes(cut, bytes.substr(0, size))), IoError)
          << "prefix of " << size << " bytes";
    }
  }
}

// Corrupt bytes may still form a valid file, but never crash or throw anything else.
TEST_F(TensorIoTest, CorruptBytesGiveTensorsOrIoErrorNeverACrash) {
  const TensorMap tensors = {{"a", torch::arange(6, torch::kFloat).reshape({2, 3})},
                             {"b", torch::tensor({true, false})}};
  std::mt19937 rng(1234);
  for (const char* name : {"v.pt", "v.safetensors", "v.npy"}) {
    SCOPED_TRACE(name);
    write_tensors(path(name), std::string(name) == "v.npy" ? TensorMap{*tensors.begin()} : tensors);
    const std::string bytes = read_bytes(name);
    const std::string bad_name = std::string("bad") + fs::path(name).extension().string();
    const fs::path bad = path(bad_name);
    for (size_t i = 0; i < bytes.size() * 3; ++i) {
      std::string corrupt = bytes;
      const size_t at = i < bytes.size() ? i : rng() % bytes.size();
      corrupt[at] = static_cast<char>(i < bytes.size() ? ~corrupt[at] : rng());
      write_bytes(bad_name, corrupt);
      try {
        for (const auto& [key, t] : read_tensors(bad)) EXPECT_TRUE(t.is_contiguous()) << key;
      } catch (const IoError& e) {
        EXPECT_EQ(std::string(e.what()).rfind(bad.string(), 0), 0u) << e.what();
      }
    }
  }
}

}  // namespace

TEST(TerminalSafeTest, ControlAndNonUtf8BytesAreEscapedAndLongLinesCut) {
  using stitch::detail::terminal_safe;
  EXPECT_EQ(terminal_safe("plain\n  fix: é ok"), "plain\n  fix: é ok");
  EXPECT_EQ(terminal_safe("a\x1b[31mred\r\x07"), "a\\x1b[31mred\\x0d\\x07");
  EXPECT_EQ(terminal_safe(std::string("\xff\xfe"
                                      "x\xc3",
                                      4)),
            "\\xff\\xfex\\xc3");
  const std::string safe = terminal_safe(std::string(100000, 'n'));
  EXPECT_LT(safe.size(), 2100u);
  EXPECT_NE(safe.find("(98000 more bytes left out)"), std::string::npos);
}

namespace stitch {
namespace {

// Walks the format table through its extensions: each one writes and reads
// back the same tensor, bit for bit.
TEST(TensorFormats, EveryExtensionRoundTripsATensor) {
  testing::TempDir dir;
  const std::string types = tensor_file_types();
  std::vector<std::string> extensions;
  for (size_t start = 0; start < types.size();) {
    const size_t end = std::min(types.find(", ", start), types.size());
    extensions.push_back(types.substr(start, end - start));
    start = end + 2;
  }
  EXPECT_GE(extensions.size(), 4u) << types;
  const auto t = torch::arange(24, torch::kFloat).reshape({2, 3, 4});
  for (const auto& ext : extensions) {
    SCOPED_TRACE(ext);
    const auto file = dir / ("t" + ext);
    write_tensors(file, {{"t", t}});
    const TensorMap back = read_tensors(file);
    ASSERT_EQ(back.size(), 1u);
    ASSERT_EQ(back.begin()->first, "t");
    EXPECT_TRUE(torch::equal(back.begin()->second, t));
  }
}

}  // namespace
}  // namespace stitch

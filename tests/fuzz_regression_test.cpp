// Inputs found by the fuzz targets (fuzz/), each fed through the same
// function as its target and expected to end in a stitch::Error; plus the
// promise that no tensor reader allocates more than its file can hold.

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "artifact/metadata.h"
#include "io/tensor_io_bytes.h"
#include "stitch/check.h"
#include "stitch/error.h"
#include "stitch/spec.h"
#include "test_util.h"

namespace {

using namespace std::string_literals;
using stitch::detail::read_tensor_bytes;

using stitch::testing::le64;
using stitch::testing::safetensors_bytes;

/// A zip laid out as torch.save and torch.jit.save write it ("archive/...").
std::string torch_zip(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    out.append(static_cast<const char*>(data), size);
    return size;
  });
  for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
  writer.writeEndOfFile();
  return out;
}

std::string npy(const std::string& header_dict, const std::string& data) {
  const std::string header = header_dict + "\n";
  return "\x93NUMPY\x01\x00"s + static_cast<char>(header.size() & 0xFF) +
         static_cast<char>(header.size() >> 8) + header + data;
}

// ------------------------------------------- declared sizes against the file

TEST(NeverAllocatesMoreThanTheFileHolds, Npy) {
  EXPECT_IO_ERROR(read_tensor_bytes(npy("{'descr': '<f4', 'fortran_order': False, "
                                        "'shape': (100000, 100000), }",
                                        std::string(16, '\0')),
                                    "x.npy"),
                  "declares 40000000000 bytes but the file holds 16");
}

TEST(NeverAllocatesMoreThanTheFileHolds, Safetensors) {
  EXPECT_IO_ERROR(read_tensor_bytes(
                      safetensors_bytes(
                          R"({"a":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,16]}})",
                          std::string(16, '\0')),
                      "x.safetensors"),
                  "declares 40000000000 bytes but the file holds 16");
}

TEST(NeverAllocatesMoreThanTheFileHolds, SafetensorsEntriesSharingBytes) {
  // Each entry alone fits; together they would allocate the data many times.
  std::string header = "{";
  for (int i = 0; i < 100; ++i) {
    header += fmt::format(R"({}"t{}":{{"dtype":"U8","shape":[64],"data_offsets":[0,64]}})",
                          i ? "," : "", i);
  }
  EXPECT_IO_ERROR(
      read_tensor_bytes(safetensors_bytes(header + "}", std::string(64, '\0')), "x.safetensors"),
      "overlap in the data section");
}

TEST(NeverAllocatesMoreThanTheFileHolds, PtZipEntry) {
  std::string zip = torch_zip({{"data.pkl", "\x80\x02N."s}});
  // The central directory's sizes of data.pkl (offsets 20 and 24 of its
  // record) now claim 1 GB.
  const size_t central = zip.find("PK\x01\x02");
  ASSERT_NE(central, std::string::npos);
  zip.replace(central + 20, 8, le64(0x40000000ull * 0x100000001ull));
  EXPECT_IO_ERROR(read_tensor_bytes(zip, "x.pt"), "truncated: needs 1073741824 bytes");
}

TEST(NeverAllocatesMoreThanTheFileHolds, PtStorage) {
  // ('storage', torch.FloatStorage, '0', 'cpu', 1 << 30) over a 16-byte record.
  const std::string pickle = "\x80\x02"s + "ctorch._utils\n_rebuild_tensor_v2\n(" +
                             "(X\x07\x00\x00\x00storage"s + "ctorch\nFloatStorage\n" +
                             "X\x01\x00\x00\x00"s + "0" + "X\x03\x00\x00\x00"s + "cpu" +
                             "J\x00\x00\x00\x40"s + "tQ" + "K\x00(K\x04tq\x00(K\x01tq\x01tR."s;
  const std::string zip = torch_zip({{"data.pkl", pickle}, {"data/0", std::string(16, '\0')}});
  EXPECT_IO_ERROR(read_tensor_bytes(zip, "x.pt"),
                  "storage '0' declares 4294967296 bytes but the file holds 16");
}

// ------------------------------------------------------ found by fuzzing

TEST(FuzzRegression, PtMemoizedStringConcatenatedOverAndOver) {
  // One 64 KB string, memoized, then STACK_GLOBAL of it with itself 2000
  // times: 256 MB of names from an 80 KB file.
  std::string pickle = "\x80\x02X\x00\x00\x01\x00"s + std::string(65536, 'a') + "q\x00"s;
  for (int i = 0; i < 2000; ++i) pickle += "h\x00h\x00\x93"s;
  pickle += "N.";
  EXPECT_IO_ERROR(read_tensor_bytes(torch_zip({{"data.pkl", pickle}}), "x.pt"),
                  "over 4 times the file size");
}

TEST(FuzzRegression, SafetensorsDeeplyNestedDtype) {
  // Writing the dtype into the message once recursed 100000 levels deep.
  const std::string nested = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_IO_ERROR(read_tensor_bytes(safetensors_bytes(R"({"a":{"dtype":)" + nested +
                                                          R"(,"shape":[1],"data_offsets":[0,4]}})",
                                                      std::string(4, '\0')),
                                    "x.safetensors"),
                  "unsupported dtype a JSON array");
}

TEST(FuzzRegression, SpecDimensionProductOverflows) {
  EXPECT_THROW_TYPE_WITH(stitch::parse_spec("inputs:\n  x: [99999999999999999*99999999999999999]\n"
                                            "graph:\n  - y = relu(x)\noutputs: [y]\n",
                                            "s.yaml"),
                         stitch::SpecError, "s.yaml:2:7: ");
}

TEST(FuzzRegression, SpecStartingWithAComma) {
  // yaml-cpp's LoadAll never returned on a ',' no document can start with
  // (CI's fuzzing hung on it).
  EXPECT_THROW_TYPE_WITH(stitch::parse_spec(",\ninputs:\n  x: [N, 4]\n", "s.yaml"),
                         stitch::SpecError, "s.yaml:1:1: invalid YAML: ',' starts no value here");
  EXPECT_THROW_TYPE_WITH(stitch::parse_spec("[a, b]\n,\n", "s.yaml"), stitch::SpecError,
                         "s.yaml:2:1: invalid YAML: ',' starts no value here");
}

TEST(FuzzRegression, ConcatOfATensorAndA0dTensor) {
  // The suggested fix once freed dim -1 of the 0-d shape.
  stitch::Graph g;
  g.output("y", g.op("concat", {g.input("x", {stitch::N, 3}), g.input("s", {})}));
  EXPECT_THROW_TYPE_WITH(stitch::check(g), stitch::ShapeError,
                         "unsqueeze(s, 0) gives the 0-d s a dim");
}

TEST(FuzzRegression, ManifestWithMalformedComponentsGivesNoComponents) {
  EXPECT_TRUE(stitch::recorded_components(R"({"components": 5})").empty());
  EXPECT_TRUE(stitch::recorded_components(R"({"components": [1, {"name": 2}]})").empty());
  EXPECT_TRUE(stitch::recorded_components("[").empty());
  const auto ok = stitch::recorded_components(
      R"({"components": [{"name": "a", "sha256": "ff"}, {"name": "b"}]})");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].name, "a");
}

TEST(FuzzRegression, ArtifactMetadataIsReadWithoutLoadingTheModule) {
  const std::string zip =
      torch_zip({{"extra/stitch/spec.yaml", "inputs: {}\n"}, {"extra/stitch/manifest.json", "{}"}});
  const auto meta = stitch::metadata_from_archive(zip, "a.pt");
  EXPECT_EQ(meta.spec_yaml, "inputs: {}\n");
  EXPECT_EQ(meta.manifest_json, "{}");
  EXPECT_THROW_TYPE_WITH(stitch::metadata_from_archive("not a zip", "a.pt"), stitch::ModelError,
                         "cannot read a.pt: not a zip archive");
}

// A bit flipped in a model's code/ entry made TorchScript's parser throw a
// std::exception whose message went on with the source excerpt, and with the
// corrupt byte itself (a NUL, or bytes read past the text): the error was
// several lines and not printable. Found by the sanitized hostile-input run.
TEST(FuzzRegression, ParserErrorsBecomeOnePrintableLine) {
  const std::string message =
      "expected a valid token but found '\x01\x1b' here:\n"
      "Serialized   File \"code/x.py\", line 1\n\x7f\x7f\n~ <--- HERE\n";
  EXPECT_EQ(stitch::detail::first_line(message),
            "expected a valid token but found '" + std::string(2, '?') + "' here:");
  EXPECT_EQ(stitch::detail::first_line("a\0b"s), "a?b");
  EXPECT_EQ(stitch::detail::first_line("a\tb\r\n"), "a b");
}

}  // namespace

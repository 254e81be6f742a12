// The code scan of TorchScript archives (load/archive_check.h): which calls
// are file operators, and what strings, comments and definitions hide.

#include "load/archive_check.h"

#include <gtest/gtest.h>

namespace {

using stitch::file_operator_call;

TEST(FileOperatorCall, FindsTheOperatorsAndTheirLines) {
  EXPECT_EQ(file_operator_call("def forward(self, x):\n  return torch.from_file(p, True, 8)\n"),
            "torch.from_file, line 2");
  EXPECT_EQ(file_operator_call("x = 1\n\n\ntorch.save(x, self.path)\n"), "torch.save, line 4");
  EXPECT_EQ(file_operator_call("y = ops.image.write_png(t, 'a.png')\n"),
            "ops.image.write_png, line 1");
  EXPECT_EQ(file_operator_call("y = torch . ops . aten . from_file (p)\n"),
            "torch.ops.aten.from_file, line 1");
  EXPECT_EQ(file_operator_call("data = ops.image.read_file(path)\n"),
            "ops.image.read_file, line 1");
}

TEST(FileOperatorCall, IgnoresStringsCommentsDefinitionsAndOtherSaves) {
  EXPECT_EQ(file_operator_call("s = \"torch.save(x)\"\n# torch.from_file(p)\n"), std::nullopt);
  EXPECT_EQ(file_operator_call("s = '''\ntorch.save(x, p)\n'''\nz = 1\n"), std::nullopt);
  EXPECT_EQ(file_operator_call("def read_file(self, p: str):\n  return p\n"), std::nullopt);
  EXPECT_EQ(file_operator_call("y = self.read_file(p)\n"), std::nullopt);  // the model's own
  EXPECT_EQ(file_operator_call("y = self.save(x)\nz = torch.from_file\n"), std::nullopt);
  EXPECT_EQ(file_operator_call("x = 1e-5 + torch.relu(y)\n"), std::nullopt);
}

TEST(FileOperatorCall, LinesCountAcrossTripleQuotedStrings) {
  EXPECT_EQ(file_operator_call("\"\"\"a\nb\nc\"\"\"\ntorch.save(x, p)\n"), "torch.save, line 4");
}

}  // namespace

// One graph expression (`linear(concat(a, b, dim=1), 5)`) over fixed inputs,
// then shape checking of what it built.
#include "fuzz_util.h"
#include "stitch/check.h"
#include "stitch/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stitch::fuzz::expect_only_stitch_errors([&] {
    stitch::Graph g;
    const std::map<std::string, stitch::Value> scope = {
        {"image", g.input("image", {stitch::N, 3, 8, 8})},
        {"a", g.input("a", {stitch::N, 10})},
        {"b", g.input("b", {stitch::N, 4, stitch::Dim::symbol("T")})},
        {"ids", g.input("ids", {stitch::N, 6}, at::kLong)},
    };
    const stitch::Value out =
        stitch::parse_expression(g, stitch::fuzz::text(data, size), scope, {"fuzz", 1, 1});
    g.output("out", out);
    (void)stitch::check(g);
  });
  return 0;
}

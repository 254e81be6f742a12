// The spec loader: YAML text -> graph. A spec that loads and names no model
// files is also shape-checked, and the YAML written back from its graph must
// load again (it is what an artifact carries as stitch/spec.yaml).
#include <cstdlib>

#include "fuzz_util.h"
#include "stitch/check.h"
#include "stitch/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stitch::fuzz::expect_only_stitch_errors([&] {
    const stitch::Spec spec = stitch::parse_spec(stitch::fuzz::text(data, size), "fuzz.yaml");
    if (!spec.graph.models().empty()) return;  // loading model files is LibTorch's part
    (void)stitch::check(spec.graph);
    try {
      (void)stitch::parse_spec(stitch::to_spec_yaml(spec.graph), "written.yaml");
    } catch (const stitch::Error&) {
      std::abort();  // a checked graph must write a spec that reads back
    }
  });
  return 0;
}

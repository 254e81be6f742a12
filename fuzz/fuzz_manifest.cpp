// A saved artifact's metadata: the zip archive, then the stitch/spec.yaml
// and stitch/manifest.json in it, read as `verify` and `graph` read them.
#include "artifact/metadata.h"
#include "fuzz_util.h"
#include "stitch/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stitch::fuzz::expect_only_stitch_errors([&] {
    const auto meta = stitch::metadata_from_archive(stitch::fuzz::text(data, size), "fuzz.pt");
    stitch::recorded_components(meta.manifest_json);
    if (!meta.spec_yaml.empty()) (void)stitch::parse_spec(meta.spec_yaml, "fuzz.pt");
  });
  return 0;
}

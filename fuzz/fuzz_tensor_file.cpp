// A tensor file, read as `stitch run` and `stitch train` read it. Built once
// per format: FUZZ_FILE_NAME's extension picks the reader (fuzz.npy,
// fuzz.safetensors, fuzz.pt).
#include "fuzz_util.h"
#include "io/tensor_io_bytes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stitch::fuzz::expect_only_stitch_errors(
      [&] { stitch::detail::read_tensor_bytes(stitch::fuzz::text(data, size), FUZZ_FILE_NAME); });
  return 0;
}

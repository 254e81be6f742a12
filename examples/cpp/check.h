#pragma once
// A tiny helper for the examples: compare and report, exit 1 on mismatch.

#include <torch/script.h>

#include <cstdlib>
#include <iostream>
#include <string>

inline void expect_close(const std::string& what, const torch::Tensor& got,
                         const torch::Tensor& expected) {
  const bool ok = got.sizes() == expected.sizes() && torch::allclose(got, expected, 1e-5, 1e-6);
  std::cout << what << ": " << (ok ? "same numbers" : "MISMATCH") << " " << got.sizes() << "\n";
  if (!ok) std::exit(1);
}

// A program outside the project, built against an installed stitch with
// find_package(stitch): proves the install and the package config work.
#include <stitch/stitch.h>

#include <iostream>
int main() {
  stitch::Graph g;
  auto x = g.input("x", {stitch::N, 4});
  g.output("y", stitch::linear(x, 2));
  auto m = g.build();
  std::cout << m.forward({torch::ones({3, 4})}).toTensor().sizes() << "\n";
}

#include "check/example_inputs.h"

#include <fmt/format.h>

#include "stitch/shape.h"

namespace stitch {

namespace {

bool is_lengths(const ExampleSlot& slot) {
  if (at::isFloatingType(slot.dtype) || slot.dtype == at::kBool || slot.sizes.size() != 1) {
    return false;
  }
  std::string name = slot.name;
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name.find("len") != std::string::npos;
}

std::string type_text(const ExampleSlot& slot) {
  return fmt::format("{}[{}]", dtype_str(slot.dtype), fmt::join(slot.sizes, ", "));
}

}  // namespace

std::optional<int64_t> example_fill(const std::vector<ExampleSlot>& slots, size_t i) {
  const ExampleSlot& slot = slots.at(i);
  if (at::isFloatingType(slot.dtype)) return std::nullopt;
  if (slot.probe) return slot.probe;
  if (!is_lengths(slot)) return std::nullopt;
  for (const auto& other : slots) {
    if (at::isFloatingType(other.dtype) && other.sizes.size() >= 2) return other.sizes[1];
  }
  return std::nullopt;
}

std::vector<at::Tensor> example_tensors(const std::vector<ExampleSlot>& slots,
                                        at::Generator generator) {
  std::vector<at::Tensor> tensors;
  for (size_t i = 0; i < slots.size(); ++i) {
    const ExampleSlot& slot = slots[i];
    const auto options = at::TensorOptions().dtype(slot.dtype);
    if (at::isFloatingType(slot.dtype)) {
      tensors.push_back(at::randn(slot.sizes, generator, at::kFloat).to(slot.dtype));
    } else if (auto fill = example_fill(slots, i)) {
      tensors.push_back(at::full(slot.sizes, *fill, options));
    } else {
      tensors.push_back(at::randint(0, 2, slot.sizes, generator, options));
    }
  }
  return tensors;
}

std::string example_text(const std::vector<ExampleSlot>& slots) {
  std::string text;
  for (size_t i = 0; i < slots.size(); ++i) {
    const ExampleSlot& slot = slots[i];
    std::string values = "random ids 0-1";
    if (at::isFloatingType(slot.dtype)) {
      values = "random";
    } else if (auto fill = example_fill(slots, i)) {
      values = fmt::format("all {}", *fill);
      if (!slot.probe) values += " (a lengths input: the sequence length)";
    }
    text +=
        fmt::format("{}{}: {} {}", text.empty() ? "" : ", ", slot.name, type_text(slot), values);
  }
  return text;
}

}  // namespace stitch

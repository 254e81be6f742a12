#pragma once
// Model surgery: `cut`, `after` and `taps` rewrite a component's TorchScript
// so it returns an inner child's output, or starts from it.

#include "component.h"

namespace stitch {

/// Applies the component's spec.cut / spec.after / spec.taps to its module.
/// Throws ModelError for unknown paths (with the nearest names).
void apply_surgery(Component& component);

}  // namespace stitch

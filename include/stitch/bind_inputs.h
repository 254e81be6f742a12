#pragma once
// Values given for a model's or a spec's inputs, matched to the inputs they
// are for: the one rule behind `stitch run`, `inspect`, `bench` and the
// library calls they make.

#include <string>
#include <vector>

namespace stitch {

/// For each of `given` (input names as written; "" for one given without a
/// name, which is for the first input), the input it is for. `owner` names
/// what takes the inputs in messages ("the model", "the spec"). Throws
/// stitch::Error for an unnamed value when there are several inputs or
/// none, a name `inputs` lacks, or an input given twice.
std::vector<std::string> bind_input_names(const std::string& owner,
                                          const std::vector<std::string>& inputs,
                                          const std::vector<std::string>& given);

}  // namespace stitch

#include "stitch/bind_inputs.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

#include "stitch/error.h"

namespace stitch {

std::vector<std::string> bind_input_names(const std::string& owner,
                                          const std::vector<std::string>& inputs,
                                          const std::vector<std::string>& given) {
  std::vector<std::string> bound;
  std::set<std::string> seen;
  for (const std::string& name : given) {
    std::string input = name;
    if (input.empty()) {
      if (inputs.empty()) throw Error(owner + " takes no inputs");
      if (inputs.size() > 1 && given.size() > 1) {
        throw Error(fmt::format("{} takes {} ({}); name each", owner,
                                detail::count_of(static_cast<int64_t>(inputs.size()), "input"),
                                fmt::join(inputs, ", ")));
      }
      input = inputs[0];
    } else if (std::find(inputs.begin(), inputs.end(), input) == inputs.end()) {
      throw Error::no_such_input(owner, input, inputs);
    }
    if (!seen.insert(input).second) {
      throw Error(fmt::format("input '{}' is given twice", input));
    }
    bound.push_back(std::move(input));
  }
  return bound;
}

}  // namespace stitch

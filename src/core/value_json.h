#pragma once
// Values as scripts read them in stitch's --json output: shapes as lists
// (sizes as numbers, dynamic dims as their names), dtypes by name, NaN as
// null, text that is not valid UTF-8 with its bad bytes replaced.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "stitch/shape.h"

namespace stitch::detail {

/// "float[N, 512]", or null when there is no type.
nlohmann::json type_json(const std::optional<ValueType>& t);
/// [1, 512, 7, 7] or ["N", 512]; null for anything but a tensor.
nlohmann::json shape_json(const std::optional<ValueType>& t);
/// "float"; null for anything but a tensor.
nlohmann::json dtype_json(const std::optional<ValueType>& t);
/// The number, or null when it is NaN or infinite (JSON has neither).
nlohmann::json number_json(double x);
/// Indented by 2, one value per line, ending in a newline.
std::string dump_json(const nlohmann::json& j);

}  // namespace stitch::detail

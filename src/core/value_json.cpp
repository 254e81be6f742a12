#include "core/value_json.h"

#include <cmath>

namespace stitch::detail {

nlohmann::json type_json(const std::optional<ValueType>& t) {
  return t ? nlohmann::json(t->str()) : nlohmann::json(nullptr);
}

nlohmann::json shape_json(const std::optional<ValueType>& t) {
  if (!t || !t->is_tensor()) return nullptr;
  auto shape = nlohmann::json::array();
  for (const auto& d : t->shape) {
    shape.push_back(d.is_static() ? nlohmann::json(d.size()) : nlohmann::json(d.str()));
  }
  return shape;
}

nlohmann::json dtype_json(const std::optional<ValueType>& t) {
  return t && t->is_tensor() ? nlohmann::json(dtype_str(t->dtype)) : nlohmann::json(nullptr);
}

nlohmann::json number_json(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace stitch::detail

#include "ops/registry.h"

#include <map>

namespace stitch {

namespace {

struct Table {
  std::map<std::string, OpDef> by_name;
  std::vector<const OpDef*> sorted;
};

const Table& table() {
  static const Table kTable = [] {
    Table t;
    for (auto family : {merge_ops, shape_ops, learned_ops, fixed_ops, adapt_ops}) {
      for (auto& op : family()) {
        std::string name = op.name();
        t.by_name.emplace(std::move(name), std::move(op));
      }
    }
    for (const auto& [name, op] : t.by_name) t.sorted.push_back(&op);
    return t;
  }();
  return kTable;
}

}  // namespace

const ParamDef* OpSignature::param(const std::string& key) const {
  for (const auto& p : params) {
    if (p.name == key) return &p;
  }
  return nullptr;
}

const OpDef* find_op(const std::string& name) {
  auto it = table().by_name.find(name);
  return it == table().by_name.end() ? nullptr : &it->second;
}

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (const OpDef* op : all_ops()) names.push_back(op->name());
  return names;
}

const std::vector<const OpDef*>& all_ops() {
  return table().sorted;
}

}  // namespace stitch

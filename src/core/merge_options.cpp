#include "stitch/merge_options.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "stitch/error.h"

namespace stitch {

namespace {

constexpr MergeMethod kMethods[] = {MergeMethod::linear, MergeMethod::slerp,
                                    MergeMethod::task_arithmetic, MergeMethod::ties,
                                    MergeMethod::dare};

/// "0.7" -> 0.7; Error naming `what` for "", "x", "0.7x", nan or inf.
double parse_weight(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v)) {
    throw Error(fmt::format("{}: '{}' is not a number", what, text));
  }
  return v;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    std::string part = text.substr(start, end == std::string::npos ? end : end - start);
    const size_t first = part.find_first_not_of(' '), last = part.find_last_not_of(' ');
    parts.push_back(first == std::string::npos ? "" : part.substr(first, last - first + 1));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

}  // namespace

const char* merge_method_name(MergeMethod method) {
  switch (method) {
    case MergeMethod::linear:
      return "linear";
    case MergeMethod::slerp:
      return "slerp";
    case MergeMethod::task_arithmetic:
      return "task_arithmetic";
    case MergeMethod::ties:
      return "ties";
    case MergeMethod::dare:
      return "dare";
  }
  return "?";
}

std::string merge_method_names() {
  std::string out;
  for (MergeMethod m : kMethods) out += std::string(out.empty() ? "" : ", ") + merge_method_name(m);
  return out;
}

bool parse_merge_method(const std::string& name, MergeMethod& method) {
  for (MergeMethod m : kMethods) {
    if (name == merge_method_name(m)) {
      method = m;
      return true;
    }
  }
  return false;
}

std::vector<std::string> merge_method_list() {
  std::vector<std::string> out;
  for (MergeMethod m : kMethods) out.push_back(merge_method_name(m));
  return out;
}

const std::vector<std::string>& merge_method_options(MergeMethod method) {
  static const std::vector<std::string> kLinear = {"weights"}, kSlerp = {"t"},
                                        kTask = {"base", "scale"},
                                        kTies = {"base", "density", "scale"},
                                        kDare = {"base", "density", "seed", "scale"};
  switch (method) {
    case MergeMethod::linear:
      return kLinear;
    case MergeMethod::slerp:
      return kSlerp;
    case MergeMethod::task_arithmetic:
      return kTask;
    case MergeMethod::ties:
      return kTies;
    case MergeMethod::dare:
      return kDare;
  }
  return kLinear;
}

const std::vector<std::string>& merge_option_names() {
  static const std::vector<std::string> kNames = {"weights", "t",       "base",
                                                  "scale",   "density", "seed"};
  return kNames;
}

bool MergeOptions::uses(const std::string& name) const {
  const auto& names = merge_method_options(method_);
  return std::find(names.begin(), names.end(), name) != names.end();
}

double MergeOptions::number(const std::string& name) const {
  if (name == "t") return t_;
  if (name == "scale") return scale_;
  if (name == "density") return density_;
  if (name == "seed") return static_cast<double>(seed_);
  throw Error("MergeOptions::number: '" + name + "' is not a numeric option");
}

std::string MergeOptions::str() const {
  std::string out = merge_method_name(method_);
  for (const auto& name : merge_method_options(method_)) {
    if (name == "base") {
      out += " base=" + base_.filename().string();
    } else if (name == "weights") {
      const std::string w = merge_weights_text(*this);
      if (!w.empty()) out += " weights=" + w;
    } else {
      out += fmt::format(" {}={}", name, number(name));
    }
  }
  return out;
}

std::string merge_weights_text(const MergeOptions& options) {
  auto joined = [](const std::vector<double>& ws, const char* separator) {
    std::string out;
    for (double w : ws) out += fmt::format("{}{}", out.empty() ? "" : separator, w);
    return out;
  };
  if (options.glob_weights().empty()) return joined(options.weights(), ",");
  std::string out;
  auto entry = [&](const std::string& glob, const std::vector<double>& ws) {
    // GLOB=W for two models is W and 1 - W, as parse_merge_weights reads it.
    const bool one = ws.size() == 2 && ws[1] == 1.0 - ws[0];
    out += fmt::format("{}{}={}", out.empty() ? "" : ",", glob,
                       one ? fmt::format("{}", ws[0]) : joined(ws, ":"));
  };
  for (const auto& g : options.glob_weights()) entry(g.glob, g.weights);
  if (!options.weights().empty()) entry("*", options.weights());
  return out;
}

bool MergeOptions::needs_base() const {
  return method_ == MergeMethod::task_arithmetic || method_ == MergeMethod::ties ||
         method_ == MergeMethod::dare;
}

void MergeOptions::validate(size_t models, const std::string& prefix) const {
  const char* name = merge_method_name(method_);
  if (models < 2 && !(needs_base() && models == 1)) {
    throw Error(fmt::format("a {} merge needs at least two models, got {}", name, models));
  }
  if (method_ == MergeMethod::slerp && models != 2) {
    throw Error(
        fmt::format("slerp merges exactly two models, got {}; use linear (or merge "
                    "two at a time) for more",
                    models));
  }
  if (method_ != MergeMethod::linear && (!weights_.empty() || !glob_weights_.empty())) {
    throw Error(fmt::format("{}weights is for the linear method, not {}", prefix, name));
  }
  if (!weights_.empty() && weights_.size() != models) {
    throw Error(fmt::format("{}weights gives {} weights for {} models: give one per model", prefix,
                            weights_.size(), models));
  }
  for (const auto& g : glob_weights_) {
    if (g.weights.size() != models) {
      throw Error(
          fmt::format("{}weights gives {} weights for '{}' and {} models: give one per "
                      "model, joined by ':'",
                      prefix, g.weights.size(), g.glob, models));
    }
  }
  if (needs_base() && base_.empty()) {
    throw Error(
        fmt::format("{} needs {}base: the model the others were fine-tuned from", name, prefix));
  }
  if (!needs_base() && !base_.empty()) {
    throw Error(fmt::format("{}base is for task_arithmetic, ties and dare, not {}", prefix, name));
  }
  if (!(t_ >= 0 && t_ <= 1)) {
    throw Error(fmt::format("{}t must be from 0 to 1, got {}", prefix, t_));
  }
  if (!(density_ > 0 && density_ <= 1)) {
    throw Error(
        fmt::format("{}density must be > 0 and <= 1 (the fraction of each task vector "
                    "kept), got {}",
                    prefix, density_));
  }
  if (!std::isfinite(scale_)) {
    throw Error(fmt::format("{}scale must be a number, got {}", prefix, scale_));
  }
}

void parse_merge_weights(const std::string& text, size_t models, MergeOptions& options) {
  const std::string what = fmt::format("weights '{}'", text);
  if (text.find('=') == std::string::npos) {
    std::vector<double> weights;
    for (const auto& part : split(text, ',')) weights.push_back(parse_weight(part, what));
    options.weights(weights);
    return;
  }
  std::vector<GlobWeights> globs;
  for (const auto& entry : split(text, ',')) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(fmt::format("{}: write every entry as GLOB=WEIGHT, got '{}'", what, entry));
    }
    GlobWeights g;
    g.glob = entry.substr(0, eq);
    const std::vector<std::string> parts = split(entry.substr(eq + 1), ':');
    for (const auto& part : parts) g.weights.push_back(parse_weight(part, what));
    if (g.weights.size() == 1 && models == 2) g.weights.push_back(1.0 - g.weights[0]);
    if (g.weights.size() != models) {
      throw Error(
          fmt::format("{}: '{}' gives {} weight{} for {} models; give one per model "
                      "joined by ':' (GLOB=0.5:0.3:0.2)",
                      what, entry, g.weights.size(), g.weights.size() == 1 ? "" : "s", models));
    }
    globs.push_back(std::move(g));
  }
  options.glob_weights(globs);
}

}  // namespace stitch

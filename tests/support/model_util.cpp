// Helpers for model tests; see model_util.h.
#include "tests/support/model_util.h"

#include <sstream>

namespace fg::test {

std::map<std::string, Tensor> state_map(const nn::StateDict& sd) {
  std::map<std::string, Tensor> m;
  for (const auto& [k, t] : sd) m.emplace(k, t.clone());
  return m;
}

std::string state_lines(const nn::Module& m, const std::string& skip_prefix) {
  std::ostringstream os;
  bool first = true;
  for (const auto& [name, t] : m.state_dict()) {
    if (!skip_prefix.empty() && name.compare(0, skip_prefix.size(), skip_prefix) == 0) continue;
    os << (first ? "" : "\n") << name << " (";
    for (int64_t d = 0; d < t.dim(); ++d) os << (d ? ", " : "") << t.size(d);
    os << ")";
    first = false;
  }
  return os.str();
}

}  // namespace fg::test

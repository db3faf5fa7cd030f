#include "template.hpp"

#include <algorithm>

namespace sagec {

namespace {

// The template line holding offset `at`, for the error message.
std::string line_at(std::string_view tmpl, std::size_t at) {
  const auto begin = tmpl.rfind('\n', at);
  const auto from = begin == std::string_view::npos ? 0 : begin + 1;
  const auto end = std::min(tmpl.find('\n', at), tmpl.size());
  return std::string(tmpl.substr(from, end - from));
}

}  // namespace

std::string fill(std::string_view tmpl, const Vars& vars) {
  std::string out;
  out.reserve(tmpl.size());
  std::size_t i = 0;
  while (i < tmpl.size()) {
    const auto open = tmpl.find("{{", i);
    if (open == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    out.append(tmpl.substr(i, open - i));
    const auto close = tmpl.find("}}", open + 2);
    if (close == std::string_view::npos)
      throw TemplateError("sagec template: \"{{\" without \"}}\" in line: " + line_at(tmpl, open));
    const std::string key(tmpl.substr(open + 2, close - open - 2));
    const auto it = vars.find(key);
    if (it == vars.end())
      throw TemplateError("sagec template: no value for {{" + key + "}} in line: " + line_at(tmpl, open));
    out += it->second;
    i = close + 2;
  }
  return out;
}

}  // namespace sagec

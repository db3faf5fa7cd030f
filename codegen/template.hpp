// template.hpp: the text templates generated code is written with. A template is C++ text with
// {{name}} placeholders, filled from a map; a placeholder without a value is a bug in sagec, so
// fill() throws instead of leaving it in the output (as flatc's CodeWriter asserts).
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sagec {

using Vars = std::map<std::string, std::string>;

// A placeholder with no value, or a "{{" without its "}}": names the placeholder and where it is.
struct TemplateError : std::logic_error {
  using std::logic_error::logic_error;
};

// `tmpl` with every {{name}} replaced by vars.at(name). Values are inserted as they are (a value
// containing "{{" is not filled again). Throws TemplateError for an unknown or unclosed placeholder.
std::string fill(std::string_view tmpl, const Vars& vars);

}  // namespace sagec

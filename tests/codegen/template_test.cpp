// codegen/template.hpp: the {{name}} templates every generated line is written with.
#include <doctest/doctest.h>

#include <string>

#include "template.hpp"

using sagec::fill;
using sagec::TemplateError;

TEST_CASE("fill replaces every placeholder with its value, values inserted as they are") {
  CHECK(fill("struct {{name}} { {{type}} x; };", {{"name", "A"}, {"type", "int"}}) == "struct A { int x; };");
  CHECK(fill("{{a}}{{a}}", {{"a", "x"}}) == "xx");
  CHECK(fill("no placeholder", {}) == "no placeholder");
  // A value that looks like a placeholder stays as it is: values are not filled again.
  CHECK(fill("{{v}}", {{"v", "{{w}}"}}) == "{{w}}");
  CHECK(fill("return {a, {b}};", {}) == "return {a, {b}};");
}

TEST_CASE("fill throws naming the placeholder and its line when a placeholder has no value") {
  const std::string tmpl = "struct {{name}} {\n  {{membres}}\n};\n";
  CHECK_THROWS_AS(fill(tmpl, {{"name", "A"}, {"members", ""}}), TemplateError);
  try {
    fill(tmpl, {{"name", "A"}, {"members", ""}});
  } catch (const TemplateError& e) {
    CHECK(std::string(e.what()) == "sagec template: no value for {{membres}} in line:   {{membres}}");
  }
}

TEST_CASE("fill throws when a placeholder is not closed") {
  CHECK_THROWS_WITH_AS(fill("a {{name", {{"name", "x"}}), "sagec template: \"{{\" without \"}}\" in line: a {{name",
                       TemplateError);
}

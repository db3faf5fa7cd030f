// namer.hpp: the one place where schema names become C++ names (as flatc's idl_namer.h).
//
// Rules (docs/schemas.md, "Names"): a name is used as written unless it is
//   - a C++ keyword or alternative token (class, and, ...), or std/sage/flatbuffers;
//   - a macro that common headers define (errno, EOF, NULL, assert, stdin, linux/unix under
//     gnu++20, ...; the list is reserved_macros());
//   - for a type: the name of a generated member or nested type (Field, Layout, pack, encode, ...);
//   - for a field: the name of a generated member (packet_type, encode, pack, ...), or its own
//     class's C++ name;
// in which case it gets one trailing '_' (class -> class_). Escaping is deterministic and never
// depends on other names; two names of one scope that end up equal (fields `class` and `class_`)
// are refused by `sagec check` (collisions()), never renamed further.
// Type references in generated code are fully qualified (::ns::T), so a field may share a
// type's name.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <flatbuffers/idl.h>

namespace sagec {

const std::set<std::string>& cpp_keywords();
const std::set<std::string>& reserved_macros();
const std::set<std::string>& generated_members();  // names the generated classes use for themselves

std::string cpp_namespace_component(const std::string& name);
std::string cpp_type_name(const std::string& name);                                    // tables, structs, enums, unions
std::string cpp_enum_value(const std::string& name);
std::string cpp_member_name(const std::string& field, const std::string& class_name);  // class_name: the schema name

// Two schema names of one scope that map to one C++ name.
struct Collision {
  std::string first, second, cpp;  // schema names and the C++ name both get
  const flatbuffers::FieldDef* second_field = nullptr;  // for member collisions
};
std::vector<Collision> member_collisions(const flatbuffers::StructDef& s);
// "::ns::Name" with every part escaped.
std::string cpp_qualified_type(const flatbuffers::Definition& d);

std::vector<Collision> enum_value_collisions(const flatbuffers::EnumDef& e);

// Doc comment lines as `//` comments that cannot swallow the next line (a trailing backslash gets
// a '.' after it; carriage returns become spaces).
std::string cpp_doc_comment(const std::vector<std::string>& lines, const std::string& indent);

}  // namespace sagec

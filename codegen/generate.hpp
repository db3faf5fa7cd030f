// generate.hpp: the C++ generator behind `sagec generate`.
#pragma once

#include <string>
#include <vector>

#include "schema.hpp"

namespace sagec {

// "pancakes.sage.hpp" for "dir/pancakes.fbs".
std::string header_name(const std::string& schema_path);

// The header for the definitions `schema` owns (not those of files it includes; those get their own
// headers, which this one #includes). Precondition: check_schemas() passed for `schema`.
// Deterministic: the same schema text gives the same bytes, whatever the directories involved.
std::string generate_header(const Schema& schema);

// Whether `file` (as the parser knows it) declares a table, struct, enum or union: only those get a header.
bool defines_something(const flatbuffers::Parser& parser, const std::string& file);

// The schemas whose headers the header of `file` includes: those it includes that define
// something, and through those that define nothing, theirs.
std::vector<flatbuffers::IncludedFile> header_includes(const flatbuffers::Parser& parser, const std::string& file);

// Every file `schema` includes, directly or not, as the parser found it (for depfiles and for
// generating the headers of included schemas).
std::vector<std::string> included_files(const Schema& schema);

}  // namespace sagec

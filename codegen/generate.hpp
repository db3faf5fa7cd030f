// generate.hpp: the C++ generator behind `sagec generate`.
#pragma once

#include <string>

#include "schema.hpp"

namespace sagec {

// "pancakes.sage.hpp" for "dir/pancakes.fbs".
std::string header_name(const std::string& schema_path);

// The header for the definitions `schema` owns (not those of files it includes; those get their own
// headers, which this one #includes). Precondition: check_schemas() passed for `schema`.
// Deterministic: the same schema text gives the same bytes, whatever the directories involved.
std::string generate_header(const Schema& schema);

}  // namespace sagec

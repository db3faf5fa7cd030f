// generate_python.hpp: the Python generator behind `sagec generate --lang python`.
//
// One module `<stem>_sage.py` per schema (and per schema it includes that defines something, as for
// C++ headers). The module holds one class per table, struct, enum and union the schema defines; a
// table class has its fields as attributes with the schema's defaults, and wire messages add
// `packet_type`, `message_name`, `schema_description`, `fingerprint` and `max_depth` (the same
// values as the C++ class). The classes describe their fields in `_fields` / `_layout` tuples that
// the `sagepeer.flat` runtime (python/sagepeer/flat.py) encodes with the FlatBuffers Python
// runtime and decodes with bounds checks. Included schemas' modules are imported by name
// (`import sage_sage`), so the output directory must be on the module path.
// Deterministic: the same schema text gives the same bytes.
#pragma once

#include <string>

#include "schema.hpp"

namespace sagec {

// "pancakes_sage.py" for "dir/pancakes.fbs" (the stem with every non-identifier character as '_').
std::string python_module_file(const std::string& schema_path);

// The module for the definitions `schema` owns. Precondition: check_schemas() passed for `schema`.
std::string generate_python(const Schema& schema);

}  // namespace sagec

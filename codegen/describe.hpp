// describe.hpp: FlatBuffers' parse of a schema -> sage::schema::Description (runtime/schema/), the
// description the generated header embeds and the handshake sends; and `sagec check --against`'s
// comparison, which is sage::schema::compare() with its diagnostics placed on schema lines.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <flatbuffers/idl.h>

#include "compat.hpp"
#include "description.hpp"
#include "schema.hpp"

namespace sagec {

// The description of one wire message: its table (definition 0) and everything it reaches, depth
// first in field order. `table` must be a wire message (packet_type valid).
sage::schema::Description describe_message(const flatbuffers::StructDef& table);

// Every wire message the schemas define or include, merged into one description. Adds a diagnostic
// (and returns false) when a description would break parse()'s limits or two definitions conflict.
bool describe_schemas(const std::vector<std::unique_ptr<Schema>>& schemas, sage::schema::Description& out,
                      Diagnostics& diags);

// The generated header's `schema_description` / `fingerprint` of a wire message, after checking that
// the runtime's parser accepts it; an error message instead when it does not (size limits).
struct MessageDescription {
  std::string text;
  std::uint64_t fingerprint = 0;
  std::string error;
};
MessageDescription message_description(const flatbuffers::StructDef& table);

// sagec check --against: can `now` talk to peers built from `before`? Diagnostics located in the
// schema (new or old) where the change is. Returns true when there is no error (notes allowed).
// `as_peers` (--peers): judge them as the handshake judges two running peers (no history rule;
// sentences name `before` "the peer" and `now` "this node", as a node's refusal does).
bool check_compatible(const std::vector<std::unique_ptr<Schema>>& before,
                      const std::vector<std::unique_ptr<Schema>>& now, sage::schema::Level level, Diagnostics& diags,
                      bool as_peers = false);

}  // namespace sagec

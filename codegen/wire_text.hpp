// wire_text.hpp: `sagec encode` (JSON -> bytes) and `sagec decode` (bytes -> JSON).
//
// The bytes are the records of include/sage/wire.hpp (8-byte header, FlatBuffer payload, padding
// to 8), exactly what the runtime sends; with `raw`, a bare FlatBuffer.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "schema.hpp"

namespace sagec {

struct EncodeRequest {
  std::string type;  // qualified message name, "pancakes.FoodAvailableMessage" (or unqualified if unique)
  bool raw = false;  // a bare FlatBuffer instead of a record
  std::string json;
  std::string json_name;  // for diagnostics
};

// Returns the bytes, or an empty vector after adding diagnostics.
std::vector<std::byte> encode_json(const std::vector<std::unique_ptr<Schema>>& schemas, const EncodeRequest& req,
                                   Diagnostics& diags);

struct DecodeRequest {
  std::string type;  // required with raw; otherwise each record's packet_type picks the message
  bool raw = false;
  std::vector<std::byte> bytes;
  std::string input_name;
};

// One JSON object per line per record: {"packet_type": 101, "type": "...", "message": {...}}; with
// raw just the message object. Bytes that do not verify add diagnostics (and print nothing for them).
std::string decode_to_json(const std::vector<std::unique_ptr<Schema>>& schemas, const DecodeRequest& req,
                           Diagnostics& diags);

}  // namespace sagec

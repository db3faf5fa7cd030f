// runtime/secure/keys.hpp: the options' shared keys (sage::SharedKey) as the handshake's keys.
#pragma once

#include <string_view>
#include <vector>

#include "sage/network.hpp"
#include "secure/handshake.hpp"

namespace sage::detail {

// Throws usage_error naming `options_name` for a key id that is empty or over 64 bytes.
void check_keys(const std::vector<SharedKey>& keys, std::string_view options_name);
std::vector<secure::NamedKey> named_keys(const std::vector<SharedKey>& keys);

}  // namespace sage::detail

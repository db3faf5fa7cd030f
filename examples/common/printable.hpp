// examples/common/printable.hpp: text that came from another process (a peer's name, reason or
// chat line), made safe to print or relay: control characters (C0, DEL) escaped as \xHH, at most
// `max` bytes of it, "..." when cut. sage escapes what it logs itself (docs/runtime.md "Log
// lines"); what an application prints is the application's to escape.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

inline std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (const unsigned char c : s.substr(0, max)) {
    if (c < 0x20 || c == 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

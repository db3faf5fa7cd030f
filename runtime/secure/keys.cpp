// sage::SharedKey (sage/network.hpp) and the key checks of the options (secure/keys.hpp).
#include "secure/keys.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

#include "sage/manager.hpp"
#include "secure/handshake.hpp"

namespace sage {

SharedKey SharedKey::generate(std::string id) {
  SharedKey k;
  k.id = std::move(id);
  const detail::secure::Key bytes = detail::secure::random_key();
  std::memcpy(k.bytes.data(), bytes.data(), k.bytes.size());
  return k;
}

Result<SharedKey> SharedKey::from_hex(std::string id, std::string_view hex) {
  auto bytes = detail::secure::key_from_hex(hex);
  if (!bytes) return Error{Errc::malformed, "shared key '" + id + "': not 64 hex digits"};
  SharedKey k;
  k.id = std::move(id);
  std::memcpy(k.bytes.data(), bytes->data(), k.bytes.size());
  return k;
}

Result<SharedKey> SharedKey::from_file(std::string id, const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{Errc::io_error, "cannot read shared key file " + path + ": " + std::strerror(errno)};
  std::ostringstream text;
  text << in.rdbuf();
  std::string hex = text.str();
  const auto first = hex.find_first_not_of(" \t\r\n");
  const auto last = hex.find_last_not_of(" \t\r\n");
  hex = first == std::string::npos ? std::string() : hex.substr(first, last - first + 1);
  auto k = from_hex(std::move(id), hex);
  if (!k) return Error{Errc::malformed, "shared key file " + path + " does not hold 64 hex digits"};
  return k;
}

std::string SharedKey::hex() const {
  detail::secure::Key k;
  std::memcpy(k.data(), bytes.data(), k.size());
  return detail::secure::to_hex(k);
}

namespace detail {

void check_keys(const std::vector<SharedKey>& keys, std::string_view options_name) {
  for (const SharedKey& k : keys)
    if (k.id.empty() || k.id.size() > secure::max_key_id)
      throw usage_error("sage: " + std::string(options_name) + "::keys: a key id must be 1.." +
                        std::to_string(secure::max_key_id) + " bytes ('" + k.id.substr(0, 80) + "')");
}

std::vector<secure::NamedKey> named_keys(const std::vector<SharedKey>& keys) {
  std::vector<secure::NamedKey> out;
  for (const SharedKey& s : keys) {
    secure::NamedKey n{s.id, {}};
    std::memcpy(n.key.data(), s.bytes.data(), n.key.size());
    out.push_back(std::move(n));
  }
  return out;
}

}  // namespace detail
}  // namespace sage

#include "sage/version.hpp"

namespace sage {
std::string_view version() noexcept { return "0.1.0"; }
}  // namespace sage

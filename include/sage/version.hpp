#pragma once
#include <string_view>

namespace sage {
std::string_view version() noexcept;
}  // namespace sage

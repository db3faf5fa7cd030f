// alloc_counter.hpp: counts operator new calls in a benchmark executable that links
// alloc_counter.cpp (which replaces the global operator new/delete). Any thread may allocate.
#pragma once

#include <cstdint>

namespace bench {
// operator new calls so far in this process (relaxed: read it on the measuring thread).
std::uint64_t allocations() noexcept;
}  // namespace bench

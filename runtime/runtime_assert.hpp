// runtime/runtime_assert.hpp: SAGE_ASSERT(cond) checks an invariant of sage's own code (an own bug,
// not a caller bug or an expected failure). Active in debug and sanitizer builds (!NDEBUG or
// SAGE_ASSERTIONS): prints the condition and where, then aborts. Compiled out otherwise.
#pragma once

#if !defined(NDEBUG) || defined(SAGE_ASSERTIONS)
#include <cstdlib>

#include "log/log.hpp"
#define SAGE_ASSERT(cond)                                                                                   \
  do {                                                                                                      \
    if (!(cond)) [[unlikely]] {                                                                             \
      ::sage::detail::log::write(::sage::detail::log::Level::error, "internal", "internal error: ", __FILE__, ":",   \
                                 __LINE__, ": ", __func__, ": assertion '", #cond, "' failed");                  \
      std::abort();                                                                                         \
    }                                                                                                       \
  } while (false)
#else
#define SAGE_ASSERT(cond) ((void)0)
#endif

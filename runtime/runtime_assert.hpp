// runtime/runtime_assert.hpp: SAGE_ASSERT(cond) checks an invariant of sage's own code (an own bug,
// not a caller bug or an expected failure). Active in debug and sanitizer builds (!NDEBUG or
// SAGE_ASSERTIONS): prints the condition and where, then aborts. Compiled out otherwise.
#pragma once

#if !defined(NDEBUG) || defined(SAGE_ASSERTIONS)
#include <cstdio>
#include <cstdlib>
#define SAGE_ASSERT(cond)                                                                                   \
  do {                                                                                                      \
    if (!(cond)) [[unlikely]] {                                                                             \
      std::fprintf(stderr, "sage: internal error: %s:%d: %s: assertion '%s' failed\n", __FILE__, __LINE__, \
                   __func__, #cond);                                                                        \
      std::abort();                                                                                         \
    }                                                                                                       \
  } while (false)
#else
#define SAGE_ASSERT(cond) ((void)0)
#endif

# cmake -DCXX=... -DHEADER=sage/x.hpp -DINCLUDE=.../include -P compile_header.cmake
# Compiles a translation unit that includes only HEADER, with only INCLUDE on the include path.
string(MAKE_C_IDENTIFIER "${HEADER}" stem)
set(tu "${CMAKE_CURRENT_BINARY_DIR}/public_header_${stem}.cpp")
file(WRITE "${tu}" "#include \"${HEADER}\"\n")
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I${INCLUDE} ${tu}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
file(REMOVE "${tu}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${HEADER} does not compile on its own:\n${out}")
endif()

# sage_generate(TARGET <target> SCHEMAS <a.fbs>... [INCLUDE_DIRS <dir>...] [OUTPUT_DIR <dir>]
#               [LANGUAGE cpp|python])
#
# Runs `sagec generate` on the schemas at build time and defines <target>, an INTERFACE library
# that carries the generated headers' directory and sage::runtime:
#
#   sage_generate(TARGET game_messages SCHEMAS game.fbs)
#   target_link_libraries(game PRIVATE game_messages)   # then #include "game.sage.hpp"
#
# List the schemas whose headers you include; the schemas they include (directly or not) get
# their headers too (game.fbs includes common.fbs: common.sage.hpp is generated beside
# game.sage.hpp), so listing only the top schema works.
#
# Rebuilds: sagec reruns when a listed schema, a schema it includes (sagec writes a depfile) or
# sagec itself changes, and writes a header only when its content changed, so touching a schema
# recompiles nothing. Includes are also scanned at configure time (the header names must be known
# then): adding an `include` re-runs CMake. The custom command's OUTPUT is a stamp file and the
# headers are BYPRODUCTS, for Ninja and Makefiles alike.
#
# LANGUAGE python (docs/python.md) generates Python modules (<stem>_sage.py) instead: <target> is
# then a custom target (built by `all`) whose SAGE_PYTHON_DIR property is the modules' directory.
#
# Relative paths are relative to the calling CMakeLists.txt; headers go to OUTPUT_DIR (default
# ${CMAKE_CURRENT_BINARY_DIR}/<target>_sage). Works in sage's own tree, through
# add_subdirectory(sage) and through find_package(sage) (the imported sage::sagec).

# The function runs with the policies set here (CMake records them when a function is defined),
# not the caller's: DEPFILE paths are taken as written (absolute) with CMP0116 NEW.
cmake_policy(SET CMP0116 NEW)
set(_SAGE_GENERATE_DIR "${CMAKE_CURRENT_LIST_DIR}")

# The schema directories sagec searches after the schema's own directory and -I: sage's shipped
# schemas (sage.fbs), in the source tree or next to an installed package.
function(_sage_builtin_schema_dirs out)
  set(dirs "")
  foreach(candidate "${_SAGE_GENERATE_DIR}/../schemas" "${_SAGE_GENERATE_DIR}/../../../share/sage/schemas"
                    "${SAGE_SCHEMA_DIR}")
    if(candidate AND IS_DIRECTORY "${candidate}")
      get_filename_component(candidate "${candidate}" ABSOLUTE)
      list(APPEND dirs "${candidate}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES dirs)
  set(${out} "${dirs}" PARENT_SCOPE)
endfunction()

# Every schema reachable from `schemas` through `include "x.fbs";` (comments stripped), and the
# ones among them that declare something (and so get a header). Unresolvable includes are left
# to sagec, which reports them with file:line.
function(_sage_scan_includes out_all out_defining)
  cmake_parse_arguments(PARSE_ARGV 2 S "" "" "SCHEMAS;DIRS")
  set(todo ${S_SCHEMAS})
  set(seen "")
  set(defining "")
  while(todo)
    list(POP_FRONT todo file)
    if(file IN_LIST seen)
      continue()
    endif()
    list(APPEND seen "${file}")
    file(READ "${file}" text)
    string(REGEX REPLACE "//[^\n]*" "" text "${text}")
    string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" text "${text}")
    if(text MATCHES "(^|[;{}\n\t ])(table|struct|enum|union)[\n\t ]+[A-Za-z_]")
      list(APPEND defining "${file}")
    endif()
    get_filename_component(own_dir "${file}" DIRECTORY)
    string(REGEX MATCHALL "include[\n\t ]+\"[^\"]+\"" includes "${text}")
    foreach(inc IN LISTS includes)
      string(REGEX REPLACE "^include[\n\t ]+\"([^\"]+)\"$" "\\1" name "${inc}")
      foreach(dir IN LISTS own_dir S_DIRS)
        if(EXISTS "${dir}/${name}")
          get_filename_component(found "${dir}/${name}" ABSOLUTE)
          list(APPEND todo "${found}")
          break()
        endif()
      endforeach()
    endforeach()
  endwhile()
  set(${out_all} "${seen}" PARENT_SCOPE)
  set(${out_defining} "${defining}" PARENT_SCOPE)
endfunction()

function(sage_generate)
  cmake_parse_arguments(PARSE_ARGV 0 SG "" "TARGET;OUTPUT_DIR;LANGUAGE" "SCHEMAS;INCLUDE_DIRS")
  if(NOT SG_LANGUAGE)
    set(SG_LANGUAGE cpp)
  endif()
  if(NOT SG_LANGUAGE MATCHES "^(cpp|python)$")
    message(FATAL_ERROR "sage_generate(TARGET ${SG_TARGET}): LANGUAGE is cpp or python, not ${SG_LANGUAGE}")
  endif()
  if(NOT SG_TARGET)
    message(FATAL_ERROR "sage_generate: TARGET is required")
  endif()
  if(NOT SG_SCHEMAS)
    message(FATAL_ERROR "sage_generate(TARGET ${SG_TARGET}): SCHEMAS is required")
  endif()
  if(SG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "sage_generate(TARGET ${SG_TARGET}): unknown arguments ${SG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET sage::sagec)
    message(FATAL_ERROR "sage_generate: no sage::sagec target; use find_package(sage) or add_subdirectory(sage) first")
  endif()
  if(NOT SG_OUTPUT_DIR)
    set(SG_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/${SG_TARGET}_sage")
  endif()
  get_filename_component(SG_OUTPUT_DIR "${SG_OUTPUT_DIR}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")

  # In-tree sage::sagec is an alias of the real target; use that name so that COMMAND and DEPENDS
  # get the target-level and file-level dependency. An imported sagec is depended on by its file.
  get_target_property(sagec_real sage::sagec ALIASED_TARGET)
  if(sagec_real)
    set(sagec_command ${sagec_real})
    set(sagec_depends ${sagec_real})
  else()
    set(sagec_command sage::sagec)
    set(sagec_depends $<TARGET_FILE:sage::sagec>)
  endif()

  set(schemas "")
  set(schema_dirs "")
  foreach(schema IN LISTS SG_SCHEMAS)
    get_filename_component(abs "${schema}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    if(NOT EXISTS "${abs}")
      message(FATAL_ERROR "sage_generate(TARGET ${SG_TARGET}): schema ${schema} not found (${abs})")
    endif()
    get_filename_component(dir "${abs}" DIRECTORY)
    list(APPEND schemas "${abs}")
    list(APPEND schema_dirs "${dir}")
  endforeach()
  set(include_args "")
  set(include_dirs "")
  foreach(dir IN LISTS SG_INCLUDE_DIRS)
    get_filename_component(abs "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND include_args -I "${abs}")
    list(APPEND include_dirs "${abs}")
  endforeach()

  _sage_builtin_schema_dirs(builtin)
  _sage_scan_includes(all_schemas defining SCHEMAS ${schemas} DIRS ${schema_dirs} ${include_dirs} ${builtin})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${all_schemas})
  set(headers "")
  foreach(schema IN LISTS all_schemas)
    if(schema IN_LIST schemas OR schema IN_LIST defining)
      get_filename_component(stem "${schema}" NAME_WLE)
      if(SG_LANGUAGE STREQUAL "python")
        string(MAKE_C_IDENTIFIER "${stem}" module)
        list(APPEND headers "${SG_OUTPUT_DIR}/${module}_sage.py")
      else()
        list(APPEND headers "${SG_OUTPUT_DIR}/${stem}.sage.hpp")
      endif()
    endif()
  endforeach()
  list(REMOVE_DUPLICATES headers)

  set(stamp "${SG_OUTPUT_DIR}/${SG_TARGET}.stamp")
  set(depfile "${SG_OUTPUT_DIR}/${SG_TARGET}.d")
  add_custom_command(
    OUTPUT "${stamp}"
    BYPRODUCTS ${headers}
    COMMAND ${sagec_command} generate -o "${SG_OUTPUT_DIR}" --lang ${SG_LANGUAGE} --depfile "${depfile}" --stamp "${stamp}"
            ${include_args} ${schemas}
    DEPENDS ${schemas} ${sagec_depends}
    DEPFILE "${depfile}"
    COMMENT "sagec: generating ${SG_TARGET} from ${SG_SCHEMAS}"
    VERBATIM)
  if(SG_LANGUAGE STREQUAL "python")
    # Python modules: a target that generates them (built by `all`); the directory is the target's
    # SAGE_PYTHON_DIR property (put it on PYTHONPATH, next to sage's python/ directory).
    add_custom_target(${SG_TARGET} ALL DEPENDS "${stamp}")
    set_target_properties(${SG_TARGET} PROPERTIES SAGE_PYTHON_DIR "${SG_OUTPUT_DIR}")
    return()
  endif()
  add_custom_target(${SG_TARGET}_generate DEPENDS "${stamp}")
  add_library(${SG_TARGET} INTERFACE)
  add_dependencies(${SG_TARGET} ${SG_TARGET}_generate)
  target_include_directories(${SG_TARGET} INTERFACE "${SG_OUTPUT_DIR}")
  target_link_libraries(${SG_TARGET} INTERFACE sage::runtime)
endfunction()

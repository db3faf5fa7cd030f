# sage_generate(TARGET <target> SCHEMAS <a.fbs>... [INCLUDE_DIRS <dir>...] [OUTPUT_DIR <dir>])
#
# Runs `sagec generate` on the schemas at build time and defines <target>, an INTERFACE library
# that carries the generated headers' directory and sage::runtime:
#
#   sage_generate(TARGET game_messages SCHEMAS messages.fbs)
#   target_link_libraries(game PRIVATE game_messages)   # then #include "messages.sage.hpp"
#
# sagec reruns only when a listed schema or sagec itself changes. List every schema whose headers
# you use (a schema included by another one but not listed is not watched). Relative paths are
# relative to the calling CMakeLists.txt; headers go to OUTPUT_DIR (default
# ${CMAKE_CURRENT_BINARY_DIR}/<target>_sage). Works in sage's own tree, through add_subdirectory(sage)
# and through find_package(sage) (the imported sage::sagec).
function(sage_generate)
  cmake_parse_arguments(PARSE_ARGV 0 SG "" "TARGET;OUTPUT_DIR" "SCHEMAS;INCLUDE_DIRS")
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
  set(headers "")
  foreach(schema IN LISTS SG_SCHEMAS)
    get_filename_component(abs "${schema}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    get_filename_component(stem "${schema}" NAME_WLE)
    list(APPEND schemas "${abs}")
    list(APPEND headers "${SG_OUTPUT_DIR}/${stem}.sage.hpp")
  endforeach()
  set(include_args "")
  foreach(dir IN LISTS SG_INCLUDE_DIRS)
    get_filename_component(abs "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND include_args -I "${abs}")
  endforeach()

  add_custom_command(
    OUTPUT ${headers}
    COMMAND ${sagec_command} generate -o "${SG_OUTPUT_DIR}" ${include_args} ${schemas}
    DEPENDS ${schemas} ${sagec_depends}
    COMMENT "sagec: generating ${SG_TARGET} from ${SG_SCHEMAS}"
    VERBATIM)
  add_custom_target(${SG_TARGET}_generate DEPENDS ${headers})
  add_library(${SG_TARGET} INTERFACE)
  add_dependencies(${SG_TARGET} ${SG_TARGET}_generate)
  target_include_directories(${SG_TARGET} INTERFACE "${SG_OUTPUT_DIR}")
  target_link_libraries(${SG_TARGET} INTERFACE sage::runtime)
endfunction()

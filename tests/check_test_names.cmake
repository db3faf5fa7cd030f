# cmake -DDIR=tests -P check_test_names.cmake: fails if a doctest TEST_CASE name contains ';'.
# doctest_discover_tests splits such a name into two ctests that match no test case, run nothing and
# pass, so the test itself would never run under ctest.
file(GLOB_RECURSE sources ${DIR}/*.cpp)
set(bad 0)
foreach(source IN LISTS sources)
  file(STRINGS ${source} lines REGEX "TEST_CASE\\(\"[^\"]*;")
  foreach(line IN LISTS lines)
    message("${source}: a TEST_CASE name contains ';' (ctest would not run it): ${line}")
    math(EXPR bad "${bad} + 1")
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "${bad} test case name(s) contain ';': use ',' or 'and'")
endif()

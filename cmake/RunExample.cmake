# Runs an example or a benchmark smoke test for ctest: passes when it exits 0 within ctest's timeout AND its output matches
# PASS (a regex). ctest's own PASS_REGULAR_EXPRESSION would ignore the exit code.
#   cmake -DPROGRAM=... -DARGS="a;b" -DPASS=regex -P RunExample.cmake
execute_process(COMMAND ${PROGRAM} ${ARGS} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "example exited with ${rc}")
endif()
if(NOT out MATCHES "${PASS}")
  message(FATAL_ERROR "example output does not match: ${PASS}")
endif()

// bench_report: reads the result lines of several benchmark executables' --csv output on stdin and
// prints them as one markdown table (common/harness.hpp). Other lines are ignored.
//
//   { build/bench/bench_local --csv; build/bench/bench_ipc --csv; } | build/bench/bench_report
#include <iostream>
#include <string>
#include <vector>

#include "../common/harness.hpp"

int main() {
  std::vector<bench::Row> rows;
  std::string line;
  while (std::getline(std::cin, line)) {
    bench::Row r;
    if (bench::parse_row(line, r)) rows.push_back(r);
  }
  if (rows.empty()) {
    std::cerr << "bench_report: no result lines on stdin\n";
    return 1;
  }
  bench::print_table(stdout, rows);
  return 0;
}

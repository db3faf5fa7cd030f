// bench_report: reads the result lines of several benchmark executables' --csv output on stdin and
// prints them as one markdown table (common/harness.hpp), or with --ratios sage's speed per
// baseline as tab-separated lines for scripts/bench --plot. Other lines are ignored.
//
//   { build/bench/bench_local --csv; build/bench/bench_ipc --csv; } | build/bench/bench_report [--ratios]
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "../common/harness.hpp"

int main(int argc, char** argv) {
  const bool ratios = argc == 2 && std::strcmp(argv[1], "--ratios") == 0;
  if (argc > 2 || (argc == 2 && !ratios)) {
    std::cerr << "usage: bench_report [--ratios] < result lines\n";
    return 2;
  }
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
  if (ratios)
    bench::print_ratios(stdout, rows);
  else
    bench::print_table(stdout, rows);
  return 0;
}

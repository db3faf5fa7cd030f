// harness.hpp: the small harness every sage benchmark executable shares (not part of sage's API).
//
// A benchmark executable registers cases; each case is one implementation (sage or a baseline)
// measuring one scenario. main() calls bench::main(), which
//   * with no --run: starts itself again once per case (`<exe> --run <case> [--quick]`), one case
//     after the other, so each case has a fresh process and its own peak RSS; then prints the
//     table (or, with --csv, the raw result lines that scripts/bench and bench_report combine);
//   * with --run <case>: runs that case in this process and prints its result lines.
//
// Result line (CSV, one per figure; fields never contain commas):
//   result,<scenario>,<metric>,<unit>,<higher|lower>,<implementation>,<value>,<peak RSS KiB>,<allocs/msg or ->
// The first implementation of a scenario is sage; the others are baselines.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// One figure of one case. allocs_per_msg < 0 means "not counted".
struct Figure {
  std::string metric;  // e.g. "msg/s", "p50 round trip"
  std::string unit;    // e.g. "msg/s", "us"
  bool higher_is_better = true;
  double value = 0;
  double allocs_per_msg = -1;
  long rss_kib = -1;  // when >= 0, the peak RSS to report (e.g. of a child process the case ran)
};

// A case: `scenario` (the row group, e.g. "queue+tick 16 B x 3 types"), `implementation`
// ("sage", "minimal FIFO", "CAF 0.17", ...), and the function measuring it (quick = smoke size).
struct Case {
  std::string id;  // unique, no spaces, used on the command line
  std::string scenario;
  std::string implementation;
  std::function<std::vector<Figure>(bool quick)> run;
};

// One parsed result line.
struct Row {
  std::string scenario, metric, unit, implementation;
  bool higher_is_better = true;
  double value = 0;
  long rss_kib = 0;
  double allocs_per_msg = -1;
};

// The one timing rule of every throughput case (sage and baselines alike): the clock starts when
// the receiver has the `warm`-th message (1/20 of the count, at least 1) and stops at the last, and
// the rate counts only the messages in between. Connection set-up, handshakes, process start-up and
// the first batches' allocations are outside it for every library, so they do not decide a ratio.
// Call received(n) with the number of messages received so far, after each one.
class StreamClock {
 public:
  using Clock = std::chrono::steady_clock;
  explicit StreamClock(std::uint64_t count) : count_(count), warm_(std::max<std::uint64_t>(1, count / 20)) {}
  void received(std::uint64_t n) {
    if (n == warm_) start_ = Clock::now();
    if (n == count_) end_ = Clock::now();
  }
  // Messages per second over [warm, count]; call after received(count).
  double rate() const {
    return static_cast<double>(count_ - warm_) / std::chrono::duration<double>(end_ - start_).count();
  }

 private:
  std::uint64_t count_, warm_;
  Clock::time_point start_{}, end_{};
};

inline long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// Fields are written without commas (a comma in a name becomes ';').
inline std::string field(std::string s) {
  std::replace(s.begin(), s.end(), ',', ';');
  return s;
}

inline void print_row(FILE* out, const Row& r) {
  std::fprintf(out, "result,%s,%s,%s,%s,%s,%.6g,%ld,", field(r.scenario).c_str(), field(r.metric).c_str(),
               field(r.unit).c_str(), r.higher_is_better ? "higher" : "lower", field(r.implementation).c_str(), r.value, r.rss_kib);
  if (r.allocs_per_msg < 0)
    std::fprintf(out, "-\n");
  else
    std::fprintf(out, "%.4g\n", r.allocs_per_msg);
}

inline bool parse_row(const std::string& line, Row& r) {
  std::vector<std::string> f;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    f.push_back(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (f.size() != 9 || f[0] != "result") return false;
  r.scenario = f[1];
  r.metric = f[2];
  r.unit = f[3];
  r.higher_is_better = f[4] == "higher";
  r.implementation = f[5];
  r.value = std::strtod(f[6].c_str(), nullptr);
  r.rss_kib = std::strtol(f[7].c_str(), nullptr, 10);
  r.allocs_per_msg = f[8] == "-" ? -1 : std::strtod(f[8].c_str(), nullptr);
  return true;
}

inline std::string format_value(double v) {
  char buf[64];
  const double a = std::fabs(v);
  if (a >= 1e9)
    std::snprintf(buf, sizeof buf, "%.3g G", v / 1e9);
  else if (a >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3g M", v / 1e6);
  else if (a >= 1e4)
    std::snprintf(buf, sizeof buf, "%.0f k", v / 1e3);
  else if (a >= 100)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

inline std::string format_allocs(double a) {
  if (a < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", a);
  return buf;
}

// Calls fn(scenario, metric, sage, baselines) per (scenario, metric) in first-seen order; `sage` is
// the first implementation named "sage..." (nullptr in a partial run).
template <class Fn>
void for_each_scenario(const std::vector<Row>& rows, Fn fn) {
  std::vector<std::pair<std::string, std::string>> order;  // (scenario, metric) in first-seen order
  for (const Row& r : rows)
    if (std::find(order.begin(), order.end(), std::pair(r.scenario, r.metric)) == order.end())
      order.emplace_back(r.scenario, r.metric);
  for (const auto& [scenario, metric] : order) {
    const Row* sage = nullptr;
    std::vector<const Row*> baselines;
    for (const Row& r : rows) {
      if (r.scenario != scenario || r.metric != metric) continue;
      if (r.implementation.rfind("sage", 0) == 0 && !sage)
        sage = &r;
      else
        baselines.push_back(&r);
    }
    fn(scenario, metric, sage, baselines);
  }
}

// sage's speed relative to a baseline: > 1 when sage is faster, whichever way the unit points.
inline double speed(const Row& sage, const Row& baseline) {
  return sage.higher_is_better ? sage.value / baseline.value : baseline.value / sage.value;
}

// Prints one markdown table: a line per (scenario, metric, baseline) with sage's figure, the
// baseline's, and sage's speed relative to it (>1: sage is faster, whichever way the unit points).
inline void print_table(FILE* out, const std::vector<Row>& rows) {
  std::fprintf(out,
               "| case | metric | sage | baseline | baseline figure | sage speed vs baseline | peak RSS MiB (sage / baseline) "
               "| allocs/msg (sage / baseline) |\n|---|---|---|---|---|---|---|---|\n");
  for_each_scenario(rows, [&](const std::string& scenario, const std::string& metric, const Row* sage,
                              const std::vector<const Row*>& baselines) {
    if (!sage) {  // a partial run (--only): the baselines alone
      for (const Row* b : baselines)
        std::fprintf(out, "| %s | %s | - | %s | %s %s | - | - / %.1f | - / %s |\n", scenario.c_str(), metric.c_str(),
                     b->implementation.c_str(), format_value(b->value).c_str(), b->unit.c_str(),
                     static_cast<double>(b->rss_kib) / 1024, format_allocs(b->allocs_per_msg).c_str());
      return;
    }
    const std::string sage_fig = format_value(sage->value) + " " + sage->unit;
    if (baselines.empty())
      std::fprintf(out, "| %s | %s | %s | - | - | - | %.1f | %s |\n", scenario.c_str(), metric.c_str(),
                   sage_fig.c_str(), static_cast<double>(sage->rss_kib) / 1024, format_allocs(sage->allocs_per_msg).c_str());
    for (const Row* b : baselines)
      std::fprintf(out, "| %s | %s | %s | %s | %s %s | %.2fx | %.1f / %.1f | %s / %s |\n", scenario.c_str(),
                   metric.c_str(), sage_fig.c_str(), b->implementation.c_str(), format_value(b->value).c_str(),
                   b->unit.c_str(), speed(*sage, *b), static_cast<double>(sage->rss_kib) / 1024,
                   static_cast<double>(b->rss_kib) / 1024, format_allocs(sage->allocs_per_msg).c_str(),
                   format_allocs(b->allocs_per_msg).c_str());
  });
}

// Prints sage's speed per (scenario, metric, baseline) as tab-separated lines for a plot:
//   <index>\t<speed>\t"<scenario> <metric> vs <baseline>"
// (gnuplot reads the quoted label as one column; double quotes in names become single ones).
inline void print_ratios(FILE* out, const std::vector<Row>& rows) {
  int index = 0;
  for_each_scenario(rows, [&](const std::string& scenario, const std::string& metric, const Row* sage,
                              const std::vector<const Row*>& baselines) {
    if (!sage) return;
    for (const Row* b : baselines) {
      std::string label = scenario + " " + metric + " vs " + b->implementation;
      std::replace(label.begin(), label.end(), '"', '\'');
      std::fprintf(out, "%d\t%.4g\t\"%s\"\n", index++, speed(*sage, *b), label.c_str());
    }
  });
}

// Runs `<self> --run <id> [--quick]` and collects its result lines; false if it failed.
inline bool run_isolated(const std::string& id, bool quick, std::vector<Row>& rows) {
  const std::string cmd = "/proc/" + std::to_string(getpid()) + "/exe --run " + id + (quick ? " --quick" : "");
  std::fflush(nullptr);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char line[1024];
  bool any = false;
  while (std::fgets(line, sizeof line, p)) {
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    Row r;
    if (parse_row(s, r)) {
      rows.push_back(r);
      any = true;
    } else {
      std::fprintf(stderr, "%s\n", s.c_str());  // the case's own diagnostics
    }
  }
  const int status = pclose(p);
  return any && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The entry point: see the top of this file. `title` names the executable in its table.
inline int main(int argc, char** argv, const char* title, const std::vector<Case>& cases) {
  bool quick = false, csv = false;
  std::string run, only;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--csv") {
      csv = true;
    } else if (a == "--run" && i + 1 < argc) {
      run = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--list") {
      for (const Case& c : cases) std::printf("%s\n", c.id.c_str());
      return 0;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--csv] [--only SUBSTRING] [--list] [--run CASE]\n"
                   "  --quick  smoke-test sizes (checks that the cases run, not their speed)\n"
                   "  --csv    print result lines instead of the table\n",
                   argv[0]);
      return 2;
    }
  }
  if (!run.empty()) {
    for (const Case& c : cases) {
      if (c.id != run) continue;
      std::vector<Figure> figures = c.run(quick);
      const long rss = peak_rss_kib();
      for (const Figure& f : figures)
        print_row(stdout, Row{c.scenario, f.metric, f.unit, c.implementation, f.higher_is_better, f.value,
                              f.rss_kib >= 0 ? f.rss_kib : rss, f.allocs_per_msg});
      std::fflush(stdout);
      return 0;
    }
    std::fprintf(stderr, "%s: no case '%s' (see --list)\n", argv[0], run.c_str());
    return 2;
  }
  std::vector<Row> rows;
  int failed = 0;
  for (const Case& c : cases) {
    if (!only.empty() && c.id.find(only) == std::string::npos) continue;
    if (!run_isolated(c.id, quick, rows)) {
      std::fprintf(stderr, "%s: case %s failed\n", title, c.id.c_str());
      ++failed;
    }
  }
  if (csv) {
    for (const Row& r : rows) print_row(stdout, r);
  } else {
    std::printf("%s%s: each case in its own process, one after the other\n\n", title, quick ? " --quick" : "");
    print_table(stdout, rows);
  }
  return failed ? 1 : 0;
}

}  // namespace bench

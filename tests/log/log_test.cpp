// Tests of the one log point (sage/log.hpp, runtime/log/log.hpp, docs/runtime.md "Log lines"):
// the handler, the default on stderr, escaping and capping of peer text, the rate limit of lines
// that carry it, and a peer over real TCP that tries to forge a log line.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "channel/protocol.hpp"
#include "log/log.hpp"
#include "nettest.sage.hpp"
#include "raw_tcp.hpp"
#include "sage/log.hpp"
#include "sage/manager.hpp"
#include "sage/network.hpp"
#include "transport/frame.hpp"

using namespace std::chrono_literals;
namespace log = sage::detail::log;
using Clock = std::chrono::steady_clock;

namespace {

struct Line {
  sage::LogLevel level;
  std::string component, text;
};

// Collects what the handler receives; restores the default handler and limits when it goes.
struct Captured {
  std::mutex mu;
  std::vector<Line> lines;
  Captured() {
    sage::set_log_handler([this](sage::LogLevel level, std::string_view component, std::string_view text) {
      std::lock_guard lk(mu);
      lines.push_back({level, std::string(component), std::string(text)});
    });
  }
  ~Captured() {
    sage::set_log_handler({});
    log::set_peer_line_limit(log::default_peer_line_burst, log::default_peer_line_interval);
  }
  std::size_t size() {
    std::lock_guard lk(mu);
    return lines.size();
  }
};

// stderr of this process goes to a file while it lives; text() reads what was written.
struct CapturedStderr {
  std::string path = std::filesystem::temp_directory_path() / ("sage-log-test-" + std::to_string(::getpid()));
  int saved = ::dup(2);
  CapturedStderr() {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    std::fflush(stderr);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~CapturedStderr() {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    ::unlink(path.c_str());
  }
  std::string text() const {
    std::fflush(stderr);
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("a log handler receives the level, the component and the text of each line, without the 'sage: ' prefix") {
  Captured got;
  log::write(log::Level::warning, "network", "network: refused ", log::peer("127.0.0.1:5"), ": ", 42);
  REQUIRE(got.lines.size() == 1);
  CHECK(got.lines[0].level == sage::LogLevel::warning);
  CHECK(got.lines[0].component == "network");
  CHECK(got.lines[0].text == "network: refused 127.0.0.1:5: 42");
  CHECK(sage::to_string(sage::LogLevel::error) == "error");
}

TEST_CASE("by default and after an empty handler, a log line goes to stderr as 'sage: <text>' on one line") {
  {
    Captured got;  // then restored to the default by its destructor
  }
  CapturedStderr err;
  log::write(log::Level::error, "groups", "group 'x': started without a link to the main group");
  sage::set_log_handler(nullptr);
  log::write(log::Level::info, "channel", "second");
  CHECK(err.text() == "sage: group 'x': started without a link to the main group\nsage: second\n");
}

TEST_CASE("set_log_handler(sage::discard_log) silences sage") {
  CapturedStderr err;
  sage::set_log_handler(sage::discard_log);
  log::write(log::Level::error, "groups", "not shown");
  sage::set_log_handler({});
  CHECK(err.text().empty());
}

TEST_CASE("a line from a handler that throws goes to stderr, and a line logged from inside the handler "
          "goes to stderr instead of calling the handler again") {
  CapturedStderr err;
  int calls = 0;
  sage::set_log_handler([&](sage::LogLevel, std::string_view, std::string_view text) {
    ++calls;
    if (text == "throw") throw std::runtime_error("handler broke");
    log::write(log::Level::info, "channel", "from inside: ", text);
  });
  log::write(log::Level::warning, "network", "throw");
  log::write(log::Level::warning, "network", "outer");
  sage::set_log_handler({});
  CHECK(calls == 2);
  CHECK(err.text() == "sage: throw\nsage: from inside: outer\n");
}

TEST_CASE("control characters in peer text are escaped and long peer text is capped, own text is kept") {
  CHECK(log::escape("a\nb\rc\td\x1b[31m\x7f\\e\x01") == "a\\nb\\rc\\td\\x1b[31m\\x7f\\\\e\\x01");
  CHECK(log::escape("caf\xc3\xa9") == "caf\xc3\xa9");  // UTF-8 is kept
  CHECK(log::escape(std::string(600, 'x')) == std::string(log::peer_text_cap, 'x') + "...(88 more bytes)");
  Captured got;
  log::write(log::Level::warning, "network", "own\ntext ", log::peer("evil\nsage: group failed: 'payments'"));
  REQUIRE(got.lines.size() == 1);
  CHECK(got.lines[0].text == "own\ntext evil\\nsage: group failed: 'payments'");
}

TEST_CASE("a peer line limit writes the first lines of a window, holds back the rest and then says how many") {
  log::PeerLineLimit limit(3, 1000ms);
  const auto t0 = Clock::now();
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += limit.admit(t0 + std::chrono::milliseconds(i));
  CHECK(admitted == 3);
  CHECK(limit.deadline() == t0 + 1000ms);
  CHECK(limit.roll(t0 + 999ms).lines == 0);  // the window is not over
  const auto held = limit.roll(t0 + 1500ms);
  CHECK(held.lines == 7);
  CHECK(held.ms == 1500);
  CHECK(limit.deadline() == Clock::time_point::max());
  CHECK(limit.admit(t0 + 1501ms));  // a new window
}

TEST_CASE("lines with peer text are rate-limited per component and the log point then reports how many it dropped, and "
          "lines without peer text are not limited") {
  Captured got;
  log::set_peer_line_limit(3, 50ms);
  for (int i = 0; i < 10; ++i) log::write(log::Level::warning, "network", "network: refused ", log::peer("p"), " ", i);
  log::write(log::Level::warning, "datagram", "datagram: refused ", log::peer("q"));  // another component
  for (int i = 0; i < 5; ++i) log::write(log::Level::info, "network", "own line ", i);
  CHECK(got.size() == 3 + 1 + 5);
  // The summary: written by roll() (the network pumps call it from their poll) once the window ends.
  const auto deadline = Clock::now() + 10s;
  std::string summary;
  while (summary.empty() && Clock::now() < deadline) {
    log::roll(Clock::now());
    std::lock_guard lk(got.mu);
    if (got.lines.size() > 9) summary = got.lines.back().text;
  }
  CHECK(summary.rfind("network: 7 more lines with text from peers not logged in the last ", 0) == 0);
  CHECK(got.lines.back().component == "network");
  CHECK(got.lines.back().level == sage::LogLevel::warning);
  CHECK(log::deadline() == Clock::time_point::max());
}

// docs/wire-format.md "TCP framing": an 8-byte header, then the records.
static void write_frame(int fd, const std::vector<std::byte>& body) {
  std::vector<std::byte> frame(sage::detail::frame_header_size);
  sage::detail::write_frame_header(frame.data(), static_cast<std::uint32_t>(body.size()));
  frame.insert(frame.end(), body.begin(), body.end());
  REQUIRE(::write(fd, frame.data(), frame.size()) == static_cast<ssize_t>(frame.size()));
}

static std::vector<std::byte> read_frame(int fd) {
  auto read_all = [&](std::byte* p, std::size_t n) {
    while (n > 0) {
      const ssize_t r = ::read(fd, p, n);
      REQUIRE(r > 0);
      p += r;
      n -= static_cast<std::size_t>(r);
    }
  };
  std::byte header[sage::detail::frame_header_size];
  read_all(header, sizeof header);
  std::uint32_t length = 0;
  std::memcpy(&length, header, 4);  // little endian, as this machine
  std::vector<std::byte> body(length);
  read_all(body.data(), body.size());
  return body;
}

TEST_CASE("a TCP peer that sends an error record with a newline cannot forge a log line: the text is escaped "
          "on one line") {
  namespace proto = sage::detail::protocol;
  sage::set_log_handler({});  // the default: what an operator reads on stderr
  CapturedStderr err;
  sage::Manager server;
  server.enable_network();
  server.register_messages(nettest::nettest_wire_messages{});
  const auto port = server.listen("127.0.0.1", 0).port;

  const int fd = sage::test_support::raw_tcp_connect(port);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // The server's hello comes first; a peer that copies its tables back passes the schema check.
  const auto deadline = Clock::now() + 20s;
  std::vector<std::byte> hello_body;
  for (pollfd p{fd, POLLIN, 0}; ::poll(&p, 1, 0) == 0 && Clock::now() < deadline; p.revents = 0) {
    server.tick();
    server.wait_for_next_tick(2ms);
  }
  hello_body = read_frame(fd);
  std::optional<proto::Hello> theirs;
  (void)sage::wire::for_each_record(hello_body, [&](const sage::wire::Record& rec) {
    if (rec.packet_type == proto::code(proto::Control::hello))
      if (auto h = proto::decode_hello(rec.payload)) theirs = *h;
  });
  REQUIRE(theirs.has_value());
  proto::Hello mine = *theirs;
  mine.pid = static_cast<std::uint32_t>(::getpid()) + 1;
  mine.name = "stranger";
  std::vector<std::byte> body;
  proto::append_control(body, proto::Control::hello, proto::encode_hello(mine));
  const std::string forged = "nope\nsage: group failed: 'payments': killed by signal 9";
  proto::append_control(body, proto::Control::error, proto::encode_error({proto::ErrorKind::handshake_refused, forged}));
  write_frame(fd, body);

  while (server.network_stats().handshakes_refused == 0 && Clock::now() < deadline) {
    server.tick();
    server.wait_for_next_tick(2ms);
  }
  ::close(fd);
  REQUIRE(server.network_stats().handshakes_refused == 1);
  const std::string text = err.text();
  INFO(text);
  bool escaped = false;
  for (const auto& line : lines_of(text)) {
    CHECK(line.rfind("sage: group failed", 0) == std::string::npos);
    if (line.find("refused this node: incompatible peer: refused by the peer: nope\\nsage: group failed: 'payments': killed by signal 9") !=
        std::string::npos)
      escaped = true;
  }
  CHECK(escaped);
}

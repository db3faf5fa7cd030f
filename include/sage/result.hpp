// sage/result.hpp: expected failures as values.
//
// sage separates two kinds of error (as KJ does):
//  - caller bugs (a wrong id, a message type that cannot be sent there) throw an exception derived
//    from sage::usage_error, or fail to compile where the type system can tell;
//  - expected failures (bytes from outside the process that do not decode, a peer that died) are
//    reported as values: sage::Error inside a sage::Result<T>.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sage {

// Why something that came from outside the process was refused.
enum class Errc : std::uint8_t {
  truncated = 1,        // fewer bytes than the header or the declared length says
  misaligned,           // a payload that does not start on an 8-byte boundary
  verify_failed,        // the FlatBuffers Verifier rejected the payload
  wrong_packet_type,    // a record of another message type than the one asked for
  unknown_packet_type,  // a packet_type nobody registered
  too_large,            // over the configured size limit
  malformed,            // anything else that does not follow docs/wire-format.md
  fingerprint_mismatch, // the peer was built from other schemas
  send_buffer_full,     // the peer does not keep up; nothing accepted was dropped
  peer_gone,            // the peer exited, crashed or disconnected
  io_error,             // a local resource or I/O failure: cannot listen or create the IPC directory,
                        // fork failed, out of file descriptors or memory (not the peer's fault)
  incompatible,         // the peer's schemas cannot talk to ours (the handshake's diagnostics), or it
                        // does not know the message type sent, or speaks another protocol version
  too_deep,             // a message nests deeper than sage::wire::max_message_depth tables
  not_admitted,         // a listener's admission refused the peer or the group it asked for
};

constexpr std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::truncated: return "truncated";
    case Errc::misaligned: return "misaligned";
    case Errc::verify_failed: return "verify failed";
    case Errc::wrong_packet_type: return "wrong packet type";
    case Errc::unknown_packet_type: return "unknown packet type";
    case Errc::too_large: return "too large";
    case Errc::malformed: return "malformed";
    case Errc::fingerprint_mismatch: return "schema fingerprint mismatch";
    case Errc::send_buffer_full: return "send buffer full";
    case Errc::peer_gone: return "peer gone";
    case Errc::io_error: return "I/O error";
    case Errc::incompatible: return "incompatible peer";
    case Errc::not_admitted: return "not admitted";
    case Errc::too_deep: return "too deep";
  }
  return "unknown error";
}

// An expected failure: a code to branch on and a sentence for people.
struct Error {
  Errc code{};
  std::string detail;  // e.g. "record of 12 bytes declares 40"

  std::string message() const {
    std::string m(to_string(code));
    if (!detail.empty()) m += ": " + detail;
    return m;
  }
  friend bool operator==(const Error& a, Errc b) noexcept { return a.code == b; }
};

// Base of the exceptions sage throws for caller bugs.
class usage_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Thrown by Result::value() when there is no value: reading a failed result is a caller bug.
class bad_result_access : public usage_error {
 public:
  explicit bad_result_access(const Error& e) : usage_error("sage::Result has no value: " + e.message()) {}
};

// Either a T or an Error: the vocabulary of C++23 std::expected (has_value(), value(), error(),
// operator*, operator->, value_or()), plus ok() and explicit operator bool. value() on an error
// throws bad_result_access (a caller bug); error() and operator* without checking are caller bugs
// too (error() on a value throws std::bad_variant_access here; std::expected leaves it undefined).
template <class T>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  using error_type = Error;

  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}                    // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}                // NOLINT
  Result(Errc code, std::string detail = {}) : v_(std::in_place_index<1>, Error{code, std::move(detail)}) {}

  bool ok() const noexcept { return v_.index() == 0; }
  bool has_value() const noexcept { return ok(); }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The value, or `fallback` converted to T when there is none.
  template <class U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }
  template <class U>
  T value_or(U&& fallback) && {
    return ok() ? std::get<0>(std::move(v_)) : static_cast<T>(std::forward<U>(fallback));
  }

  // Precondition: !ok().
  const Error& error() const& { return std::get<1>(v_); }
  Error& error() & { return std::get<1>(v_); }

 private:
  void check() const {
    if (!ok()) throw bad_result_access(std::get<1>(v_));
  }
  std::variant<T, Error> v_;
};

// Result of an operation that produces nothing but may fail.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  Result(Errc code, std::string detail = {}) : error_{code, std::move(detail)}, ok_(false) {}
  using value_type = void;
  using error_type = Error;
  bool ok() const noexcept { return ok_; }
  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  // Does nothing on success; throws bad_result_access on an error (as std::expected<void>::value()).
  void value() const {
    if (!ok_) throw bad_result_access(error_);
  }
  void operator*() const noexcept {}
  const Error& error() const { return error_; }

 private:
  Error error_{};
  bool ok_ = true;
};

}  // namespace sage

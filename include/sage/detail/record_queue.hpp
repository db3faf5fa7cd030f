// sage/detail/record_queue.hpp: the manager's message FIFO, a chain of reusable byte chunks.
//
// A record is a RecordHeader followed by the message, constructed in place. Chunks never move, so
// messages of any movable type stay where they were constructed until they are destroyed. Consumed
// chunks go back to a ChunkPool, so a manager in steady state allocates nothing per message.
// Single-threaded: the manager's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "sage/actor_id.hpp"
#include "sage/detail/message_type.hpp"
#include "sage/sender.hpp"

namespace sage::detail {

// Largest message alignment the queue supports (chunk data is aligned to this).
inline constexpr std::size_t max_message_align = 16;

// The start of a manager's per-type slot; records point to it, so dispatch finds the subscribers
// of a record without a lookup. Slots never move while records point to them.
struct TypeSlotHead {
  const MessageType* type;
};

struct RecordHeader {
  // const TypeSlotHead*, with flags in the low bits: aborted (the record was removed) and
  // has_destructor (the message must be destroyed; known without touching the type).
  std::uintptr_t slot;
  ActorId target;              // ActorId{} = every subscriber of the type
  std::uint32_t sender_index;  // Sender::index
  Sender::Kind sender_kind;    // Sender::kind
  std::uint8_t payload_offset; // where the message starts, from the start of the header
  std::uint16_t stride;        // bytes to the next record; 0 = the rest of the chunk (oversized records)

  static constexpr std::uintptr_t aborted_flag = 1;
  static constexpr std::uintptr_t destructor_flag = 2;
  static constexpr std::uintptr_t flags = aborted_flag | destructor_flag;

  const TypeSlotHead& type_slot() const noexcept { return *reinterpret_cast<const TypeSlotHead*>(slot & ~flags); }
  const MessageType& message_type() const noexcept { return *type_slot().type; }
  bool aborted() const noexcept { return (slot & aborted_flag) != 0; }
  bool has_destructor() const noexcept { return (slot & destructor_flag) != 0; }
  void* payload() noexcept { return reinterpret_cast<std::byte*>(this) + payload_offset; }
  Sender sender() const noexcept { return Sender{sender_kind, sender_index}; }

  static void* payload_at(void* header, std::size_t align) noexcept {
    const std::size_t a = align < 8 ? 8 : align;
    const auto p = reinterpret_cast<std::uintptr_t>(header) + sizeof(RecordHeader);
    return reinterpret_cast<void*>((p + a - 1) & ~(a - 1));
  }
};
static_assert(sizeof(RecordHeader) == 24);

struct alignas(max_message_align) Chunk {
  std::size_t capacity;  // bytes of data after the header
  std::size_t used;      // bytes of data holding records
  Chunk* next;           // the next chunk of a queue, or of the pool's free list
  std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
};

// Owns chunks nobody uses; hands them out again. Not copyable (a resource).
class ChunkPool {
 public:
  static constexpr std::size_t standard_capacity = 64 * 1024 - sizeof(Chunk);

  ChunkPool() = default;
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;
  ~ChunkPool() {
    while (free_) {
      Chunk* c = free_;
      free_ = c->next;
      release(c);
    }
  }

  // A chunk with at least `bytes` of data, empty. Allocates only when the pool has none that fits.
  Chunk* take(std::size_t bytes) {
    if (bytes <= standard_capacity && free_) {
      Chunk* c = free_;
      free_ = c->next;
      c->used = 0;
      c->next = nullptr;
      return c;
    }
    const std::size_t cap = bytes <= standard_capacity ? standard_capacity : bytes;
    void* mem = ::operator new(sizeof(Chunk) + cap, std::align_val_t{max_message_align});
    return new (mem) Chunk{cap, 0, nullptr};
  }

  // Takes back a chunk whose records were all destroyed. Oversized chunks are freed.
  void give(Chunk* c) noexcept {
    if (c->capacity != standard_capacity) return release(c);
    c->next = free_;
    free_ = c;
  }

 private:
  static void release(Chunk* c) noexcept { ::operator delete(c, std::align_val_t{max_message_align}); }
  Chunk* free_ = nullptr;
};

// FIFO of records. Records are appended at the back (push) and consumed at the front (consume);
// append() moves another queue's records behind this one's without touching them.
class RecordQueue {
 public:
  RecordQueue() = default;
  RecordQueue(const RecordQueue&) = delete;
  RecordQueue& operator=(const RecordQueue&) = delete;
  // Precondition: clear() was called (the queue cannot destroy records without the pool).
  ~RecordQueue() = default;

  // Live (not aborted) records.
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }

  // Constructs T from `msg` in a new record at the back. If constructing throws, nothing changes.
  template <class T, class M>
  void push(ChunkPool& pool, const TypeSlotHead& slot, ActorId target, Sender sender, M&& msg) {
    static_assert(alignof(T) <= max_message_align,
                  "sage: message types aligned to more than 16 bytes are not supported; wrap the data in "
                  "std::unique_ptr");
    constexpr std::size_t a = alignof(T) < 8 ? 8 : alignof(T);
    constexpr std::size_t payload_offset = (sizeof(RecordHeader) + a - 1) & ~(a - 1);
    constexpr std::size_t record_bytes = (payload_offset + sizeof(T) + 7) & ~std::size_t{7};
    Chunk* c = tail_;
    std::byte* base = nullptr;
    Chunk* fresh = nullptr;
    if (c) {  // records start 8-aligned; payload_at() aligns the payload from there
      std::byte* b = c->data() + c->used;
      auto* p = static_cast<std::byte*>(RecordHeader::payload_at(b, a));
      if (static_cast<std::size_t>(p - c->data()) + sizeof(T) <= c->capacity) base = b;
    }
    if (!base) {
      fresh = pool.take(record_bytes);
      base = fresh->data();
    }
    void* payload = RecordHeader::payload_at(base, a);
    if constexpr (std::is_nothrow_constructible_v<T, M&&>) {
      new (payload) T(std::forward<M>(msg));
    } else {
      try {
        new (payload) T(std::forward<M>(msg));
      } catch (...) {
        if (fresh) pool.give(fresh);
        throw;
      }
    }
    const auto end = (reinterpret_cast<std::uintptr_t>(payload) + sizeof(T) + 7) & ~std::uintptr_t{7};
    const auto stride = end - reinterpret_cast<std::uintptr_t>(base);
    static_assert(alignof(TypeSlotHead) > RecordHeader::flags);
    constexpr std::uintptr_t flag = std::is_trivially_destructible_v<T> ? 0 : RecordHeader::destructor_flag;
    new (base) RecordHeader{reinterpret_cast<std::uintptr_t>(&slot) | flag, target, sender.index, sender.kind,
                            static_cast<std::uint8_t>(static_cast<std::byte*>(payload) - base),
                            static_cast<std::uint16_t>(stride <= 0xffff ? stride : 0)};
    if (fresh) {
      if (tail_) {
        tail_->next = fresh;
      } else {
        head_ = fresh;
        read_ = 0;
      }
      tail_ = fresh;
      c = fresh;
    }
    c->used = static_cast<std::size_t>(reinterpret_cast<std::byte*>(end) - c->data());
    ++count_;
  }

  // Takes live records off the front one at a time and calls visit(RecordHeader&) with each, until
  // the queue is empty or stop() returns true (asked before each record). A record is off the
  // queue (size() and abort-safe) before visit sees it, and counts as consumed even if visit throws;
  // visit must destroy its message. Records may be aborted meanwhile (they are skipped), but
  // nothing may be pushed to or appended to this queue while it runs.
  template <class Stop, class Visit>
  void consume(ChunkPool& pool, Stop&& stop, Visit&& visit) {
    while (head_) {
      std::byte* const base = head_->data();
      const std::size_t end = head_->used;
      std::size_t at = read_;
      while (at < end) {
        auto* r = reinterpret_cast<RecordHeader*>(base + at);
        at = r->stride != 0 ? at + r->stride : end;
        if (r->aborted()) {
          read_ = at;
          continue;
        }
        if (stop()) return;
        read_ = at;
        --count_;
        visit(*r);
      }
      drop_head(pool);
    }
  }

  // Moves every record of `other` behind this queue's records; `other` is left empty.
  void append(RecordQueue&& other) noexcept {
    if (!other.head_) return;
    if (!head_) {
      std::swap(head_, other.head_);
      std::swap(tail_, other.tail_);
      std::swap(read_, other.read_);
      std::swap(count_, other.count_);
      return;
    }
    // Precondition: other.read_ == 0 (the manager never reads from the queue it appends).
    tail_->next = other.head_;
    tail_ = other.tail_;
    count_ += other.count_;
    other.head_ = other.tail_ = nullptr;
    other.read_ = other.count_ = 0;
  }

  // Calls f(RecordHeader&) for each live record, front to back.
  template <class F>
  void for_each(F&& f) noexcept(noexcept(f(std::declval<RecordHeader&>()))) {
    std::size_t at = read_;
    for (Chunk* c = head_; c; c = c->next, at = 0) {
      while (at < c->used) {
        auto* r = reinterpret_cast<RecordHeader*>(c->data() + at);
        at = next(c, at, *r);
        if (!r->aborted()) f(*r);
      }
    }
  }

  // Destroys the message of a live record and marks it aborted; consume() skips it.
  void abort(RecordHeader& r) noexcept {
    const MessageType& t = r.message_type();
    if (t.destroy) t.destroy(r.payload());
    r.slot |= RecordHeader::aborted_flag;
    --count_;
  }

  // Destroys every live record and gives every chunk back to `pool`.
  void clear(ChunkPool& pool) noexcept {
    for_each([&](RecordHeader& r) {
      const MessageType& t = r.message_type();
      if (t.destroy) t.destroy(r.payload());
    });
    while (head_) drop_head(pool);
    count_ = 0;
  }

 private:
  // Offset of the record after `r`, which starts at `at` in chunk `c`.
  static std::size_t next(const Chunk* c, std::size_t at, const RecordHeader& r) noexcept {
    return r.stride != 0 ? at + r.stride : c->used;
  }
  void drop_head(ChunkPool& pool) noexcept {
    Chunk* next = head_->next;
    pool.give(head_);
    head_ = next;
    read_ = 0;
    if (!head_) tail_ = nullptr;
  }

  Chunk* head_ = nullptr;  // records are read from here, at offset read_
  Chunk* tail_ = nullptr;  // records are written here
  std::size_t read_ = 0;
  std::size_t count_ = 0;
};

}  // namespace sage::detail

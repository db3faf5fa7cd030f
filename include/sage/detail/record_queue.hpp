// sage/detail/record_queue.hpp: the manager's message FIFO, a chain of reusable byte chunks.
//
// A record is a 16-byte RecordHeader, the target's ActorId when it has one, then the message,
// constructed in place (records start 8-aligned; the message is aligned to its own alignment).
// Chunks never move, so messages of any movable type stay where they were constructed until they
// are destroyed. Consumed chunks go back to a ChunkPool, so a manager in steady state allocates
// nothing per message. A record longer than a standard chunk gets a chunk of its own.
// Single-threaded: the manager's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
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
// Aligned to 64 so that a record's slot pointer has six low bits for its flags.
struct alignas(64) TypeSlotHead {
  const MessageType* type;
};

struct RecordHeader {
  // const TypeSlotHead*, with flags in the low bits: aborted (the record was removed),
  // has_destructor (the message must be destroyed), targeted (an ActorId follows the header),
  // padded (8 bytes of padding align the message to 16) and the Sender::Kind (two bits), each
  // known without touching the type.
  std::uintptr_t slot;
  std::uint32_t sender_index;         // Sender::index
  std::uint16_t sender_generation;    // Sender::generation
  std::uint16_t stride;               // bytes to the next record; 0 in an oversized chunk, which holds one record
  // Followed by the target's ActorId when targeted, then (aligned) the message.

  static constexpr std::uintptr_t aborted_flag = 1;
  static constexpr std::uintptr_t destructor_flag = 2;
  static constexpr std::uintptr_t targeted_flag = 4;
  static constexpr std::uintptr_t padded_flag = 8;
  static constexpr unsigned kind_shift = 4;  // Sender::Kind in bits 4 and 5
  static constexpr std::uintptr_t kind_bits = std::uintptr_t{3} << kind_shift;
  static constexpr std::uintptr_t flags = aborted_flag | destructor_flag | targeted_flag | padded_flag | kind_bits;

  const TypeSlotHead& type_slot() const noexcept { return *reinterpret_cast<const TypeSlotHead*>(slot & ~flags); }
  const MessageType& message_type() const noexcept { return *type_slot().type; }
  bool aborted() const noexcept { return (slot & aborted_flag) != 0; }
  bool has_destructor() const noexcept { return (slot & destructor_flag) != 0; }
  // For every subscriber of its type, trivially destructible: the common case dispatch tests first.
  bool plain() const noexcept { return (slot & (destructor_flag | targeted_flag)) == 0; }
  // The actor the record was queued for; ActorId{} = every subscriber of the type.
  ActorId target() const noexcept {
    if ((slot & targeted_flag) == 0) return ActorId{};
    ActorId id;
    std::memcpy(&id, reinterpret_cast<const std::byte*>(this) + sizeof(RecordHeader), sizeof(ActorId));
    return id;
  }
  // After the header, the target (targeted: 8 bytes) and the padding (padded: 8 bytes).
  void* payload() noexcept {
    return reinterpret_cast<std::byte*>(this) + sizeof(RecordHeader) + ((slot & targeted_flag) << 1) + (slot & padded_flag);
  }
  Sender sender() const noexcept {
    return Sender{static_cast<Sender::Kind>((slot & kind_bits) >> kind_shift), sender_index, sender_generation};
  }

  // Where the message of a record starting at `header` goes: after the header and the target if
  // any, aligned. Records start 8-aligned, so for alignments up to 8 this is a constant offset.
  static constexpr std::uintptr_t payload_at(std::uintptr_t header, bool targeted, std::size_t align) noexcept {
    const std::uintptr_t p = header + sizeof(RecordHeader) + (targeted ? sizeof(ActorId) : 0);
    if (align <= 8) return p;
    return (p + align - 1) & ~std::uintptr_t(align - 1);
  }
};
static_assert(sizeof(RecordHeader) == 16 && sizeof(ActorId) == 8);

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
  std::size_t size() const noexcept { return count_ - taken_; }
  // Records aborted over the queue's life: with size(), what tells how many consume() took.
  std::uint64_t aborted_total() const noexcept { return aborted_total_; }
  bool empty() const noexcept { return count_ == taken_; }

  // Constructs T from `msg` in a new record at the back. If constructing throws, nothing changes.
  template <class T, class M>
  void push(ChunkPool& pool, const TypeSlotHead& slot, ActorId target, Sender sender, M&& msg) {
    static_assert(alignof(T) <= max_message_align,
                  "sage: message types aligned to more than 16 bytes are not supported; wrap the data in "
                  "std::unique_ptr");
    const bool targeted = static_cast<bool>(target);
    // The fast path: the record fits behind the last one in the tail chunk (write_ is 8-aligned).
    std::uintptr_t base = write_;
    std::uintptr_t payload = RecordHeader::payload_at(base, targeted, alignof(T));
    constexpr std::size_t message_bytes = (sizeof(T) + 7) & ~std::size_t{7};  // keeps records 8-aligned
    std::uintptr_t end = payload + message_bytes;
    Chunk* fresh = nullptr;
    if (end > limit_) [[unlikely]] {
      // Chunk data is aligned to max_message_align, so the record takes exactly this much there.
      fresh = pool.take(RecordHeader::payload_at(0, targeted, alignof(T)) + message_bytes);
      base = reinterpret_cast<std::uintptr_t>(fresh->data());
      payload = RecordHeader::payload_at(base, targeted, alignof(T));
      end = payload + message_bytes;
    }
    if constexpr (std::is_nothrow_constructible_v<T, M&&>) {
      new (reinterpret_cast<void*>(payload)) T(std::forward<M>(msg));
    } else {
      try {
        new (reinterpret_cast<void*>(payload)) T(std::forward<M>(msg));
      } catch (...) {
        if (fresh) pool.give(fresh);
        throw;
      }
    }
    static_assert(alignof(TypeSlotHead) > RecordHeader::flags);
    constexpr std::uintptr_t destructor = std::is_trivially_destructible_v<T> ? 0 : RecordHeader::destructor_flag;
    // A record in a standard chunk is at most that chunk's capacity long (< 64 KiB); only a record
    // with a chunk to itself can be longer, and its stride is then not needed.
    const std::uintptr_t stride = end - base;
    constexpr bool may_be_oversized = RecordHeader::payload_at(8, true, max_message_align) + message_bytes > 0xffff;
    // The message is at base + 16, + 8 after a target, + 8 more when aligning it to 16 needed it.
    const std::uintptr_t padded = (payload - base) - sizeof(RecordHeader) - (targeted ? sizeof(ActorId) : 0);
    static_assert(RecordHeader::padded_flag == 8 && static_cast<unsigned>(Sender::Kind::peer) <= 3);
    auto* header = new (reinterpret_cast<void*>(base))
        RecordHeader{reinterpret_cast<std::uintptr_t>(&slot) | destructor | (targeted ? RecordHeader::targeted_flag : 0) |
                         padded | (static_cast<std::uintptr_t>(sender.kind) << RecordHeader::kind_shift),
                     sender.index, sender.generation,
                     static_cast<std::uint16_t>(!may_be_oversized || stride <= 0xffff ? stride : 0)};
    if (targeted) std::memcpy(header + 1, &target, sizeof(ActorId));
    if (fresh) [[unlikely]]
      link_tail(fresh);
    write_ = end;
    ++count_;
  }

  // Takes live records off the front one at a time and calls visit(RecordHeader&) with each, until
  // the queue is empty or stop() returns true (asked before each record). A record is off the
  // queue (size() and abort-safe) before visit sees it, and counts as consumed even if visit throws;
  // visit must destroy its message. Records may be aborted meanwhile (they are skipped), but
  // nothing may be pushed to or appended to this queue while it runs, nor consume() it again.
  template <class Stop, class Visit>
  void consume(ChunkPool& pool, Stop&& stop, Visit&& visit) {
    seal_tail();
    // taken_ is only written here (a plain store per record, no read back across visit).
    std::size_t taken = taken_;
    while (head_) {
      std::byte* const base = head_->data();
      if (head_->capacity != ChunkPool::standard_capacity) [[unlikely]] {  // one oversized record
        auto* r = reinterpret_cast<RecordHeader*>(base);
        if (read_ == 0 && !r->aborted()) {
          if (stop()) return;
          read_ = head_->used;
          taken_ = ++taken;
          visit(*r);
        }
        drop_head(pool);
        continue;
      }
      // Each record's address is a load of the previous one's stride: that chain is kept to a
      // load and an add (pointers, no select), since the rest of the loop overlaps with it.
      std::byte* const end = base + head_->used;
      std::byte* at = base + read_;
      while (at < end) {
        auto* r = reinterpret_cast<RecordHeader*>(at);
        at += r->stride;
        if (r->aborted()) {
          read_ = static_cast<std::size_t>(at - base);
          continue;
        }
        if (stop()) return;
        read_ = static_cast<std::size_t>(at - base);
        taken_ = ++taken;
        visit(*r);
      }
      drop_head(pool);
    }
  }

  // Moves every record of `other` behind this queue's records; `other` is left empty.
  void append(RecordQueue&& other) noexcept {
    if (!other.head_) return;
    other.seal_tail();
    if (!head_) {
      std::swap(head_, other.head_);
      std::swap(tail_, other.tail_);
      std::swap(read_, other.read_);
      std::swap(count_, other.count_);
      std::swap(taken_, other.taken_);
      std::swap(write_, other.write_);
      std::swap(limit_, other.limit_);
      other.count_ = other.taken_ = 0;  // this queue was empty
      return;
    }
    // Precondition: other.read_ == 0 (the manager never reads from the queue it appends).
    seal_tail();
    tail_->next = other.head_;
    tail_ = other.tail_;
    write_ = other.write_;
    limit_ = other.limit_;
    count_ += other.size();
    other.head_ = other.tail_ = nullptr;
    other.read_ = other.count_ = other.taken_ = 0;
    other.write_ = other.limit_ = 0;
  }

  // Calls f(RecordHeader&) for each live record, front to back.
  template <class F>
  void for_each(F&& f) noexcept(noexcept(f(std::declval<RecordHeader&>()))) {
    seal_tail();
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
    ++aborted_total_;
  }

  // Destroys every live record and gives every chunk back to `pool`.
  void clear(ChunkPool& pool) noexcept {
    for_each([&](RecordHeader& r) {
      const MessageType& t = r.message_type();
      if (t.destroy) t.destroy(r.payload());
    });
    while (head_) drop_head(pool);
    count_ = taken_ = 0;
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
    if (!head_) {
      tail_ = nullptr;
      write_ = limit_ = 0;
    }
  }
  // The tail chunk's `used` is written here rather than by every push (write_ is ahead of it).
  void seal_tail() noexcept {
    if (tail_) tail_->used = static_cast<std::size_t>(write_ - reinterpret_cast<std::uintptr_t>(tail_->data()));
  }
  // Makes `fresh` (which holds the record just written) the tail chunk.
  void link_tail(Chunk* fresh) noexcept {
    if (tail_) {
      seal_tail();
      tail_->next = fresh;
    } else {
      head_ = fresh;
      read_ = 0;
    }
    tail_ = fresh;
    limit_ = reinterpret_cast<std::uintptr_t>(fresh->data()) + fresh->capacity;
  }

  Chunk* head_ = nullptr;  // records are read from here, at offset read_
  Chunk* tail_ = nullptr;  // records are written here
  std::size_t read_ = 0;
  std::size_t count_ = 0;  // records pushed or appended, less those aborted
  std::size_t taken_ = 0;  // records consume() took; size() is count_ - taken_
  std::uint64_t aborted_total_ = 0;
  // Where the next record goes in the tail chunk, and the end of that chunk's data (both 0 when
  // there is no tail chunk): push() compares two integers to know the record fits. The tail's
  // `used` lags behind write_ until seal_tail(), which every reader calls first.
  std::uintptr_t write_ = 0;
  std::uintptr_t limit_ = 0;
};

}  // namespace sage::detail

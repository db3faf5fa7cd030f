"""sagepeer.wire: sage's TCP wire (docs/wire-format.md): frames, records, control payloads, the hello.

Frames: u32 body length, "SG", version 1, flags 0, then records. Records: u8 packet_type, u8 flags 0,
u16 reserved 0, u32 length, payload, zero padding to 8. Control packets 0..100; user (schema)
messages 101..255. Every decoder here raises WireError(code, text) for bad bytes, with the C++
runtime's codes ("malformed", "truncated", "too_large") and sentences.
"""

import struct

MAGIC = 0x45474153
PROTOCOL_VERSION = 2
FRAME_HEADER = struct.Struct("<I2sBB")
RECORD_HEADER = struct.Struct("<BBHI")
HELLO_HEADER = struct.Struct("<IHHQIIII")
MAX_HELLO_ENTRIES = 155
MAX_NAME = 255
MAX_DESCRIPTION_BYTES = 256 * 1024
MIN_USER_PACKET_TYPE = 101

HELLO, ROUTE, FROM, BYE, BYE_ACK, ERROR = 1, 2, 3, 4, 5, 6
HEARTBEAT, CLOSE, JOIN_GROUP, JOIN_ACK, ANNOUNCE = 32, 33, 34, 35, 36
CONTROL = {HELLO, ROUTE, FROM, BYE, BYE_ACK, ERROR, HEARTBEAT, CLOSE, JOIN_GROUP, JOIN_ACK, ANNOUNCE}
ERROR_HANDSHAKE_REFUSED = 3
ERROR_FULL = 5  # the listener is at max_peers (or max_peers_per_address): try again later


class WireError(Exception):
    def __init__(self, code, text):
        super().__init__(text)
        self.code, self.text = code, text


def frame(body):
    return FRAME_HEADER.pack(len(body), b"SG", 1, 0) + body


def record(packet_type, payload):
    return RECORD_HEADER.pack(packet_type, 0, 0, len(payload)) + payload + bytes(-len(payload) % 8)


def records(body):
    """(packet_type, payload) of every record of a frame body, in order; WireError at the first bad one
    (the records before it were already yielded)."""
    at, n = 0, len(body)
    if n == 0:
        raise WireError("truncated", "an empty frame")
    while at < n:
        if n - at < 8:
            raise WireError("truncated", "a record header cut short")
        ptype, flags, reserved, length = RECORD_HEADER.unpack_from(body, at)
        if flags or reserved:
            raise WireError("malformed", "record flags or reserved bytes are not zero")
        end = at + 8 + length
        if end > n:
            raise WireError("truncated", "a record of %d bytes runs past the end of its frame" % length)
        padded = min(n, end + (-length % 8))
        if any(body[end:padded]):
            raise WireError("malformed", "padding after a record must be zero")
        yield ptype, body[at + 8:end]
        at = padded


def entries_bytes(entries):
    return b"".join(struct.pack("<B7xQ", pt, fp) for pt, fp in sorted(entries.items()))


def schema_fingerprint(entries):
    h = 0xcbf29ce484222325
    for pt, fp in sorted(entries.items()):
        for b in bytes([pt]) + struct.pack("<Q", fp):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def encode_hello(name, entries, description, pid=0):
    """entries: {packet_type: fingerprint}; description: str."""
    n, d = name.encode("utf-8"), description.encode("utf-8")
    return (HELLO_HEADER.pack(MAGIC, PROTOCOL_VERSION, len(n), schema_fingerprint(entries), pid, len(entries), len(d), 0)
            + entries_bytes(entries) + n + d)


def _entries(p, at, count):
    out = {}
    last = 0
    for i in range(count):
        pt = p[at]
        if any(p[at + 1:at + 8]):
            raise WireError("malformed", "schema table entry %d has non-zero padding bytes" % i)
        if pt < MIN_USER_PACKET_TYPE:
            raise WireError("malformed", "schema table entry %d has packet_type %d (user messages are 101..255)" % (i, pt))
        if pt <= last:
            raise WireError("malformed", "schema table lists packet_type %d out of order or twice" % pt)
        last = pt
        out[pt] = struct.unpack_from("<Q", p, at + 8)[0]
        at += 16
    return out


class Hello:
    __slots__ = ("version", "name", "fingerprint", "pid", "entries", "description")


def decode_hello(p):
    if len(p) < 8:
        raise WireError("truncated", "hello of %d bytes, needs 8" % len(p))
    magic, version = struct.unpack_from("<IH", p, 0)
    if magic != MAGIC:
        raise WireError("malformed", "hello without the SAGE magic")
    h = Hello()
    h.version, h.name, h.fingerprint, h.pid, h.entries, h.description = version, "", 0, 0, {}, ""
    if version not in (1, PROTOCOL_VERSION):
        return h  # refused by check_hello, with its version
    header = 24 if version == 1 else 32
    if len(p) < header:
        raise WireError("truncated", "hello of %d bytes, needs %d" % (len(p), header))
    name_len, h.fingerprint, h.pid, count = struct.unpack_from("<HQII", p, 6)
    desc_len = 0 if version == 1 else struct.unpack_from("<I", p, 24)[0]
    if version != 1 and struct.unpack_from("<I", p, 28)[0] != 0:
        raise WireError("malformed", "hello reserved bytes 28..31 are not zero")
    if count > MAX_HELLO_ENTRIES:
        raise WireError("malformed", "hello lists %d message types; at most %d exist" % (count, MAX_HELLO_ENTRIES))
    if name_len > MAX_NAME:
        raise WireError("malformed", "hello name of %d bytes; at most %d" % (name_len, MAX_NAME))
    if desc_len > MAX_DESCRIPTION_BYTES:
        raise WireError("too_large", "hello schema description of %d bytes; at most %d" % (desc_len, MAX_DESCRIPTION_BYTES))
    if len(p) != header + 16 * count + name_len + desc_len:
        raise WireError("malformed", "hello length %d does not match its %d entries, name of %d and description of %d bytes"
                        % (len(p), count, name_len, desc_len))
    h.entries = _entries(p, header, count)
    at = header + 16 * count
    try:
        h.name = bytes(p[at:at + name_len]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("malformed", "hello name is not valid UTF-8") from None
    try:
        h.description = bytes(p[at + name_len:at + name_len + desc_len]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("malformed", "the schema description is not valid UTF-8") from None
    return h


def encode_announce(entries, description):
    d = description.encode("utf-8")
    return struct.pack("<II", len(entries), len(d)) + entries_bytes(entries) + d


def decode_announce(p):
    if len(p) < 8:
        raise WireError("truncated", "announce of %d bytes, needs 8" % len(p))
    count, desc_len = struct.unpack_from("<II", p, 0)
    if count == 0:  # an announce names types registered after the hello: one naming none is broken
        raise WireError("malformed", "announce lists no message types (k = 0; it must name 1..155)")
    if count > MAX_HELLO_ENTRIES or desc_len > MAX_DESCRIPTION_BYTES or len(p) != 8 + 16 * count + desc_len:
        raise WireError("malformed", "announce of %d bytes does not match its %d entries and description of %d bytes"
                        % (len(p), count, desc_len))
    entries = _entries(p, 8, count)
    try:
        return entries, bytes(p[8 + 16 * count:]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("malformed", "the schema description is not valid UTF-8") from None


def encode_name(name):
    n = name.encode("utf-8")
    return struct.pack("<H", len(n)) + n


def decode_name(p):
    if len(p) < 2:
        raise WireError("truncated", "group name field of %d bytes" % len(p))
    n = struct.unpack_from("<H", p, 0)[0]
    if len(p) != 2 + n or n > MAX_NAME:
        raise WireError("malformed", "group name declares %d bytes in a payload of %d" % (n, len(p)))
    try:
        return bytes(p[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("malformed", "group name is not valid UTF-8") from None


def encode_error(text, kind=ERROR_HANDSHAKE_REFUSED):
    t = text.encode("utf-8")
    return struct.pack("<II", kind, len(t)) + t


def decode_error(p):
    if len(p) < 8:
        raise WireError("truncated", "error report of %d bytes" % len(p))
    kind, n = struct.unpack_from("<II", p, 0)
    if len(p) != 8 + n:
        raise WireError("malformed", "error text length does not match the payload")
    return kind, bytes(p[8:]).decode("utf-8", "replace")

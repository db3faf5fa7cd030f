"""sagepeer.flat: the runtime of the classes `sagec generate --lang python` writes.

Generated classes describe their fields in tuples (``Table._fields``, ``Struct._layout``,
``Union._members``); this module encodes them with the FlatBuffers Python runtime (Debian's
python3-flatbuffers, ``flatbuffers.Builder``) and decodes bytes with a checked reader.

Contracts:
- ``T().encode()`` gives a finished FlatBuffer (root offset at byte 0, no file identifier), the
  bytes a C++ ``T::encode()`` would decode to an equal value; ``T.decode(b)`` reads bytes a C++
  class encoded. Field values follow the C++ classes: scalars (enums as ints, optional scalars
  ``None`` when absent), ``str`` for strings, lists for vectors, a struct instance for struct
  fields, ``None`` or an instance for table fields (a required table is always an instance), ``None``
  or an instance of a member table for unions.
- ``decode`` never trusts its input: every offset, length, alignment and vtable is checked before it
  is read (the FlatBuffers Python runtime has no Verifier), nesting is bounded by ``MAX_DEPTH`` (64
  tables, the root counting 1) and ``MAX_TABLES`` (1,000,000), as the C++ decoders
  (``sage::wire::max_message_depth`` / ``max_message_tables``). Anything wrong raises
  ``DecodeError`` and nothing else (a required field that is absent included); no partial value
  escapes.
- Strings are UTF-8; bytes that are not valid UTF-8 decode with ``surrogateescape`` and encode back
  to the same bytes.
"""

import math
import struct as _struct

import flatbuffers

__all__ = ["Table", "Struct", "Enum", "Union", "DecodeError", "EncodeError", "MAX_DEPTH", "MAX_TABLES"]

INF = math.inf
NAN = math.nan

MAX_DEPTH = 64
MAX_TABLES = 1_000_000

# Field kinds of Table._fields / Struct._layout.
SCALAR, STRING, STRUCT, TABLE, UNION, VSCALAR, VSTRING, VSTRUCT, VTABLE, VUNION = range(10)

_U8 = _struct.Struct("<B")
_U16 = _struct.Struct("<H")
_I32 = _struct.Struct("<i")
_U32 = _struct.Struct("<I")
_SCALARS = {c: _struct.Struct("<" + c) for c in "?bBhHiIqQfd"}


class DecodeError(ValueError):
    """Bytes that are not a valid FlatBuffer of the expected type (or break the limits)."""


class EncodeError(ValueError):
    """A value that cannot be encoded (a field of the wrong type, a number out of range)."""


class _Value:
    __slots__ = ()

    def _items(self):
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(a, b) for a, b in zip(self._items(), other._items()))

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = None

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__))

    def get_property(self, name):
        """pysage's accessor: the field `name` (the same as the attribute)."""
        return getattr(self, name)

    def to_dict(self):
        """The fields as a dict (nested values converted too), e.g. for logging or JSON."""
        return {n: _to_plain(getattr(self, n)) for n in self.__slots__}


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _to_plain(v):
    if isinstance(v, _Value):
        return v.to_dict()
    if isinstance(v, list):
        return [_to_plain(x) for x in v]
    return v


class Enum:
    """Base of generated enums: the values are class attributes (ints); a field holds an int, so values
    a newer peer added decode too."""

    _names = {}

    @classmethod
    def name_of(cls, value):
        """The value's name in the schema, or "" for a value without one."""
        return cls._names.get(value, "")


class Union:
    """Base of generated unions: tag constants as class attributes, ``_members`` tag -> table class."""

    _members = {}
    _names = {}

    @classmethod
    def tag_of(cls, value):
        """The wire tag of a member table instance (0 for None)."""
        if value is None:
            return 0
        for tag, member in cls._members.items():
            if type(value) is member:
                return tag
        raise EncodeError("%s is not a member of union %s" % (type(value).__name__, cls.message_name))


class Struct(_Value):
    """Base of generated structs (fixed layout, always present)."""

    __slots__ = ()
    _layout = (0, 1, ())
    _key = None

    def _pack_into(self, buf, at):
        for name, offset, kind, arg, count in self._layout[2]:
            value = getattr(self, name)
            if count:
                if len(value) != count:
                    raise EncodeError("%s.%s must have %d elements, not %d" % (self.message_name, name, count, len(value)))
                if kind == STRUCT:
                    size = arg._layout[0]
                    for i, v in enumerate(value):
                        v._pack_into(buf, at + offset + i * size)
                else:
                    s = _SCALARS[arg]
                    for i, v in enumerate(value):
                        s.pack_into(buf, at + offset + i * s.size, v)
            elif kind == STRUCT:
                value._pack_into(buf, at + offset)
            else:
                _SCALARS[arg].pack_into(buf, at + offset, value)

    @classmethod
    def _unpack_from(cls, buf, at):
        out = cls.__new__(cls)
        for name, offset, kind, arg, count in cls._layout[2]:
            if count:
                if kind == STRUCT:
                    size = arg._layout[0]
                    v = [arg._unpack_from(buf, at + offset + i * size) for i in range(count)]
                else:
                    s = _SCALARS[arg]
                    v = [s.unpack_from(buf, at + offset + i * s.size)[0] for i in range(count)]
            elif kind == STRUCT:
                v = arg._unpack_from(buf, at + offset)
            else:
                v = _SCALARS[arg].unpack_from(buf, at + offset)[0]
            setattr(out, name, v)
        return out

    def _layout_bytes(self):
        size = self._layout[0]
        buf = bytearray(size)
        try:
            self._pack_into(buf, 0)
        except (_struct.error, AttributeError, TypeError) as e:
            raise EncodeError("%s: %s" % (self.message_name, e)) from None
        return buf


class Table(_Value):
    """Base of generated tables; wire messages add packet_type, schema_description and fingerprint."""

    __slots__ = ()
    _fields = ()
    _slots = 0
    _key = None
    file_identifier = None  # the schema's, on its root_type only

    def encode(self):
        """The finished FlatBuffer of this value (bytes)."""
        b = flatbuffers.Builder(64)
        try:
            root = _encode_table(b, self)
        except (_struct.error, TypeError, AttributeError, OverflowError) as e:
            raise EncodeError("%s: %s" % (self.message_name, e)) from None
        ident = self.file_identifier
        b.Finish(root, ident.encode("ascii") if ident else None)
        return bytes(b.Output())

    @classmethod
    def decode(cls, data):
        """A value from the bytes of a FlatBuffer of this type; DecodeError if they are not one."""
        buf = bytes(data)
        if len(buf) < 8:
            raise DecodeError("%d bytes: too short for a FlatBuffer" % len(buf))
        if len(buf) >= 1 << 31:
            raise DecodeError("a FlatBuffer of 2 GiB or more")
        state = [0]
        root = _U32.unpack_from(buf, 0)[0]
        return _decode_table(cls, buf, root, 1, state)


# ------------------------------------------------------------------------------------------------
# Encoding (flatbuffers.Builder writes back to front: children before their parents)

def _write_raw(b, data, align):
    """Writes `data` (a struct's layout) at the builder's head, aligned to `align`."""
    b.Prep(align, len(data))
    b.head = b.head - len(data)
    b.Bytes[b.head:b.head + len(data)] = data


def _vector_of_bytes(b, data, elem_size, count, align):
    b.StartVector(elem_size, count, align)
    b.head = b.head - len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return b.EndVector()


def _string(b, s):
    if not isinstance(s, str):
        raise TypeError("a string field holds %s, not str" % type(s).__name__)
    # Bytes, not str: python3-flatbuffers 2.0.8's CreateString takes len(str) as the byte length.
    return b.CreateString(s.encode("utf-8", "surrogateescape"))


def _sorted_by_key(values, key):
    """Sorted by the (key) field, stably (equal keys keep their order); strings compare as UTF-8 bytes,
    as in C++ and FlatBuffers."""
    def k(v):
        x = getattr(v, key)
        return x.encode("utf-8", "surrogateescape") if isinstance(x, str) else x
    return sorted(values, key=k)


def _offsets_vector(b, offsets):
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _encode_table(b, obj):
    fields = obj._fields
    refs = {}
    tags = {}  # union type slots
    for name, slot, kind, arg, dflt, required in fields:
        value = getattr(obj, name)
        if kind == SCALAR or kind == STRUCT:
            continue
        if kind == STRING:
            refs[slot] = _string(b, value)
        elif kind == TABLE:
            if value is not None:
                if type(value) is not arg:
                    raise TypeError("%s.%s holds %s, not %s" % (obj.message_name, name, type(value).__name__, arg.__name__))
                refs[slot] = _encode_table(b, value)
        elif kind == UNION:
            tag = arg.tag_of(value)
            if tag:
                refs[slot] = _encode_table(b, value)
                tags[slot - 1] = tag
        elif kind == VSCALAR:
            s = _SCALARS[arg]
            data = _struct.pack("<%d%s" % (len(value), arg), *value)
            refs[slot] = _vector_of_bytes(b, data, s.size, len(value), s.size)
        elif kind == VSTRING:
            refs[slot] = _offsets_vector(b, [_string(b, s) for s in value])
        elif kind == VSTRUCT:
            if arg._key is not None:
                value = _sorted_by_key(value, arg._key)
            size, align = arg._layout[0], arg._layout[1]
            data = bytearray(size * len(value))
            for i, v in enumerate(value):
                if type(v) is not arg:
                    raise TypeError("%s.%s holds %s, not %s" % (obj.message_name, name, type(v).__name__, arg.__name__))
                v._pack_into(data, i * size)
            refs[slot] = _vector_of_bytes(b, bytes(data), size, len(value), align)
        elif kind == VTABLE:
            if arg._key is not None:
                value = _sorted_by_key(value, arg._key)
            for v in value:
                if type(v) is not arg:
                    raise TypeError("%s.%s holds %s, not %s" % (obj.message_name, name, type(v).__name__, arg.__name__))
            refs[slot] = _offsets_vector(b, [_encode_table(b, v) for v in value])
        elif kind == VUNION:
            vtags = [arg.tag_of(v) for v in value]
            if any(t == 0 for t in vtags):
                raise TypeError("%s.%s: a vector of unions cannot hold None" % (obj.message_name, name))
            offsets = [_encode_table(b, v) for v in value]
            refs[slot] = _offsets_vector(b, offsets)
            refs[slot - 1] = _vector_of_bytes(b, bytes(vtags), 1, len(vtags), 1)
    b.StartObject(obj._slots)
    # Largest scalars first, as the C++ builder packs them (only the layout differs otherwise).
    for name, slot, kind, arg, dflt, required in fields:
        if kind == SCALAR:
            value = getattr(obj, name)
            if value is None:
                if dflt is not None:
                    raise TypeError("%s.%s is None (only optional scalars may be)" % (obj.message_name, name))
                continue
            if value != dflt or (isinstance(value, float) and math.isnan(value)):
                s = _SCALARS[arg]
                b.Prep(s.size, 0)
                b.head = b.head - s.size
                s.pack_into(b.Bytes, b.head, value)
                b.Slot(slot)
        elif kind == STRUCT:
            value = getattr(obj, name)
            if type(value) is not arg:
                raise TypeError("%s.%s holds %s, not %s" % (obj.message_name, name, type(value).__name__, arg.__name__))
            _write_raw(b, value._layout_bytes(), arg._layout[1])
            b.Slot(slot)
    for slot, ref in refs.items():
        b.PrependUOffsetTRelativeSlot(slot, ref, 0)
    for slot, tag in tags.items():
        b.PrependUint8Slot(slot, tag, 0)
    return b.EndObject()


# ------------------------------------------------------------------------------------------------
# Decoding (checked)

def _u32(buf, at):
    if at < 0 or at + 4 > len(buf):
        raise DecodeError("an offset at %d is out of bounds" % at)
    return _U32.unpack_from(buf, at)[0]


def _deref(buf, at):
    """The position an uoffset at `at` points to (4-aligned)."""
    if at & 3:
        raise DecodeError("a misaligned offset at %d" % at)
    target = at + _u32(buf, at)
    if target >= len(buf):
        raise DecodeError("an offset at %d points past the end" % at)
    return target


def _vector(buf, at, elem_size, elem_align):
    """(start of the elements, count) of the vector an uoffset at `at` points to."""
    v = _deref(buf, at)
    if v & 3:
        raise DecodeError("a misaligned vector at %d" % v)
    n = _u32(buf, v)
    start = v + 4
    if elem_align > 4 and start % elem_align:
        raise DecodeError("a vector at %d is misaligned for its elements" % v)
    if start + n * elem_size > len(buf):
        raise DecodeError("a vector of %d elements at %d runs past the end" % (n, v))
    return start, n


def _read_string(buf, at):
    start, n = _vector(buf, at, 1, 1)
    if start + n >= len(buf) or buf[start + n] != 0:
        raise DecodeError("a string at %d is not zero-terminated" % (start - 4))
    return buf[start:start + n].decode("utf-8", "surrogateescape")


def _decode_table(cls, buf, pos, depth, state):
    if depth > MAX_DEPTH:
        raise DecodeError("tables nested deeper than %d" % MAX_DEPTH)
    state[0] += 1
    if state[0] > MAX_TABLES:
        raise DecodeError("more than %d tables" % MAX_TABLES)
    if pos & 3 or pos + 4 > len(buf):
        raise DecodeError("a table at %d is misaligned or out of bounds" % pos)
    vt = pos - _I32.unpack_from(buf, pos)[0]
    if vt & 1 or vt < 0 or vt + 4 > len(buf):
        raise DecodeError("the vtable of a table at %d is out of bounds" % pos)
    vtsize, tsize = _U16.unpack_from(buf, vt)[0], _U16.unpack_from(buf, vt + 2)[0]
    if vtsize & 1 or vtsize < 4 or vt + vtsize > len(buf) or tsize < 4 or pos + tsize > len(buf):
        raise DecodeError("the vtable of a table at %d is malformed" % pos)
    out = cls.__new__(cls)

    def field(slot, size):
        voff = 4 + 2 * slot
        if voff >= vtsize:
            return 0
        o = _U16.unpack_from(buf, vt + voff)[0]
        if o == 0:
            return 0
        if o + size > tsize:
            raise DecodeError("a field of %s lies outside its table" % cls.message_name)
        return pos + o

    for name, slot, kind, arg, dflt, required in cls._fields:
        if kind == SCALAR:
            s = _SCALARS[arg]
            at = field(slot, s.size)
            if at and s.size > 1 and at % s.size:
                raise DecodeError("a misaligned %s.%s" % (cls.message_name, name))
            value = s.unpack_from(buf, at)[0] if at else dflt
        elif kind == STRUCT:
            size, align = arg._layout[0], arg._layout[1]
            at = field(slot, size)
            if at and at % align:
                raise DecodeError("a misaligned %s.%s" % (cls.message_name, name))
            value = arg._unpack_from(buf, at) if at else arg()
        else:
            at = field(slot, 4)
            if not at:
                if required:
                    raise DecodeError("required field %s.%s is missing" % (cls.message_name, name))
                if kind == STRING:
                    value = dflt
                elif kind == TABLE or kind == UNION:
                    value = None
                else:
                    value = []
            elif kind == STRING:
                value = _read_string(buf, at)
            elif kind == TABLE:
                value = _decode_table(arg, buf, _deref(buf, at), depth + 1, state)
            elif kind == UNION:
                t = field(slot - 1, 1)
                tag = buf[t] if t else 0
                member = arg._members.get(tag)
                # A tag this build does not know (a newer peer's member) reads as NONE, as in C++.
                value = _decode_table(member, buf, _deref(buf, at), depth + 1, state) if member else None
            elif kind == VSCALAR:
                s = _SCALARS[arg]
                start, n = _vector(buf, at, s.size, s.size)
                value = list(_struct.unpack_from("<%d%s" % (n, arg), buf, start))
            elif kind == VSTRING:
                start, n = _vector(buf, at, 4, 4)
                value = [_read_string(buf, start + 4 * i) for i in range(n)]
            elif kind == VSTRUCT:
                size, align = arg._layout[0], arg._layout[1]
                start, n = _vector(buf, at, size, align)
                value = [arg._unpack_from(buf, start + size * i) for i in range(n)]
            elif kind == VTABLE:
                start, n = _vector(buf, at, 4, 4)
                value = [_decode_table(arg, buf, _deref(buf, start + 4 * i), depth + 1, state) for i in range(n)]
            else:  # VUNION
                start, n = _vector(buf, at, 4, 4)
                t = field(slot - 1, 4)
                if not t:
                    raise DecodeError("%s.%s has values but no types" % (cls.message_name, name))
                tstart, tn = _vector(buf, t, 1, 1)
                if tn != n:
                    raise DecodeError("%s.%s has %d values and %d types" % (cls.message_name, name, n, tn))
                value = []
                for i in range(n):
                    member = arg._members.get(buf[tstart + i])
                    value.append(_decode_table(member, buf, _deref(buf, start + 4 * i), depth + 1, state)
                                 if member else None)
        setattr(out, name, value)
    return out

"""sagepeer.schema: schema descriptions ("sage-schema 1") and the handshake's compatibility check.

A port of sage's runtime/schema/description.cpp (parse, to_text, merge, combine) and of compat.cpp's
compare() at the level and options the network handshake uses (wire level, both directions, two
peers rather than old and new: ``history = false``), so that a Python peer refuses exactly what a
C++ node refuses, with the same sentences ("field evo.Order.id is long in peer 1.2.3.4:5 but int in this
node").
docs/schemas.md has the grammar and the rules. parse() is strict and bounded (hostile input arrives
in a hello); it returns (description, error) and never raises for bad text.
"""

import re

FORMAT_LINE = "sage-schema 1"
MAX_DESCRIPTION_BYTES = 256 * 1024
MAX_DEFINITIONS = 4096
MAX_NAME_BYTES = 255
MAX_FIELD_ID = 32764
MAX_ARRAY_LENGTH = 65535
MAX_COMPARE_STEPS = 1 << 21
MAX_COMPARE_DIAGNOSTICS = 256

SCALARS = ("bool", "byte", "ubyte", "short", "ushort", "int", "uint", "long", "ulong", "float", "double")
_INTEGERS = set(SCALARS) - {"bool", "float", "double"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBER = re.compile(r"(0|[1-9][0-9]*)\Z")
_INTEGER = re.compile(r"(0|-?[1-9][0-9]*)\Z")
_DEFAULT = re.compile(r"[A-Za-z0-9.+\-]{1,64}\Z")

# Type: (element, scalar-or-definition, shape, array_length); element in "scalar", "string", "def", "utype";
# shape in "single", "vector", "array".


class Field:
    __slots__ = ("id", "name", "type", "default", "required", "deprecated")

    def __init__(self, id_, name, type_, default, required=False, deprecated=False):
        self.id, self.name, self.type, self.default = id_, name, type_, default
        self.required, self.deprecated = required, deprecated

    def key(self):
        return (self.id, self.name, self.type, self.default, self.required, self.deprecated)


class Definition:
    __slots__ = ("kind", "name", "fields", "values", "underlying", "size", "align")

    def __init__(self, kind, name):
        self.kind, self.name = kind, name
        self.fields, self.values = [], []  # values: (name, value text, table index or -1)
        self.underlying, self.size, self.align = "int", 0, 0

    def key(self):
        return (self.kind, self.name, tuple(f.key() for f in self.fields), tuple(self.values), self.underlying,
                self.size, self.align)


class Description:
    def __init__(self):
        self.messages = []  # (packet_type, definition index), ascending packet_type
        self.definitions = []

    def message_table(self, packet_type):
        for pt, d in self.messages:
            if pt == packet_type:
                return self.definitions[d]
        return None


def _number(s, limit=2**32 - 1):
    if not _NUMBER.match(s):
        return None
    v = int(s)
    return v if v <= limit else None


def _integer_text(s):
    if not _INTEGER.match(s):
        return False
    v = int(s)
    return -2**63 <= v < 2**64


def _qualified(s):
    return 0 < len(s) <= MAX_NAME_BYTES and all(_IDENT.match(p) for p in s.split("."))


def _identifier(s):
    return 0 < len(s) <= MAX_NAME_BYTES and bool(_IDENT.match(s))


def _parse_type(s):
    shape, length = "single", 0
    if len(s) >= 2 and s[0] == "[" and s[-1] == "]":
        s = s[1:-1]
        if ":" in s:
            s, _, n = s.partition(":")
            length = _number(n)
            if length is None or length == 0 or length > MAX_ARRAY_LENGTH:
                return None
            shape = "array"
        else:
            shape = "vector"
    if s == "string":
        return ("string", None, shape, length)
    if s in SCALARS:
        return ("scalar", s, shape, length)
    if s.startswith("utype@"):
        n = _number(s[6:])
        return None if n is None else ("utype", n, shape, length)
    if s.startswith("@"):
        n = _number(s[1:])
        return None if n is None else ("def", n, shape, length)
    return None


def _type_text(t):
    element, what, shape, length = t
    e = what if element == "scalar" else "string" if element == "string" else ("@%d" % what if element == "def" else "utype@%d" % what)
    if shape == "vector":
        return "[%s]" % e
    if shape == "array":
        return "[%s:%d]" % (e, length)
    return e


def type_name(d, t):
    """The spelling of a type in diagnostics: "int", "[string]", "table evo.Inner", "enum evo.Mood:byte"."""
    element, what, shape, length = t
    if element == "scalar":
        e = what
    elif element == "string":
        e = "string"
    elif what >= len(d.definitions):
        e = "?"
    else:
        dd = d.definitions[what]
        e = ("union_type " if element == "utype" else dd.kind + " ") + dd.name
        if dd.kind == "enum":
            e += ":" + dd.underlying
    if shape == "vector":
        return "[%s]" % e
    if shape == "array":
        return "[%s:%d]" % (e, length)
    return e


def to_text(d):
    out = [FORMAT_LINE + "\n"]
    for pt, i in d.messages:
        out.append("message %d %d\n" % (pt, i))
    for i, dd in enumerate(d.definitions):
        line = "%s %d %s" % (dd.kind, i, dd.name)
        if dd.kind == "struct":
            line += " size %d align %d" % (dd.size, dd.align)
        if dd.kind == "enum":
            line += " " + dd.underlying
        out.append(line + "\n")
        for f in dd.fields:
            out.append("field %d %s %s %s%s%s\n" % (f.id, f.name, _type_text(f.type), f.default,
                                                    " required" if f.required else "",
                                                    " deprecated" if f.deprecated else ""))
        for name, value, table in dd.values:
            tail = "" if dd.kind != "union" else (" -" if table < 0 else " @%d" % table)
            out.append("value %s %s%s\n" % (name, value, tail))
    return "".join(out)


def _validate(d):
    n = len(d.definitions)
    names = set()
    for dd in d.definitions:
        if dd.name in names:
            return "definition %s appears twice" % dd.name
        names.add(dd.name)
    message_defs = set()
    last = 0
    for pt, i in d.messages:
        if pt <= last:
            return "message lines must have ascending, distinct packet_types"
        last = pt
        if i >= n or d.definitions[i].kind != "table":
            return "message %d does not refer to a table" % pt
        if i in message_defs:
            return "table %s is the message of two packet_types" % d.definitions[i].name
        message_defs.add(i)
    for dd in d.definitions:
        where = "%s %s" % (dd.kind, dd.name)
        for f in dd.fields:
            element, what, shape, _ = f.type
            w = "%s field %s: " % (where, f.name)
            target = "table"
            if element in ("def", "utype"):
                if what >= n:
                    return w + "refers to definition %d of %d" % (what, n)
                target = d.definitions[what].kind
                if element == "utype" and target != "union":
                    return w + "utype@ must refer to a union"
            scalarish = element == "scalar" or (element == "def" and target == "enum") or element == "utype"
            if dd.kind == "struct":
                if shape == "vector" or element in ("string", "utype") or (element == "def" and target not in ("struct", "enum")):
                    return w + "a struct holds only scalars, enums, structs and arrays of them"
                if f.default != "-" or f.required or f.deprecated:
                    return w + "struct fields have no default or flags"
            else:
                if shape == "array":
                    return w + "arrays are allowed in structs only"
                single = scalarish and shape == "single"
                if single != (f.default != "-"):
                    return w + ("a scalar field needs a default" if single else "only scalar fields have a default")
                if single and f.required:
                    return w + "a scalar field cannot be required"
        for a, b in zip(dd.fields, dd.fields[1:]):
            if b.id <= a.id:
                return where + ": fields must have ascending ids/offsets"
        fnames = set()
        for f in dd.fields:
            if f.name in fnames:
                return where + ": field %s appears twice" % f.name
            fnames.add(f.name)
        vnames, vals = set(), set()
        for name, value, table in dd.values:
            if name in vnames:
                return where + ": value %s appears twice" % name
            if value in vals:
                return where + ": value %s appears twice" % value
            vnames.add(name)
            vals.add(value)
            if dd.kind == "union" and table >= 0 and (table >= n or d.definitions[table].kind != "table"):
                return where + ": member %s must refer to a table" % name
        if dd.kind == "struct" and not dd.fields:
            return where + ": a struct has fields"
    return ""


def parse(text):
    """(Description, "") or (None, "line 3: why"): the strict parser of the canonical text."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return None, "line 0: not UTF-8"
    line_no = 0

    def fail(why):
        return None, "line %d: %s" % (line_no, why)

    if len(text.encode("utf-8")) > MAX_DESCRIPTION_BYTES:
        return fail("description is %d bytes; the limit is %d" % (len(text.encode("utf-8")), MAX_DESCRIPTION_BYTES))
    if not text or text[-1] != "\n":
        return fail("a description ends with a newline")
    d = Description()
    current = None
    for line in text[:-1].split("\n"):
        line_no += 1
        if line_no == 1:
            if line != FORMAT_LINE:
                return fail('expected "%s" (unknown format or version)' % FORMAT_LINE)
            continue
        if any(ord(c) < 0x21 and c != " " for c in line):
            return fail("control character")
        tok = line.split(" ")
        if any(t == "" for t in tok):
            return fail("empty token (tokens are separated by exactly one space)")
        kw = tok[0]
        if kw == "message":
            if d.definitions:
                return fail("message lines come before the definitions")
            pt = _number(tok[1]) if len(tok) == 3 else None
            i = _number(tok[2]) if len(tok) == 3 else None
            if pt is None or i is None or not 101 <= pt <= 255:
                return fail("expected: message <packet_type 101..255> <index>")
            d.messages.append((pt, i))
        elif kw in ("table", "struct", "enum", "union"):
            if len(d.definitions) >= MAX_DEFINITIONS:
                return fail("more than %d definitions" % MAX_DEFINITIONS)
            want = 7 if kw == "struct" else 4 if kw == "enum" else 3
            index = _number(tok[1]) if len(tok) == want else None
            if index is None or not _qualified(tok[2]):
                extra = " size <n> align <n>" if kw == "struct" else " <integer type>" if kw == "enum" else ""
                return fail("expected: %s <index> <qualified name>%s" % (kw, extra))
            if index != len(d.definitions):
                return fail("definition index %d out of order" % index)
            dd = Definition(kw, tok[2])
            if kw == "struct":
                size, align = _number(tok[4]), _number(tok[6])
                if (tok[3] != "size" or tok[5] != "align" or size is None or align is None or not 0 < size <= 65535
                        or not 0 < align <= 256 or align & (align - 1)):
                    return fail("expected: struct <index> <name> size <1..65535> align <power of two>")
                dd.size, dd.align = size, align
            if kw == "enum":
                if tok[3] not in _INTEGERS:
                    return fail("an enum's underlying type is an integer type")
                dd.underlying = tok[3]
            d.definitions.append(dd)
            current = dd
        elif kw == "field":
            if current is None or current.kind not in ("table", "struct"):
                return fail("field outside a table or struct")
            fid = _number(tok[1]) if 5 <= len(tok) <= 7 else None
            ftype = _parse_type(tok[3]) if fid is not None else None
            if fid is None or not _identifier(tok[2]) or ftype is None:
                return fail("expected: field <id> <name> <type> <default|-> [required] [deprecated]")
            if current.kind == "table" and fid > MAX_FIELD_ID:
                return fail("field id above %d" % MAX_FIELD_ID)
            if tok[4] != "-" and not _DEFAULT.match(tok[4]):
                return fail('bad default "%s"' % tok[4])
            i = 5
            required = deprecated = False
            if i < len(tok) and tok[i] == "required":
                required, i = True, i + 1
            if i < len(tok) and tok[i] == "deprecated":
                deprecated, i = True, i + 1
            if i != len(tok):
                return fail('unknown field flag "%s" (required, deprecated, in that order)' % tok[i])
            current.fields.append(Field(fid, tok[2], ftype, tok[4], required, deprecated))
        elif kw == "value":
            if current is None or current.kind not in ("enum", "union"):
                return fail("value outside an enum or union")
            want = 4 if current.kind == "union" else 3
            if len(tok) != want or not _identifier(tok[1]) or not _integer_text(tok[2]):
                return fail("expected: value <name> <integer> <@table|->" if current.kind == "union"
                            else "expected: value <name> <integer>")
            table = -1
            if current.kind == "union" and tok[3] != "-":
                t = _number(tok[3][1:]) if tok[3].startswith("@") else None
                if t is None:
                    return fail("expected @<table index> or -")
                table = t
            current.values.append((tok[1], tok[2], table))
        else:
            return fail('unknown keyword "%s"' % kw[:32])
    why = _validate(d)
    if why:
        return None, why
    return d, ""


def merge(into, frm):
    """Adds `frm`'s messages and definitions to `into` (a new Description is returned), or raises
    ValueError when a name is defined differently or a packet_type is used twice."""
    out = Description()
    out.messages = list(into.messages)
    out.definitions = list(into.definitions)
    by_name = {dd.name: i for i, dd in enumerate(out.definitions)}
    mapping, fresh = [], []
    count = 0
    for dd in frm.definitions:
        if dd.name in by_name:
            mapping.append(by_name[dd.name])
            fresh.append(False)
        else:
            mapping.append(len(out.definitions) + count)
            fresh.append(True)
            count += 1

    def remap(dd):
        c = Definition(dd.kind, dd.name)
        c.underlying, c.size, c.align = dd.underlying, dd.size, dd.align
        for f in dd.fields:
            t = f.type
            if t[0] in ("def", "utype"):
                t = (t[0], mapping[t[1]], t[2], t[3])
            c.fields.append(Field(f.id, f.name, t, f.default, f.required, f.deprecated))
        c.values = [(n, v, mapping[t] if t >= 0 else -1) for n, v, t in dd.values]
        return c

    added = []
    for i, dd in enumerate(frm.definitions):
        c = remap(dd)
        if fresh[i]:
            added.append(c)
        elif out.definitions[mapping[i]].key() != c.key():
            raise ValueError("%s %s is defined differently in two schemas" % (c.kind, c.name))
    out.definitions.extend(added)
    for pt, i in frm.messages:
        mm = (pt, mapping[i])
        same = [m for m in out.messages if m[0] == pt]
        if same:
            if same[0][1] != mm[1]:
                raise ValueError("packet_type %d is %s and %s" % (pt, out.definitions[same[0][1]].name,
                                                                 out.definitions[mm[1]].name))
            continue
        out.messages.append(mm)
    out.messages.sort()
    why = _validate(out)
    if why:
        raise ValueError(why)
    return out


def combine(texts):
    """The merged description of several texts (each a message's schema_description): what a node
    sends in its hello. Raises ValueError naming the first text that does not parse or conflicts."""
    out = Description()
    for i, t in enumerate(texts):
        one, err = parse(t)
        if one is None:
            raise ValueError("description %d: %s" % (i + 1, err))
        try:
            out = merge(out, one)
        except ValueError as e:
            raise ValueError("description %d: %s" % (i + 1, e)) from None
    return out


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def fingerprint(d):
    return fnv1a64(to_text(d).encode("utf-8"))


class _Comparer:
    """compare(old, new) with level wire, direction both, history false (the handshake's options)."""

    def __init__(self, o, n, old_name, new_name):
        self.o, self.n = o, n
        self.old_name, self.new_name = old_name, new_name  # who each side is, in the sentences
        self.errors = []  # texts of diagnostics of severity error
        self.count = 0   # all diagnostics, notes included (the C++ budget counts both)
        self.done, self.work, self.pending = set(), [], []
        self.steps, self.over = 0, False

    def add(self, error, text):
        if self.over:
            return
        if self.count == MAX_COMPARE_DIAGNOSTICS:
            self.over, error = True, True
            text = "more than %d differences; the comparison stopped here" % MAX_COMPARE_DIAGNOSTICS
        self.count += 1
        if error:
            self.errors.append(text)

    def error(self, text):
        self.add(True, text)

    def differs(self, subject, a, b):
        return "%s is %s in %s but %s in %s" % (subject, a, self.old_name, b, self.new_name)

    def note(self, text):
        self.add(False, text)

    def run(self):
        o, n = self.o, self.n
        new_by_name = {}
        new_by_pt = {}
        for pt, i in n.messages:
            new_by_name.setdefault(n.definitions[i].name, (pt, i))
            new_by_pt.setdefault(pt, (pt, i))
        matched = set()
        for opt, oi in o.messages:
            od = o.definitions[oi]
            if od.name in new_by_name:
                npt, ni = new_by_name[od.name]
                matched.add(npt)
                if npt != opt:
                    self.error(self.differs(od.name, "packet_type %d" % opt, "packet_type %d" % npt))
                self.enqueue(oi, ni)
                self.drain()
                continue
            if opt in new_by_pt:
                nd = n.definitions[new_by_pt[opt][1]]
                matched.add(opt)
                self.error(self.differs("packet_type %d" % opt, od.name, nd.name) +
                           "; peers would decode one as the other (a wire message's qualified name is its identity: "
                           "a renamed message is a new message and needs a new packet_type)")
                continue
        old_by_pt = dict(o.messages)
        for npt, ni in n.messages:
            if npt in matched or npt not in old_by_pt:
                continue
            self.error(self.differs("packet_type %d" % npt, o.definitions[old_by_pt[npt]].name, n.definitions[ni].name)
                       + "; peers would decode one as the other")

    def drain(self):
        while self.work and not self.over:
            oi, ni = self.work.pop()
            od, nd = self.o.definitions[oi], self.n.definitions[ni]
            self.steps += 1 + len(od.fields) + len(nd.fields) + len(od.values) + len(nd.values)
            if self.steps > MAX_COMPARE_STEPS:
                self.error("the descriptions are too large to compare (more than %d fields and values visited)"
                           % MAX_COMPARE_STEPS)
                self.over = True
                return
            self.compare_definition(od, nd)

    def enqueue(self, oi, ni):
        if (oi, ni) not in self.done:
            self.done.add((oi, ni))
            self.pending.append((oi, ni))
        self.flush()

    def flush(self):
        self.work.extend(reversed(self.pending))
        self.pending = []

    def same_type(self, a, b):
        if a[2] != b[2] or a[3] != b[3] or a[0] != b[0]:
            return False
        if a[0] == "scalar":
            return a[1] == b[1]
        if a[0] == "string":
            return True
        od, nd = self.o.definitions[a[1]], self.n.definitions[b[1]]
        if od.kind != nd.kind:
            return False
        return not (od.kind == "enum" and od.underlying != nd.underlying)

    def follow(self, a, b):
        if a[0] == "def" and b[0] == "def" and (a[1], b[1]) not in self.done:
            self.done.add((a[1], b[1]))
            self.pending.append((a[1], b[1]))

    def rename(self, text):
        self.note(text + " (binary peers are unaffected)")

    def compare_definition(self, od, nd):
        if od.kind != nd.kind:
            self.error(self.differs(nd.name, "a " + od.kind, "a " + nd.kind))
            return
        if od.name != nd.name:
            self.note("%s %s is now %s (renamed or moved to another namespace; its name is not on the wire or in JSON)"
                      % (od.kind, od.name, nd.name))
        getattr(self, "compare_" + od.kind)(od, nd)
        self.flush()

    def compare_table(self, od, nd):
        t = nd.name
        olds_by_name = {}
        for f in od.fields:
            olds_by_name.setdefault(f.name, f)
        news_by_id, news_by_name = {}, {}
        for f in nd.fields:
            news_by_id.setdefault(f.id, f)
            news_by_name.setdefault(f.name, f)
        for of in od.fields:
            if of.deprecated:
                nf = news_by_id.get(of.id)
                if nf is not None and nf.required and not nf.deprecated:
                    self.error("field %s.%s is deprecated in %s but required in %s; %s never writes it"
                               % (t, nf.name, self.old_name, self.new_name, self.old_name))
                continue
            what = "field %s.%s" % (t, of.name)
            moved = news_by_name.get(of.name)
            if moved is not None and moved.id != of.id:
                self.error("%s has id %d in %s but id %d in %s (fields reordered or inserted); add new fields at "
                           "the end" % (what, of.id, self.old_name, moved.id, self.new_name))
                continue
            nf = news_by_id.get(of.id)
            if nf is None:
                continue
            if nf.name != of.name:
                elsewhere = olds_by_name.get(nf.name)
                if elsewhere is not None and elsewhere.id != nf.id:
                    continue
                self.rename("%s (id %d) was renamed to %s" % (what, of.id, nf.name))
            now = "field %s.%s" % (t, nf.name)
            if not self.same_type(of.type, nf.type):
                self.error(self.differs(now, type_name(self.o, of.type), type_name(self.n, nf.type)))
                continue
            self.follow(of.type, nf.type)
            if of.default != nf.default:
                self.error("%s has default %s in %s but %s in %s" % (now, of.default, self.old_name, nf.default,
                                                                      self.new_name))
            if nf.required and not of.required:
                self.error("%s is required in %s but not in %s, which may omit it" % (now, self.new_name, self.old_name))
            if of.required and not nf.required:
                self.error("%s is required in %s but %s in %s; %s rejects messages without it"
                           % (now, self.old_name, "deprecated" if nf.deprecated else "not", self.new_name, self.old_name))

    def compare_struct(self, od, nd):
        same = od.size == nd.size and od.align == nd.align and len(od.fields) == len(nd.fields)
        if same:
            same = all(a.id == b.id and self.same_type(a.type, b.type) for a, b in zip(od.fields, nd.fields))
        if not same:
            self.error("struct %s has another layout in %s than in %s; structs can never change (define a new struct)"
                       % (nd.name, self.old_name, self.new_name))
            return
        for of, nf in zip(od.fields, nd.fields):
            if of.name != nf.name:
                self.rename("field %s.%s was renamed to %s" % (nd.name, of.name, nf.name))
            self.follow(of.type, nf.type)

    def compare_enum(self, od, nd):
        e = nd.name
        if od.underlying != nd.underlying:
            self.error("enum %s has underlying type %s in %s but %s in %s"
                       % (e, od.underlying, self.old_name, nd.underlying, self.new_name))
            return
        old_names = {}
        for name, value, _ in od.values:
            old_names.setdefault(name, value)
        new_names, new_values = {}, {}
        for name, value, _ in nd.values:
            new_names.setdefault(name, value)
            new_values.setdefault(value, name)
        for name, value, _ in od.values:
            what = "enum value %s.%s" % (e, name)
            if name in new_names:
                if new_names[name] != value:
                    self.error(self.differs(what, value, new_names[name]))
                continue
            other = new_values.get(value)
            if other is not None and other not in old_names:
                self.rename("%s (%s) was renamed to %s" % (what, value, other))

    def compare_union(self, od, nd):
        u = nd.name
        by_value, by_name = {}, {}
        for v in nd.values:
            by_value.setdefault(v[1], v)
            by_name.setdefault(v[0], v)
        for name, value, table in od.values:
            if table < 0:
                continue
            what = "union member %s.%s" % (u, name)
            nv = by_value.get(value)
            named = by_name.get(name)
            if named is not None and named[1] != value:
                self.error(self.differs(what, value, named[1]) +
                           " (members reordered or inserted); add new members at the end")
                continue
            if nv is None or nv[2] < 0:
                continue
            if nv[0] != name:
                self.rename("%s (%s) was renamed to %s" % (what, value, nv[0]))
            ot, nt = self.o.definitions[table], self.n.definitions[nv[2]]
            if ot.name != nt.name and nv[0] != name:
                self.error(self.differs("%s (%s)" % (what, value), ot.name, nt.name) +
                           "; peers would decode one as the other")
                continue
            if (table, nv[2]) not in self.done:
                self.done.add((table, nv[2]))
                self.pending.append((table, nv[2]))


def compare(old, new, old_name="the peer", new_name="this node"):
    """The error sentences of compare(old, new) at wire level, both directions, two peers (the
    handshake's check; the sentences name the sides old_name and new_name); an empty list means
    compatible."""
    c = _Comparer(old, new, old_name, new_name)
    c.run()
    return c.errors


def check_descriptions(mine, theirs, my_name, their_name):
    """None when a peer with description text `theirs` can talk to us, else (code, reason) with the
    C++ runtime's text (code "malformed" or "incompatible")."""
    their_desc = Description() if not theirs else None
    if their_desc is None:
        their_desc, err = parse(theirs)
        if their_desc is None:
            return "malformed", "the schema description from %s does not parse: %s" % (their_name, err)
    my_desc = Description() if not mine else parse(mine)[0]
    if my_desc is None:
        return "malformed", "this node's own schema description does not parse"
    errors = compare(their_desc, my_desc, their_name, my_name)
    if not errors:
        return None
    text = "the schemas of %s and %s cannot talk (sagec check --level wire):" % (their_name, my_name)
    for e in errors:
        text += "\n  error: " + e
    return "incompatible", text

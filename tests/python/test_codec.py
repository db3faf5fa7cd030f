"""Generated Python classes (sagec generate --lang python) against the C++ classes of the same schemas.

Run by ctest (label python) with PYTHONPATH holding python/ and the generated modules, SAGEC and
SAGE_CODEC_PEER (tests/python/codec_peer.cpp) set.
"""
import functools
import math
import os
import random
import subprocess
import tempfile
import unittest

import alltypes_sage as at
import arrays_sage as ar
import golden_sage as go
import interop_sage as io
import union_vectors_sage as uv
import unions_sage as un
from sagepeer import flat

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ["SAGE_SOURCE_DIR"]


def mixed():
    return at.Mixed(a=-1, b=2.5, c=at.Color.blue, v=at.Vec3(4.0, 5.0, 6.0), flag=True)


def samples():
    """The values codec_peer.cpp builds, by the same names."""
    d = at.Defaults(count=1, ratio=0.25, on=False, color=at.Color.green, maybe=7, maybe_flag=False, big=at.Big.small,
                    lowest=0, far=1.0)
    return {
        "Scalars": at.Scalars(b=True, i8=-5, u8=200, i16=-30000, u16=60000, i32=-2000000000, u32=4000000000,
                              i64=-9000000000000000000, u64=18000000000000000000, f32=1.5, f64=-2.25),
        "Defaults": d,
        "Defaults.default": at.Defaults(),
        "Texts": at.Texts(text="héllo", names=["a", "", "ü"], must="m"),
        "Vectors": at.Vectors(ints=[1, -2, 3], bytes=[0, 255], bools=[True, False, True], doubles=[0.5],
                              colors=[at.Color.red, at.Color.blue], points=[at.Vec3(1.0, 2.0, 3.0)], mixed=[mixed()],
                              inners=[at.Inner(name="x", score=1), at.Inner()], longs=[-1, 1 << 40]),
        "Nested": at.Nested(pos=at.Vec3(1.0, 2.0, 3.0), mixed=mixed(), inner=at.Inner("in", 9), must=at.Inner("must", 7),
                            deep=at.Deep(inner=at.Inner("d", 1), list=[at.Inner("l1", 2)])),
        "Keywords": at.Keywords(class_=1, namespace="ns", packet_type_=2, decode_=[3, 4], fbb=5, start="s", fbb_ref=6),
        "Empty": at.Empty(),
        "WithDeprecated": at.WithDeprecated(a=1, b="b"),
        "Serve": un.Serve(table_no=4, food=un.Waffle(grid=[1, 2]), spare=un.Pancake(size=3, syrup=True)),
        "Document": uv.Document(parts=[uv.Text("t"), uv.Image(640, 480), uv.Group("g", [uv.Text("inner")])],
                                cover=uv.Image(1, 2)),
        "Placed": ar.Placed(at=ar.Transform(matrix=[float(i) for i in range(16)], ids=[1, 2, 3],
                                            suits=[ar.Suit.spades, ar.Suit.hearts],
                                            corners=[ar.Vec2(float(i), float(-i)) for i in range(4)], tag=-3),
                            path=[ar.Transform()]),
        "OrderMessage": go.OrderMessage(guest="ann", appetite=go.Appetite.starving, seat=go.Seat(12, 3),
                                        plate=go.Plate(count=2, toppings=["syrup"]), tip=1.5),
        "Inventory": inventory(*SORTED),
    }


def inventory(items, slots, cells):
    return io.Inventory(owner="ann", items=items, slots=slots, cells=cells, at=io.Vec2(1.0, 2.0), tags=["a", "b"],
                        tree=io.Node("root", [io.Node("leaf")]), score=9)


SORTED = ([io.Item("apple", 1), io.Item("pear", 2)], [io.Slot(1, 0.5), io.Slot(7, 1.5)], [io.Cell(2, 3), io.Cell(5, -1)])


def fnv1a64(data):
    return functools.reduce(lambda h, b: (h ^ b) * 0x100000001b3 % 2**64, data, 0xcbf29ce484222325)


class GeneratedClasses(unittest.TestCase):
    def test_bytes_a_cpp_class_encodes_decode_in_python_to_equal_values_and_back(self):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([os.environ["SAGE_CODEC_PEER"], "write", tmp], check=True)
            for name, value in samples().items():
                with self.subTest(name=name):
                    with open(os.path.join(tmp, name + ".bin"), "rb") as f:
                        decoded = type(value).decode(f.read())
                    self.assertEqual(decoded, value)
                    with open(os.path.join(tmp, name + ".py.bin"), "wb") as f:
                        f.write(value.encode())
            # Keyed vectors are written sorted by key, as C++ writes them (C++ compares with its sorted sample).
            unsorted = inventory(*[list(reversed(v)) for v in SORTED])
            with open(os.path.join(tmp, "Inventory.unsorted.py.bin"), "wb") as f:
                f.write(unsorted.encode())
            self.assertEqual(io.Inventory.decode(unsorted.encode()), inventory(*SORTED))
            checked = subprocess.run([os.environ["SAGE_CODEC_PEER"], "check", tmp], capture_output=True, text=True)
            self.assertEqual(checked.returncode, 0, checked.stderr)

    def test_a_root_type_is_written_with_the_schemas_file_identifier(self):
        data = inventory(*SORTED).encode()
        self.assertEqual(data[4:8], b"INVY")
        self.assertIsNone(go.OrderMessage.file_identifier)
        self.assertEqual(io.Inventory.decode(data), inventory(*SORTED))

    def test_a_value_that_differs_from_the_sample_is_reported_by_the_cpp_side(self):
        with tempfile.TemporaryDirectory() as tmp:
            all_samples = samples()
            all_samples["Inventory.unsorted"] = all_samples["Inventory"]
            for name, value in all_samples.items():
                if name == "Texts":
                    value.must = "changed"
                with open(os.path.join(tmp, name + ".py.bin"), "wb") as f:
                    f.write(value.encode())
            checked = subprocess.run([os.environ["SAGE_CODEC_PEER"], "check", tmp], capture_output=True, text=True)
            self.assertEqual(checked.returncode, 1)
            self.assertIn("Texts: Python's bytes decode in C++ to another value", checked.stderr)
            self.assertEqual(checked.stderr.count("\n"), 1, checked.stderr)

    def test_wire_messages_carry_packet_type_description_and_its_fingerprint(self):
        self.assertEqual(go.OrderMessage.packet_type, 180)
        self.assertEqual(go.OrderMessage.fingerprint, 0xdacde899745b3c4f)  # as golden.sage.hpp
        for cls in at.wire_messages + go.wire_messages + un.wire_messages:
            with self.subTest(cls=cls.__name__):
                self.assertTrue(cls.schema_description.startswith("sage-schema 1\nmessage %d 0\n" % cls.packet_type))
                self.assertEqual(cls.fingerprint, fnv1a64(cls.schema_description.encode()))
        self.assertEqual([c.packet_type for c in at.wire_messages], list(range(110, 118)))
        self.assertFalse(hasattr(at.LocalOnly, "packet_type"))

    def test_fields_have_the_schema_defaults(self):
        d = at.Defaults()
        self.assertEqual((d.count, d.ratio, d.on, d.color, d.maybe, d.big, d.lowest), (42, 0.5, True, 5, None, 2**64 - 1, -2**63))
        self.assertEqual(d.far, math.inf)
        self.assertEqual(at.Nested().must, at.Inner())
        self.assertIsNone(at.Nested().inner)
        self.assertEqual(at.Color.name_of(5), "blue")
        self.assertEqual(at.Color.name_of(3), "")

    def test_bytes_that_are_not_a_flatbuffer_raise_decode_error_only(self):
        good = samples()["Nested"].encode()
        rng = random.Random(25)
        cases = [b"", b"\0" * 7, b"\xff" * 64, good[:len(good) // 2]]
        for _ in range(3000):
            b = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            cases.append(bytes(b))
        accepted = 0
        for case in cases:
            try:
                at.Nested.decode(case)
                accepted += 1
            except flat.DecodeError:
                pass
        self.assertLess(accepted, len(cases))  # some flipped bytes are only values, most are not

    def test_a_missing_required_field_is_a_decode_error(self):
        with self.assertRaisesRegex(flat.DecodeError, "required field sagetest.Texts.must is missing"):
            at.Texts.decode(at.Inner().encode())  # an empty table: no field 2

    def test_nesting_deeper_than_64_tables_is_a_decode_error(self):
        import recursive_sage as rc
        node = rc.Node(name="leaf")
        for _ in range(70):
            node = rc.Node(next=node)
        with self.assertRaisesRegex(flat.DecodeError, "nested deeper than 64"):
            rc.Node.decode(node.encode())


class Includes(unittest.TestCase):
    def test_a_module_imports_the_module_of_an_included_schema_that_defines_something(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "common.fbs"), "w") as f:
                f.write('namespace shared;\nstruct Point { x: int; y: int; }\nenum Kind : byte { a, b }\n'
                        'table Tag { label: string; }\n')
            with open(os.path.join(tmp, "game.fbs"), "w") as f:
                f.write('include "sage.fbs";\ninclude "common.fbs";\nnamespace game;\n'
                        'table Move (packet_type: 170) { at: shared.Point; kind: shared.Kind = b; tags: [shared.Tag]; }\n')
            out = os.path.join(tmp, "gen")
            subprocess.run([os.environ["SAGEC"], "generate", "--lang", "python", "-o", out,
                            os.path.join(tmp, "game.fbs")], check=True)
            self.assertEqual(sorted(os.listdir(out)), ["common_sage.py", "game_sage.py"])
            code = ("import game_sage as g, common_sage as c\n"
                    "m = g.Move(at=c.Point(1, 2), tags=[c.Tag('x')])\n"
                    "assert m.kind == c.Kind.b and g.Move.decode(m.encode()) == m\n"
                    "print(m.get_property('at'))\n")
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([out, os.environ["PYTHONPATH"]]))
            r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "Point(x=1, y=2)\n")


if __name__ == "__main__":
    unittest.main()

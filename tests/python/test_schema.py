"""sagepeer.schema (the Python port of runtime/schema) against sagec: the merged description a node
sends, and the handshake's column of docs/schemas.md's compatibility table, row by row."""
import json
import os
import subprocess
import unittest

from sagepeer import schema, wire

SAGEC = os.environ["SAGEC"]
SOURCE = os.environ["SAGE_SOURCE_DIR"]
CASES = os.path.join(SOURCE, "tests/codegen/fixtures/compat")


def describe(*paths):
    out = subprocess.run([SAGEC, "describe", "--format", "json"] + list(paths), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def table_rows():
    with open(os.path.join(SOURCE, "docs/schemas.md")) as f:
        doc = f.read()
    body = doc[doc.index("<!-- compat-table"):doc.index("<!-- /compat-table -->")]
    rows = [line for line in body.splitlines() if line.startswith("|")][2:]
    out = []
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out.append((cells[0], cells[3], cells[-1].strip("`")))
    return out


class Descriptions(unittest.TestCase):
    def test_combining_the_generated_descriptions_gives_the_text_sagec_merges(self):
        for schema_file in ("tests/codegen/schemas/alltypes.fbs", "tests/codegen/schemas/union_vectors.fbs",
                            "tests/codegen/schemas/recursive.fbs", "examples/chat/chat.fbs"):
            with self.subTest(schema=schema_file):
                j = describe(os.path.join(SOURCE, schema_file))
                merged = schema.combine([m["description"] for m in j["messages"]])
                self.assertEqual(schema.to_text(merged), j["description"])
                self.assertEqual("0x%016x" % schema.fingerprint(merged), j["description_fingerprint"])
                # The hello's schema fingerprint is another number: over the entries, not the text.
                entries = {m["packet_type"]: int(m["fingerprint"], 16) for m in j["messages"]}
                self.assertEqual("0x%016x" % wire.schema_fingerprint(entries), j["schema_fingerprint"])
                self.assertNotIn('"fingerprint"', json.dumps({k: v for k, v in j.items() if k != "messages"}))
                for m in j["messages"]:
                    d, err = schema.parse(m["description"])
                    self.assertEqual(err, "")
                    self.assertEqual(schema.to_text(d), m["description"])

    def test_the_parser_refuses_what_the_cpp_parser_refuses_with_its_reasons(self):
        cases = {
            "": "line 0: a description ends with a newline",
            "sage-schema 2\n": 'line 1: expected "sage-schema 1" (unknown format or version)',
            "sage-schema 1\nmessage 101 0\n": "message 101 does not refer to a table",
            "sage-schema 1\ntabel 0 a.B\n": 'line 2: unknown keyword "tabel"',
            "sage-schema 1\ntable 0 a.B\nfield 0 x int  0\n": "line 3: empty token (tokens are separated by exactly one space)",
            "sage-schema 1\ntable 0 a.B\nfield 0 x @7 -\n": "table a.B field x: refers to definition 7 of 1",
        }
        for text, why in cases.items():
            with self.subTest(text=text):
                d, err = schema.parse(text)
                self.assertIsNone(d)
                self.assertEqual(err, why)


class CompatibilityTable(unittest.TestCase):
    def test_the_handshake_column_of_the_compatibility_table_holds_for_the_python_peer(self):
        rows = table_rows()
        self.assertGreater(len(rows), 20)
        for change, handshake, case in rows:
            with self.subTest(change=change):
                desc = os.path.join(CASES, case + ".new.desc")
                if os.path.exists(desc):  # cases written as descriptions (no .fbs can express them)
                    with open(desc) as n, open(os.path.join(CASES, case + ".old.desc")) as o:
                        new, old, old_file = n.read(), o.read(), None
                else:
                    new_file = os.path.join(CASES, case + ".fbs")
                    old_file = os.path.join(CASES, case + ".old.fbs")
                    if not os.path.exists(old_file):
                        old_file = os.path.join(CASES, "base.fbs")
                    old, new = describe(old_file)["description"], describe(new_file)["description"]
                ab = schema.check_descriptions(new, old, "this node", "the peer")
                ba = schema.check_descriptions(old, new, "this node", "the peer")
                self.assertEqual(ab is None, handshake == "connects", ab)
                self.assertEqual(ba is None, handshake == "connects", ba)
                if ab is None or old_file is None:
                    continue
                self.assertEqual(ab[0], "incompatible")
                # The same sentences sagec check prints when it judges the two as peers (as a node's
                # handshake does: "the peer" is the --against side, "this node" the other).
                check = subprocess.run([SAGEC, "check", "--level", "wire", "--peers", "--against", old_file, new_file],
                                       capture_output=True, text=True)
                for line in ab[1].splitlines()[1:]:
                    self.assertIn(line.strip()[len("error: "):], check.stderr)


if __name__ == "__main__":
    unittest.main()

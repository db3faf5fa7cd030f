"""sagec generate --lang python against the golden modules in tests/python/golden/.

After a deliberate generator change: SAGE_UPDATE_GOLDEN=1 ctest --test-dir build -R golden (then
review and commit the diff), as for the C++ golden headers.
"""
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ["SAGE_SOURCE_DIR"]
SCHEMAS = ["golden", "unions", "union_vectors", "arrays", "interop"]


class GoldenFiles(unittest.TestCase):
    def test_sagec_generate_lang_python_writes_the_golden_modules(self):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([os.environ["SAGEC"], "generate", "--lang", "python", "-o", tmp] +
                           [os.path.join(SOURCE, "tests/codegen/schemas", s + ".fbs") for s in SCHEMAS], check=True)
            self.assertEqual(sorted(os.listdir(tmp)), sorted(s + "_sage.py" for s in SCHEMAS))
            for s in SCHEMAS:
                with self.subTest(schema=s):
                    with open(os.path.join(tmp, s + "_sage.py")) as f:
                        generated = f.read()
                    golden = os.path.join(HERE, "golden", s + "_sage.py")
                    if os.environ.get("SAGE_UPDATE_GOLDEN"):
                        with open(golden, "w") as g:
                            g.write(generated)
                    with open(golden) as g:
                        self.assertEqual(generated, g.read(),
                                         "SAGE_UPDATE_GOLDEN=1 ctest --test-dir build -R golden if the change is wanted")


if __name__ == "__main__":
    unittest.main()

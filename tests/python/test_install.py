"""python/ installs offline with pip and Debian's python3-setuptools (docs/python.md "Install")."""
import os
import shutil
import subprocess
import tempfile
import unittest

SOURCE = os.environ["SAGE_SOURCE_DIR"]


class Install(unittest.TestCase):
    def test_pip_installs_sagepeer_offline_into_a_venv_that_sees_debians_flatbuffers(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "python")
            shutil.copytree(os.path.join(SOURCE, "python"), src,
                            ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
            venv = os.path.join(tmp, "venv")
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True)
            py = os.path.join(venv, "bin", "python")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            r = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--quiet", src],
                               capture_output=True, text=True, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = subprocess.run([py, "-c", "import sagepeer, sagepeer.flat; print(sagepeer.__file__)"],
                               capture_output=True, text=True, env=env, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith(venv), r.stdout)


if __name__ == "__main__":
    unittest.main()

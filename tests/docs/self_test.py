#!/usr/bin/env python3
"""The docs test's own test: a document whose blocks are right passes, and each kind of drift fails
(a broken command, wrong output, a failing script, C++ that does not compile, an excerpt that is not
in its file, an unmarked block, a skip without a reason, a block that hangs), naming the line.

Usage: self_test.py --build DIR --cxx-flags FILE
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
# fixture -> (expected exit status, text the output must contain)
CASES = {
    "passes.md": (0, "passes.md: 7 blocks, 0 failed"),
    "broken_command.md": (1, "broken_command.md:2: error: console block failed: `sagec chek pancakes.fbs` exited"),
    "wrong_output.md": (1, "wrong_output.md:2: error: console block failed: `echo hello` printed something else"),
    "failing_run.md": (1, "failing_run.md:2: error: run block failed: exited 1"),
    "bad_cpp.md": (1, "bad_cpp.md:2: error: compile block failed: does not compile"),
    "excerpt_drift.md": (1, "excerpt_drift.md:2: error: excerpt block failed: line not found"),
    "unmarked.md": (1, "unmarked.md:1: fenced block without a <!-- doc-test: ... --> marker"),
    "skip_without_reason.md": (1, "skip_without_reason.md:2: `doc-test: skip` needs a reason"),
    "slow.md": (1, "slow.md:2: error: run block failed: timed out after 1 s"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--cxx-flags", required=True)
    a = ap.parse_args()
    failed = 0
    for doc, (status, text) in CASES.items():
        proc = subprocess.run([sys.executable, os.path.join(HERE, "doc_test.py"), "--source", FIXTURES, "--build",
                               a.build, "--cxx-flags", a.cxx_flags, doc], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120)
        out = proc.stdout.decode(errors="replace")
        if proc.returncode != status or text not in out:
            failed += 1
            print(f"FAIL {doc}: exit {proc.returncode} (want {status}), want output containing:\n  {text}\n"
                  f"got:\n{out}")
        else:
            print(f"ok   {doc}: exit {status}, {text}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

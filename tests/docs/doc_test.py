#!/usr/bin/env python3
"""Runs the fenced blocks of sage's Markdown docs (README.md, docs/*.md) as tests.

Every fenced block must be preceded (on the line right before its opening fence) by an HTML
comment that says what to do with it; docs/README.md is the user's guide to the markers:

  <!-- doc-test: console [vary=REGEX]... [any-order] [timeout=S] -->   a transcript: `$ cmd` lines run
        in bash (continued after a trailing `\` or on lines starting `> `), the other lines are the
        output they must print (stdout and stderr together)
  <!-- doc-test: run [timeout=S] -->          the block is a bash script; it must exit 0
  <!-- doc-test: file NAME -->                the block is written to NAME in the scratch directory
  <!-- doc-test: compile -->                  the block is a C++ translation unit; it must compile
  <!-- doc-test: excerpt PATH -->             every line of the block appears in PATH, in order
                                              (PATH in the source tree, or build/... in the build tree)
  <!-- doc-test: skip — reason -->            not run; the reason is required

Extra lines inside the comment, after the first: for console/run, shell commands run first
(hidden setup, output not compared); for file, shell commands run after the file was written
(a check that must exit 0); for compile, a wrapper around the snippet, whose line
`{{snippet}}` is replaced by the block (the block's `#include` lines are moved to the top).

Output comparison: a line `...` matches any number of lines, `...` inside a line matches any
text, and every match of a `vary=REGEX` in the shown output matches any text the regex matches.
A command that exits non-zero fails the test unless the next command of the transcript is
`echo $?` (which then shows the status).

All blocks of one document run in order in one scratch directory that looks like a checkout:
`schemas`, `examples`, `tests`, `scripts`, `include`, `cmake`, `docs` link to the source tree and
`build` to the build tree; `sagec` is on PATH. What a block leaves running is killed after it.

Usage:
  doc_test.py --source DIR --build DIR --cxx-flags FILE DOC.md   run one document
  doc_test.py --source DIR --check-marks                          every block of every doc is marked
  doc_test.py --source DIR --build DIR --check-test-names CTEST   every ctest the docs name exists
  doc_test.py --source DIR --check-paths                          every source path the docs name exists
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*(-->)?\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
MODES = ("console", "run", "file", "compile", "excerpt", "skip")


class Block:
    def __init__(self, doc, line, lang, text, mode, args, extra):
        self.doc, self.line, self.lang, self.text = doc, line, lang, text
        self.mode, self.args, self.extra = mode, args, extra

    def where(self):
        return f"{self.doc}:{self.line}"


class DocError(Exception):
    pass


def parse(path, shown):
    """The fenced blocks of a Markdown file with their markers; errors for unmarked or bad ones."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, errors = [], []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3)
        start = i
        body = []
        i += 1
        closing = re.compile(re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*")  # only fence characters
        while i < len(lines) and not closing.fullmatch(lines[i].strip()):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        if i == len(lines):
            errors.append(f"{shown}:{start + 1}: fence {fence} is never closed")
            break
        i += 1
        # The marker: an HTML comment ending on the line right before the fence.
        j = start - 1
        comment = []
        if j >= 0 and lines[j].rstrip().endswith("-->"):
            while j >= 0:
                comment.insert(0, lines[j])
                if lines[j].lstrip().startswith("<!--"):
                    break
                j -= 1
        head = MARK.match(comment[0].strip()) if comment else None
        if not head:
            errors.append(f"{shown}:{start + 1}: fenced block without a <!-- doc-test: ... --> marker on the line "
                          "before it (mark it runnable, or `skip — reason`; see docs/README.md)")
            continue
        words = head.group(1).split(None, 1)
        mode = words[0] if words else ""
        rest = words[1] if len(words) > 1 else ""
        extra = comment[1:]
        if extra and extra[-1].strip().endswith("-->"):
            extra[-1] = extra[-1].rstrip()[:-3]
            if not extra[-1].strip():
                extra.pop()
        if mode not in MODES:
            errors.append(f"{shown}:{start + 1}: unknown doc-test mode '{mode}' (one of {', '.join(MODES)})")
            continue
        if mode == "skip" and not skip_reason(rest):
            errors.append(f"{shown}:{start + 1}: `doc-test: skip` needs a reason (`skip — why running it makes no sense`)")
            continue
        if mode in ("file", "excerpt") and not rest:
            errors.append(f"{shown}:{start + 1}: `doc-test: {mode}` needs a path")
            continue
        blocks.append(Block(shown, start + 1, lang, "\n".join(body) + "\n", mode, rest, extra))
    return blocks, errors


def skip_reason(args):
    return re.sub(r"^[\s—–:-]*", "", args)


def options(args):
    opts = {"vary": [], "any-order": False, "timeout": 60}
    # Words are separated by whitespace; `\ ` is a space inside a word (other backslashes stay, for regexes).
    for word in (w.replace("\\ ", " ") for w in re.split(r"(?<!\\)\s+", args.strip()) if w):
        if word.startswith("vary="):
            opts["vary"].append(word[5:])
        elif word == "any-order":
            opts["any-order"] = True
        elif word.startswith("timeout="):
            opts["timeout"] = float(word[8:])
        else:
            raise DocError(f"unknown option '{word}'")
    return opts


def line_pattern(line, vary):
    """A regex for one shown output line: `...` and the vary regexes are the variable parts."""
    spans = []
    for v in vary:
        spans += [(m.start(), m.end(), f"(?:{v})") for m in re.finditer(v, line) if m.end() > m.start()]
    spans += [(m.start(), m.end(), ".*?") for m in re.finditer(r"\.\.\.", line)]
    spans.sort()
    out, at = "", 0
    for s, e, pat in spans:
        if s < at:
            continue
        out += re.escape(line[at:s]) + pat
        at = e
    return out + re.escape(line[at:])


def output_matches(expected, actual, opts):
    exp = [l.rstrip() for l in expected]
    act = [l.rstrip() for l in actual]
    while exp and not exp[-1]:
        exp.pop()
    while act and not act[-1]:
        act.pop()
    if opts["any-order"]:
        rest = list(act)
        for e in exp:
            if e == "...":
                continue
            pat = re.compile(line_pattern(e, opts["vary"]))
            hit = next((k for k, a in enumerate(rest) if pat.fullmatch(a)), None)
            if hit is None:
                return False
            rest.pop(hit)
        return not rest or "..." in exp
    regex = ""
    for e in exp:
        regex += r"(?:[^\n]*\n)*?" if e == "..." else line_pattern(e, opts["vary"]) + r"\n"
    return re.fullmatch(regex, "".join(a + "\n" for a in act), re.S) is not None


class Runner:
    def __init__(self, source, build, cxx_flags, keep):
        self.source, self.build, self.cxx_flags, self.keep = source, build, cxx_flags, keep
        self.scratch = tempfile.mkdtemp(prefix="sage-doc-test-")
        for name in ("schemas", "examples", "tests", "scripts", "include", "cmake", "docs", "python"):
            os.symlink(os.path.join(source, name), os.path.join(self.scratch, name))
        os.symlink(build, os.path.join(self.scratch, "build"))
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.join(build, "codegen") + os.pathsep + self.env.get("PATH", "")
        self.env["SAGE_SOURCE_DIR"], self.env["SAGE_BUILD_DIR"] = source, build
        self.env["LC_ALL"] = "C.UTF-8"
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in python/ of the source tree

    def close(self):
        if self.keep:
            print(f"scratch directory kept: {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def bash(self, script, timeout):
        """Runs a bash script in its own process group; kills what it left running in the background.
        Output goes to a file, so background processes holding it open do not keep us waiting."""
        with tempfile.TemporaryFile(dir=self.scratch) as log:
            proc = subprocess.Popen(["bash", "-c", script], cwd=self.scratch, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            log.seek(0)
            out = log.read().decode(errors="replace")
        if timed_out:
            raise DocError(f"timed out after {timeout:g} s; output so far:\n{out}")
        return proc.returncode, out

    def setup(self, block, timeout):
        if not block.extra:
            return
        rc, out = self.bash("set -euo pipefail\n" + "\n".join(block.extra) + "\n", timeout)
        if rc != 0:
            raise DocError(f"hidden setup in the marker exited {rc}:\n{out}")

    def run(self, block):
        getattr(self, "do_" + block.mode)(block)

    def do_skip(self, block):
        pass

    def do_file(self, block):
        path = os.path.join(self.scratch, block.args)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(block.text)
        if block.extra:  # a check of the file, e.g. `sagec check NAME`
            rc, out = self.bash("set -euo pipefail\n" + "\n".join(block.extra) + "\n", 60)
            if rc != 0:
                raise DocError(f"the check in the marker exited {rc}:\n{out}")

    def do_run(self, block):
        opts = options(block.args)
        script = "set -euo pipefail\n" + "\n".join(block.extra) + "\n" + block.text
        rc, out = self.bash(script, opts["timeout"])
        if rc != 0:
            raise DocError(f"exited {rc}:\n{out}")

    def do_console(self, block):
        opts = options(block.args)
        commands = []  # [command text, shown output lines]
        lines = block.text.rstrip("\n").split("\n")
        k = 0
        while k < len(lines):
            line = lines[k]
            if line.startswith("$ "):
                cmd = line[2:]
                # Continuation: after a trailing backslash, or lines shown with bash's `> ` prompt.
                while k + 1 < len(lines) and (cmd.endswith("\\") or lines[k + 1].startswith("> ")):
                    k += 1
                    cmd += "\n" + (lines[k][2:] if lines[k].startswith("> ") else lines[k])
                commands.append([cmd, []])
            elif not commands:
                raise DocError(f"console block must start with a `$ ` command, not: {line}")
            else:
                commands[-1][1].append(line)
            k += 1
        marker = "@@sage-doc-test@@"
        script = "set -o pipefail\n" + "\n".join(block.extra) + "\n"
        script += f"printf '\\n{marker} setup %d\\n' $?\n"
        for n, (cmd, _) in enumerate(commands):
            # Restore the previous command's status so `echo $?` shows it.
            script += f"(exit $__rc)\n{cmd}\n__rc=$?; printf '\\n{marker} {n} %d\\n' $__rc\n"
        script = "__rc=0\n" + script
        rc, out = self.bash(script, opts["timeout"])
        parts = re.split(rf"\n?{re.escape(marker)} (\S+) (\d+)\n", "\n" + out)
        # parts: [before setup, "setup", rc, out0, "0", rc0, out1, ...]
        if len(parts) < 3 or parts[1] != "setup":
            raise DocError(f"the transcript did not run (bash exited {rc}):\n{out}")
        if parts[2] != "0" and block.extra:
            raise DocError(f"hidden setup in the marker failed ({parts[2]}):\n{parts[0]}")
        results = []
        for n in range(len(commands)):
            at = 3 + 3 * n  # parts[at]: its output, parts[at + 1]: n, parts[at + 2]: its exit status
            if at + 2 >= len(parts):
                raise DocError(f"`{commands[n][0]}` did not finish (bash exited {rc}); output:\n{out}")
            results.append((parts[at], int(parts[at + 2])))
        for n, (cmd, shown) in enumerate(commands):
            actual, status = results[n]
            next_cmd = commands[n + 1][0].strip() if n + 1 < len(commands) else ""
            if status != 0 and next_cmd != "echo $?":
                raise DocError(f"`{cmd}` exited {status} (show it with a following `echo $?` if that is the "
                               f"point); output:\n{actual}")
            if not output_matches(shown, actual.split("\n"), opts):
                raise DocError(f"`{cmd}` printed something else.\n--- shown in the doc\n" + "\n".join(shown) +
                               f"\n--- printed\n{actual}")

    def do_compile(self, block):
        text = block.text
        if block.extra:
            wrapper = "\n".join(block.extra)
            if "{{snippet}}" not in wrapper:
                raise DocError("the wrapper in a compile marker needs a line {{snippet}}")
            # The snippet's #include lines go first (blank lines keep its line numbers); #line keeps
            # compiler errors pointing at the doc.
            lines = block.text.split("\n")
            includes = [l for l in lines if l.startswith("#include")]
            body = "\n".join("" if l.startswith("#include") else l for l in lines)
            text = "\n".join(includes) + "\n" + wrapper.replace(
                "{{snippet}}", f'#line {block.line + 1} "{block.doc}"\n' + body)
        else:
            text = f'#line {block.line + 1} "{block.doc}"\n' + text
        src = os.path.join(self.scratch, f"snippet_{block.line}.cpp")
        with open(src, "w", encoding="utf-8") as f:
            f.write(text)
        flags = shlex.split(open(self.cxx_flags, encoding="utf-8").read())
        cmd = flags + ["-fsyntax-only", src]
        proc = subprocess.run(cmd, cwd=self.scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if proc.returncode != 0:
            raise DocError(f"does not compile ({shlex.join(cmd)}):\n{proc.stdout.decode(errors='replace')}")

    def do_excerpt(self, block):
        rel = block.args
        path = os.path.join(self.build, rel[6:]) if rel.startswith("build/") else os.path.join(self.source, rel)
        if not os.path.isfile(path):
            raise DocError(f"{block.args} does not exist")

        def norm(s):
            return " ".join(s.split())

        file_lines = [norm(l) for l in open(path, encoding="utf-8")]
        at = 0
        for line in block.text.split("\n"):
            want = norm(re.sub(r"\s//.*$", "", line))
            if not want or want == "..." or want.startswith("// ..."):  # elisions
                continue
            hit = next((k for k in range(at, len(file_lines)) if want in file_lines[k]), None)
            if hit is None:
                raise DocError(f"line not found in {block.args} (after line {at}): {line.strip()}")
            at = hit + 1


def check_test_names(source, build, ctest):
    """Every ctest a document names in backticks (`network_test:...`, `soak: ...`) exists."""
    listing = subprocess.run([ctest, "--test-dir", build, "-N"], stdout=subprocess.PIPE, check=True).stdout.decode()
    names = [m.group(1) for m in re.finditer(r"^\s*Test\s+#\d+: (.*)$", listing, re.M)]
    suites = {n.split(":", 1)[0] for n in names if re.match(r"^[a-z_]+_test:", n)}
    errors, checked = [], 0
    for doc in all_docs(source):
        for k, line in enumerate(open(os.path.join(source, doc), encoding="utf-8"), 1):
            for span in re.findall(r"`([^`]+)`", line):
                m = re.match(r"^([a-z_]+_test):( ?)(.+)$", span)
                if m and m.group(1) in suites:
                    if m.group(2):
                        errors.append(f"{doc}:{k}: `{span}`: ctest names have no space after the colon "
                                      f"(`{m.group(1)}:{m.group(3)}`)")
                        continue
                elif not re.match(r"^(soak|example|docs|bench): ", span):
                    continue
                checked += 1
                pattern = ".*".join(re.escape(part) for part in re.split(r"\.\.\.|\*|…", span))
                if not any(re.fullmatch(pattern, n) for n in names):
                    errors.append(f"{doc}:{k}: no ctest is named `{span}` (ctest --test-dir build -N lists them)")
    for e in errors:
        print(e)
    print(f"{checked} test names in the docs checked against {len(names)} ctests, {len(errors)} problems")
    return 1 if errors else 0


def check_paths(source):
    """Every source path a document names in backticks (`runtime/groups/protocol.cpp`, `sage/wire.hpp`,
    `tests/fuzz/`) exists: relative to the source tree, include/ (`sage/...`) or docs/."""
    errors, checked = [], 0
    for doc in all_docs(source):
        for k, line in enumerate(open(os.path.join(source, doc), encoding="utf-8"), 1):
            for span in re.findall(r"`([\w.\-/]+)`", line):
                if "/" not in span or span.startswith(("build/", "/")) or ".." in span:
                    continue
                if re.match(r"^[A-Z_]+/", span):  # a placeholder such as DIR/a.sage.hpp
                    continue
                if not (span.endswith("/") or re.search(r"\.(hpp|cpp|h|fbs|cmake|md|txt|py|json|supp|in)$", span)):
                    continue
                checked += 1
                if not any(os.path.exists(os.path.join(source, base, span)) for base in ("", "include", "docs")):
                    errors.append(f"{doc}:{k}: `{span}` does not exist (relative to the source tree, include/ or docs/)")
    for e in errors:
        print(e)
    print(f"{checked} paths in the docs checked, {len(errors)} problems")
    return 1 if errors else 0


def all_docs(source):
    docs = ["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(source, "docs")) if f.endswith(".md"))
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True)
    ap.add_argument("--build")
    ap.add_argument("--cxx-flags", help="file holding the compiler and flags for compile blocks")
    ap.add_argument("--check-marks", action="store_true", help="only check that every block of every doc is marked")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--check-paths", action="store_true", help="only check that every path the docs name exists")
    ap.add_argument("--check-test-names", metavar="CTEST",
                    help="only check that every ctest the docs name exists (needs --build)")
    ap.add_argument("doc", nargs="?", help="document relative to --source, e.g. docs/schemas.md")
    a = ap.parse_args()
    source = os.path.abspath(a.source)

    if a.check_paths:
        return check_paths(source)

    if a.check_test_names:
        return check_test_names(source, os.path.abspath(a.build), a.check_test_names)

    if a.check_marks:
        total, errors = 0, []
        for doc in all_docs(source):
            blocks, errs = parse(os.path.join(source, doc), doc)
            total += len(blocks)
            errors += errs
        for e in errors:
            print(e)
        print(f"{total} fenced blocks marked in {len(all_docs(source))} documents, {len(errors)} problems")
        return 1 if errors else 0

    if not a.doc or not a.build or not a.cxx_flags:
        ap.error("a document, --build and --cxx-flags are needed")
    blocks, errors = parse(os.path.join(source, a.doc), a.doc)
    for e in errors:
        print(e)
    runner = Runner(source, os.path.abspath(a.build), a.cxx_flags, a.keep)
    failed = len(errors)
    try:
        for b in blocks:
            try:
                started = time.monotonic()
                runner.run(b)
                took = time.monotonic() - started
                print(f"{b.where()}: {b.mode} ok ({took:.1f} s)" if b.mode != "skip" else
                      f"{b.where()}: skipped: {skip_reason(b.args)}")
            except (DocError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                failed += 1
                print(f"{b.where()}: error: {b.mode} block failed: {e}")
    finally:
        runner.close()
    print(f"{a.doc}: {len(blocks)} blocks, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""IR-in / IR-out tests of every pass: each `tests/passes/<pass-name>/*.mlir` is run and checked.

A file starts with `// RUN: btc-opt --pipeline "<passes>"` (the pipeline text `btc opt` takes; it may
run prerequisites before the pass under test, and must include that pass). The rest is the input
module, then either FileCheck lines (`// CHECK:`, `-NEXT`, `-SAME`, `-NOT`, `-DAG`; see filecheck.py)
matched against the printed result, or `// EXPECT-ERROR: <regex>`, searched in the BtcError the
pipeline must raise. The inputs are checked in, independent of the Python frontend.
"""
import os
import re
import shlex

import pytest
from click.testing import CliRunner

from btc.errors import BtcError
from btc.passes import PASSES, parse_pipeline
from btc.tools.cli import main
from btc.tools.opt import read_module, run_opt
from filecheck import CheckFailure, filecheck, parse_checks

ROOT = os.path.join(os.path.dirname(__file__), "passes")
FILES = sorted(os.path.relpath(os.path.join(d, f), ROOT)
               for d, _, names in os.walk(ROOT) for f in names if f.endswith(".mlir"))
MIN_FILES_PER_PASS = 3


def read_run_line(text: str, where: str) -> str:
    """The pipeline text of the file's first line, `// RUN: btc-opt [%s] --pipeline "..."`."""
    first = text.splitlines()[0] if text else ""
    m = re.match(r"^//\s*RUN:\s*(.*)$", first)
    if not m:
        raise AssertionError(f"{where}: the first line must be // RUN: btc-opt --pipeline \"...\"")
    words = shlex.split(m.group(1))
    if words[:1] == ["btc", "opt"] or words[:1] == ["btc-opt"]:
        words = words[2:] if words[0] == "btc" else words[1:]
    else:
        raise AssertionError(f"{where}: RUN line must call btc-opt, got {m.group(1)!r}")
    words = [w for w in words if w != "%s"]
    if len(words) != 2 or words[0] not in ("--pipeline", "-p"):
        raise AssertionError(f"{where}: RUN line takes exactly --pipeline \"...\", got {m.group(1)!r}")
    return words[1]


def pass_names(pipeline: str) -> list[str]:
    """The pass names of a pipeline, options dropped unread (an error file's options may be bad)."""
    depth, flat = 0, []
    for c in pipeline:
        depth += (c == "{") - (c == "}")
        flat.append(c if depth == 0 and c != "}" else "")
    return [name.strip() for name in "".join(flat).split(",")]


def expected_error(text: str) -> str | None:
    found = re.findall(r"^\s*//\s*EXPECT-ERROR:\s*(.*?)\s*$", text, re.M)
    assert len(found) <= 1, "at most one EXPECT-ERROR per file"
    return found[0] if found else None


@pytest.mark.parametrize("rel", FILES)
def test_pass_file(rel):
    path = os.path.join(ROOT, rel)
    text = open(path).read()
    pipeline = read_run_line(text, rel)
    error = expected_error(text)
    checks = parse_checks(text)
    module = read_module(path)
    if error is not None:
        assert not checks, f"{rel}: CHECK lines and EXPECT-ERROR exclude each other"
        with pytest.raises(BtcError) as caught:
            run_opt(module, parse_pipeline(pipeline))
        assert re.search(error, str(caught.value)), f"{rel}: error {str(caught.value)!r} does not match {error!r}"
        return
    run_opt(module, parse_pipeline(pipeline))
    filecheck(checks, str(module), name=rel)


def test_every_registered_pass_has_its_files():
    """Every pass in the registry has >= 3 files, each of whose RUN pipelines runs it."""
    for name in PASSES:
        files = [f for f in FILES if f.split(os.sep)[0] == name]
        assert len(files) >= MIN_FILES_PER_PASS, f"{name}: {len(files)} test files in tests/passes/{name}/"
        for f in files:
            ran = pass_names(read_run_line(open(os.path.join(ROOT, f)).read(), f))
            assert name in ran, f"{f}: its RUN pipeline {ran} does not run {name}"
    stray = {f.split(os.sep)[0] for f in FILES} - set(PASSES)
    assert not stray, f"tests/passes/ folders that name no registered pass: {sorted(stray)}"


def test_btc_opt_cli_runs_a_file_like_the_harness(tmp_path):
    """The RUN line is a real command: `btc opt FILE --pipeline ...` prints the same module."""
    rel = os.path.join("btc-analyse", "feedforward_order.mlir")
    path = os.path.join(ROOT, rel)
    text = open(path).read()
    result = CliRunner().invoke(main, ["opt", path, "--pipeline", read_run_line(text, rel)])
    assert result.exit_code == 0, result.output
    filecheck(parse_checks(text), result.output, name=rel)
    result = CliRunner().invoke(main, ["opt", path, "--pipeline", "btc-analyse{order=1}"])
    assert result.exit_code != 0 and "btc-analyse: unknown option 'order'; options: (none)" in result.output


# ---------------------------------------------------------------- the checker itself
_OUT = "a b c\nfoo %1 = bar\n  baz x=3\nqux\nend\n"


@pytest.mark.parametrize("checks", [
    "CHECK: a   b\nCHECK-NEXT: foo [[V:%[0-9]+]] = bar\nCHECK-NEXT: baz\nCHECK-SAME: x={{[0-9]}}\nCHECK: end",
    "CHECK-DAG: qux\nCHECK-DAG: baz\nCHECK-NOT: foo\nCHECK: end",
    "CHECK: foo [[V:%[0-9]+]]\nCHECK-NOT: [[V]]\nCHECK: end",
])
def test_filecheck_accepts(checks):
    filecheck(parse_checks("\n".join("// " + c for c in checks.splitlines())), _OUT)


@pytest.mark.parametrize("checks", [
    "CHECK: qux\nCHECK: baz",  # order
    "CHECK: a b\nCHECK-NEXT: baz",  # not the next line
    "CHECK: foo\nCHECK-SAME: baz",  # not on the same line
    "CHECK: a\nCHECK-NOT: bar\nCHECK: qux",  # excluded text in between
    "CHECK: qux\nCHECK-NOT: end",  # excluded text after the last match
    "CHECK-DAG: qux\nCHECK-DAG: qux",  # two DAG lines cannot take the same text
    "CHECK: [[X:b+]] c\nCHECK: [[X]]x",  # a use must equal the capture
])
def test_filecheck_rejects(checks):
    with pytest.raises(CheckFailure):
        filecheck(parse_checks("\n".join("// " + c for c in checks.splitlines())), _OUT)

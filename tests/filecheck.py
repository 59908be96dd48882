"""A small FileCheck: match `// CHECK...:` lines of a test file against a pass's printed output.

Implements the directives btc's pass tests use, with LLVM FileCheck's meaning:

  CHECK:       the pattern occurs at or after the end of the previous match
  CHECK-NEXT:  ... on the line right after the previous match's line
  CHECK-SAME:  ... on the previous match's line, after it
  CHECK-NOT:   the pattern occurs nowhere between the previous match and the next positive match
               (or the end of the output)
  CHECK-DAG:   a run of consecutive DAG lines matches in any order (no two on the same text) after
               the previous match; the next directive starts after the furthest of them
  CHECK-LABEL: as CHECK (no separate label-block search)

Patterns are literal text with `{{regex}}` inserts, `[[NAME:regex]]` captures and `[[NAME]]`
uses of an earlier capture. Runs of spaces/tabs match any non-empty run of spaces/tabs, and
leading/trailing whitespace of a pattern is ignored (FileCheck's default canonicalisation).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Check", "CheckFailure", "parse_checks", "filecheck"]

_DIRECTIVE = re.compile(r"^\s*//\s*(CHECK(?:-NEXT|-SAME|-NOT|-DAG|-LABEL)?):(.*)$")
_TOKEN = re.compile(r"\{\{(.*?)\}\}|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::(.*?))?\]\]")


class CheckFailure(AssertionError):
    pass


@dataclass
class Check:
    kind: str  # CHECK | CHECK-NEXT | CHECK-SAME | CHECK-NOT | CHECK-DAG | CHECK-LABEL
    pattern: str
    line: int  # 1-based line in the test file, for messages


def parse_checks(text: str) -> list[Check]:
    checks = []
    for number, line in enumerate(text.splitlines(), start=1):
        m = _DIRECTIVE.match(line)
        if m:
            if not m.group(2).strip() and m.group(1) != "CHECK-NEXT":
                raise CheckFailure(f"line {number}: empty {m.group(1)} pattern")
            checks.append(Check(m.group(1), m.group(2).strip(), number))
    return checks


def _literal(text: str) -> str:
    return "".join(r"[ \t]+" if part.isspace() else re.escape(part) for part in re.split(r"([ \t]+)", text) if part)


def _regex(pattern: str, variables: dict[str, str]) -> tuple[re.Pattern, list[str]]:
    """The compiled regex of a pattern and the names it captures, in group order."""
    out, captures, pos = [], [], 0
    for m in _TOKEN.finditer(pattern):
        out.append(_literal(pattern[pos:m.start()]))
        regex, name, definition = m.groups()
        if regex is not None:
            out.append(f"(?:{regex})")
        elif definition is not None:
            out.append(f"({definition})")
            captures.append(name)
        else:
            if name not in variables:
                raise CheckFailure(f"pattern uses [[{name}]] before any [[{name}:...]] defines it")
            out.append(re.escape(variables[name]))
        pos = m.end()
    out.append(_literal(pattern[pos:]))
    return re.compile("".join(out)), captures


class _Matcher:
    def __init__(self, output: str):
        self.out = output
        self.vars: dict[str, str] = {}

    def find(self, check: Check, start: int, end: int | None = None):
        """(start, end) of the first match in out[start:end], binding captures; or None."""
        regex, captures = _regex(check.pattern, self.vars)
        m = regex.search(self.out, start, len(self.out) if end is None else end)
        if m is None:
            return None
        self.vars.update(zip(captures, m.groups()))
        return m.start(), m.end()

    def line_bounds(self, pos: int) -> tuple[int, int]:
        start = self.out.rfind("\n", 0, pos) + 1
        end = self.out.find("\n", pos)
        return start, len(self.out) if end < 0 else end


def filecheck(checks: list[Check], output: str, name: str = "test") -> None:
    """Raise CheckFailure, quoting the directive and where the search started, if `output` fails."""
    if not checks:
        raise CheckFailure(f"{name}: no CHECK lines")
    m = _Matcher(output)
    pos = 0  # end of the previous positive match
    pending_not: list[Check] = []
    i = 0

    def fail(check: Check, why: str, at: int):
        line_no = output.count("\n", 0, at) + 1
        context = output.splitlines()[line_no - 1] if output else ""
        raise CheckFailure(f"{name}:{check.line}: {check.kind}: {check.pattern}\n  {why} "
                           f"(search from output line {line_no}: {context.strip()[:120]!r})")

    def settle_nots(until: int):
        for nc in pending_not:
            hit = m.find(nc, pos, until)
            if hit:
                fail(nc, "excluded pattern found", hit[0])
        pending_not.clear()

    while i < len(checks):
        c = checks[i]
        if c.kind == "CHECK-NOT":
            pending_not.append(c)
            i += 1
            continue
        if c.kind == "CHECK-DAG":
            group = []
            while i < len(checks) and checks[i].kind == "CHECK-DAG":
                group.append(checks[i])
                i += 1
            taken: list[tuple[int, int]] = []
            for dc in group:
                start, hit = pos, None
                while True:
                    hit = m.find(dc, start)
                    if hit is None or not any(a < hit[1] and hit[0] < b for a, b in taken):
                        break
                    start = hit[0] + 1  # overlaps another DAG match: look further on
                if hit is None:
                    fail(dc, "no match (DAG)", pos)
                taken.append(hit)
            settle_nots(min(a for a, _ in taken))
            pos = max(b for _, b in taken)
            continue
        if c.kind == "CHECK-SAME":
            line_end = m.line_bounds(max(pos - 1, 0))[1]
            hit = m.find(c, pos, line_end)
            if hit is None:
                fail(c, "no match on the same line", pos)
        elif c.kind == "CHECK-NEXT":
            cur_end = m.line_bounds(max(pos - 1, 0))[1]
            if cur_end >= len(output):
                fail(c, "no next line", pos)
            nxt_start, nxt_end = cur_end + 1, m.line_bounds(cur_end + 1)[1]
            hit = m.find(c, nxt_start, nxt_end)
            if hit is None:
                fail(c, "no match on the next line", nxt_start)
        else:  # CHECK, CHECK-LABEL
            hit = m.find(c, pos)
            if hit is None:
                fail(c, "no match", pos)
        settle_nots(hit[0])
        pos = hit[1]
        i += 1
    settle_nots(len(output))

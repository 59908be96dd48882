"""btc's passes, one per file, found by name; `run_pipeline` runs them as MLIR Python passes.

A pipeline is a list of pass objects; its text form, printed by `pipeline_text` and read back by
`parse_pipeline` (`btc opt --pipeline`), is saved in every artifact so a compile can be replayed:

    pipeline := pass ("," pass)*                 e.g. btc-verify,btc-plan-traces{algorithm=hybrid budget=0}
    pass     := NAME ["{" [option (" " option)*] "}"]
    option   := FIELD "=" value                  FIELD: the pass dataclass's field name
    value    := bare | "json-quoted" | "{" [item ("," item)*] "}"     (the last for tuple fields)

The field's type decides how a value reads: str (bare when it is only [A-Za-z0-9_.+-=@/:], else
JSON-quoted), an Enum (its value, as str), int, float (Python `repr`, so it reads back exactly: 0.1,
1e-05, inf), bool (true/false), tuple of str (`{a=b,"c d"}`, empty `{}`). Every option is printed,
in field order.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
from dataclasses import MISSING, fields
from enum import Enum

from iree.compiler import ir
from iree.compiler.passmanager import PassManager

from btc.algorithm import Algorithm
from btc.errors import BtcError

__all__ = ["PASSES", "get_pass", "default_pipeline", "pipeline_text", "parse_pipeline", "run_pipeline"]

# pass name -> (module, class); imported only when used
PASSES = {
    "btc-verify": ("verify", "VerifyPass"),
    "btc-analyse": ("analyse", "AnalysePass"),
    "btc-derive-jacobians": ("derive_jacobians", "DeriveJacobiansPass"),
    "btc-plan-traces": ("plan_traces", "PlanTracesPass"),
    "btc-plan-events": ("plan_events", "PlanEventsPass"),
    "btc-rewrite-online": ("rewrite_online", "RewriteOnlinePass"),
    "btc-lower-to-linalg": ("lower_to_linalg", "LowerToLinalgPass"),
    "btc-check-lowered": ("check_lowered", "CheckLoweredPass"),
}


def _pass_class(name: str):
    if name not in PASSES:
        raise BtcError(f"unknown pass {name!r}; known passes: {', '.join(PASSES)}")
    module, cls = PASSES[name]
    return getattr(importlib.import_module(f"btc.passes.{module}"), cls)


def get_pass(name: str, **options):
    cls = _pass_class(name)
    known = [f.name for f in fields(cls)]
    for key in options:
        if key not in known:
            raise BtcError(f"{name}: unknown option {key!r}; options: {', '.join(known) or '(none)'}")
    return cls(**options)


def default_pipeline(algorithm: str = Algorithm.PP_PROP.value, plan: dict | None = None, lowering: dict | None = None,
                     events: dict | None = None) -> list:
    """plan: options of btc-plan-traces (decays, correction, budget, overrides); lowering: of
    btc-lower-to-linalg (optimizer, update schedule); events: of btc-plan-events (mode, activity)."""
    return [
        get_pass("btc-verify"),
        get_pass("btc-analyse"),
        get_pass("btc-derive-jacobians"),
        get_pass("btc-plan-traces", algorithm=algorithm, **(plan or {})),
        get_pass("btc-plan-events", update_every=(lowering or {}).get("update_every", 0),
                 partitioned=bool((lowering or {}).get("partitioned", False)), **(events or {})),
        get_pass("btc-rewrite-online", algorithm=algorithm),
        get_pass("btc-lower-to-linalg", **(lowering or {})),
        get_pass("btc-check-lowered"),
    ]


# ---------------------------------------------------------------- printing
_BARE = re.compile(r"[A-Za-z0-9_.+\-=@/:]+")


def _kind(field) -> str:
    """str | enum | int | float | bool | tuple, from the default's type if it is an Enum, else from the
    annotation (a string under `from __future__ import annotations`) or, failing that, the default."""
    if isinstance(field.default, Enum):
        return "enum"
    ann = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    for kind in ("bool", "int", "float", "str", "tuple"):
        if ann == kind or ann.startswith(kind + "[") or ann.startswith(kind + " "):
            return kind
    if field.default is not MISSING:
        return type(field.default).__name__
    return "str"


def _word(s: str) -> str:
    return s if _BARE.fullmatch(s) else json.dumps(s)


def _format(kind: str, value) -> str:
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return repr(float(value))  # repr is the shortest text that reads back to the same double
    if kind == "int":
        return str(int(value))
    if kind == "tuple":
        return "{" + ",".join(_word(str(v)) for v in value) + "}"
    return _word(value.value if isinstance(value, Enum) else str(value))


def pipeline_text(passes: list) -> str:
    parts = []
    for p in passes:
        opts = " ".join(f"{f.name}={_format(_kind(f), getattr(p, f.name))}" for f in fields(p))
        parts.append(p.name + (f"{{{opts}}}" if opts else ""))
    return ",".join(parts)


# ---------------------------------------------------------------- parsing
class _Reader:
    """A cursor over the pipeline text; errors quote the text around the failing position."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def error(self, message: str) -> BtcError:
        return BtcError(f"pipeline text, at character {self.pos}: {message}\n  {self.text}\n  {' ' * self.pos}^")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, pattern: str, what: str) -> str:
        m = re.compile(pattern).match(self.text, self.pos)
        if not m:
            raise self.error(f"expected {what}")
        self.pos = m.end()
        return m.group(0)

    def quoted(self) -> str:
        try:
            value, end = json.JSONDecoder().raw_decode(self.text, self.pos)
        except ValueError:
            raise self.error("unterminated or malformed quoted string (JSON quoting: \"...\")") from None
        self.pos = end
        return value

    def word(self, stop: str) -> str:
        """A quoted string, or bare text up to whitespace or one of `stop`."""
        if self.peek() == '"':
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and not self.text[self.pos].isspace() and self.text[self.pos] not in stop:
            self.pos += 1
        return self.text[start:self.pos]

    def items(self) -> tuple:
        """`{a,b,...}` after the `{`."""
        out = []
        self.skip()
        if self.peek() == "}":
            self.pos += 1
            return ()
        while True:
            self.skip()
            out.append(self.word(',{}"'))
            self.skip()
            c = self.peek()
            self.pos += 1
            if c == "}":
                return tuple(out)
            if c != ",":
                self.pos -= 1
                raise self.error("expected ',' or '}' in a list value")

    def python_literal(self) -> str:
        """Text of a balanced (...) literal: the form pipelines were printed in before this grammar."""
        start, depth, quote = self.pos, 0, ""
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if quote:
                if c == "\\":
                    self.pos += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return self.text[start:self.pos]
        raise self.error("unbalanced '('")


def _convert(pass_name: str, field, raw, shown: str):
    kind = _kind(field)

    def bad(expected: str) -> BtcError:
        return BtcError(f"{pass_name}: option {field.name}={shown}: expected {expected}")

    if kind == "tuple":
        if isinstance(raw, tuple):
            return raw
        raise bad("a list {item,item,...} (empty: {})")
    if isinstance(raw, tuple):
        raise bad(f"a single {kind}, not a list")
    if kind == "enum":
        choices = type(field.default)
        try:
            return choices(raw)
        except ValueError:
            raise bad(f"one of {[c.value for c in choices]}") from None
    if kind == "bool":
        if raw in ("true", "True", "1"):
            return True
        if raw in ("false", "False", "0"):
            return False
        raise bad("a bool: true or false")
    if kind == "int":
        if re.fullmatch(r"[+-]?\d+", raw):
            return int(raw)
        raise bad("an integer")
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise bad("a float (Python repr, e.g. 0.9, 1e-05, inf)") from None
    return raw


def parse_pipeline(text: str) -> list:
    """Pass objects from pipeline text (the inverse of `pipeline_text`); '' is the empty pipeline."""
    r = _Reader(text)
    passes = []
    r.skip()
    if r.pos == len(text):
        return passes
    while True:
        r.skip()
        start = r.pos
        name = r.take(r"[A-Za-z0-9_\-]+", f"a pass name; known passes: {', '.join(PASSES)}")
        if name not in PASSES:
            r.pos = start
            raise r.error(f"unknown pass {name!r}; known passes: {', '.join(PASSES)}")
        cls = _pass_class(name)
        known = {f.name: f for f in fields(cls)}
        options: dict = {}
        if r.peek() == "{":
            r.pos += 1
            while True:
                r.skip()
                if r.peek() == "}":
                    r.pos += 1
                    break
                if r.pos == len(text):
                    raise r.error(f"missing '}}' after the options of {name}")
                start = r.pos
                key = r.take(r"[A-Za-z_][A-Za-z0-9_\-]*", f"an option of {name} or '}}'")
                key = key.replace("-", "_")  # decay-pre, as MLIR spells options, is decay_pre
                if key not in known:
                    r.pos = start
                    raise r.error(f"{name}: unknown option {key!r}; options: {', '.join(known) or '(none)'}")
                if key in options:
                    r.pos = start
                    raise r.error(f"{name}: option {key!r} given twice")
                r.take("=", f"'=' after {name} option {key}")
                vstart = r.pos
                if r.peek() == "{":
                    r.pos += 1
                    raw = r.items()
                elif r.peek() == "(" and _kind(known[key]) == "tuple":
                    try:
                        raw = tuple(str(v) for v in ast.literal_eval(r.python_literal()))
                    except (ValueError, SyntaxError, TypeError):
                        raise r.error(f"{name}: option {key}: malformed (...) list") from None
                else:
                    raw = r.word('{},"')
                    if r.pos == vstart:
                        raise r.error(f"{name}: option {key} has no value")
                options[key] = _convert(name, known[key], raw, text[vstart:r.pos])
                if r.peek() not in ("}", "") and not r.peek().isspace():
                    raise r.error(f"{name}: expected a space or '}}' after option {key}")
        try:
            passes.append(cls(**options))
        except BtcError as e:  # a pass that checks its options as it is built
            raise BtcError(f"{name}: {e}") from None
        r.skip()
        if r.pos == len(text):
            return passes
        if r.peek() != ",":
            raise r.error("expected ',' between passes")
        r.pos += 1


# ---------------------------------------------------------------- running
def run_pipeline(module: ir.Module, passes: list | str, dump_dir: str | None = None) -> None:
    """Run each pass (objects, or pipeline text) as a named MLIR Python pass; optionally write the IR
    after every pass."""
    if isinstance(passes, str):
        passes = parse_pipeline(passes)
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        _dump(module, os.path.join(dump_dir, "00-input.mlir"))
    for index, p in enumerate(passes, start=1):
        failure: list[BaseException] = []

        def body(op, pass_, p=p):
            try:
                p.run(module)
            except BaseException as e:  # re-raised below with the pass named
                failure.append(e)
                pass_.signal_pass_failure()

        pm = PassManager("builtin.module", context=module.context)
        pm.add(body, name=p.name, argument=p.name)
        try:
            pm.run(module.operation)
        except ir.MLIRError as e:
            if not failure:
                raise BtcError(f"pass {p.name} failed: {e}") from None
        if failure:
            err = failure[0]
            if isinstance(err, BtcError):
                raise BtcError(f"{p.name}: {err}") from None
            if isinstance(err, (KeyError, AttributeError, TypeError, IndexError, ValueError)):
                # a pass reading what an earlier pass should have written: name the stage it expects
                before = list(PASSES)[:list(PASSES).index(p.name)] if p.name in PASSES else []
                raise BtcError(f"{p.name}: the module is not at the stage this pass reads "
                               f"({type(err).__name__}: {err}); it runs after {', '.join(before) or 'nothing'}"
                               ) from err
            raise err
        if dump_dir:
            _dump(module, os.path.join(dump_dir, f"{index:02d}-{p.name}.mlir"))


def _dump(module: ir.Module, path: str) -> None:
    with open(path, "w") as f:
        f.write(str(module))

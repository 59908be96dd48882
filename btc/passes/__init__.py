"""btc's passes, one per file, found by name; `run_pipeline` runs them as MLIR Python passes.

A pipeline is a list of pass names with options; its text form (e.g.
`btc-verify,btc-plan-traces{algorithm=pp-prop decay_pre=0.9 ...},...`) is saved in every artifact.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import fields

from iree.compiler import ir
from iree.compiler.passmanager import PassManager

from btc.errors import BtcError

__all__ = ["PASSES", "get_pass", "default_pipeline", "pipeline_text", "run_pipeline"]

# pass name -> (module, class); imported only when used
PASSES = {
    "btc-verify": ("verify", "VerifyPass"),
    "btc-analyse": ("analyse", "AnalysePass"),
    "btc-derive-jacobians": ("derive_jacobians", "DeriveJacobiansPass"),
    "btc-plan-traces": ("plan_traces", "PlanTracesPass"),
    "btc-rewrite-online": ("rewrite_online", "RewriteOnlinePass"),
    "btc-lower-to-linalg": ("lower_to_linalg", "LowerToLinalgPass"),
    "btc-check-lowered": ("check_lowered", "CheckLoweredPass"),
}


def get_pass(name: str, **options):
    if name not in PASSES:
        raise BtcError(f"unknown pass {name!r}; known passes: {sorted(PASSES)}")
    module, cls = PASSES[name]
    return getattr(importlib.import_module(f"btc.passes.{module}"), cls)(**options)


def default_pipeline(algorithm: str = "pp-prop", plan: dict | None = None, lowering: dict | None = None) -> list:
    """plan: options of btc-plan-traces (decays, correction, budget, overrides); lowering: of
    btc-lower-to-linalg (optimizer, update schedule)."""
    return [
        get_pass("btc-verify"),
        get_pass("btc-analyse"),
        get_pass("btc-derive-jacobians"),
        get_pass("btc-plan-traces", algorithm=algorithm, **(plan or {})),
        get_pass("btc-rewrite-online", algorithm=algorithm),
        get_pass("btc-lower-to-linalg", **(lowering or {})),
        get_pass("btc-check-lowered"),
    ]


def pipeline_text(passes: list) -> str:
    parts = []
    for p in passes:
        opts = " ".join(f"{f.name}={getattr(p, f.name)}" for f in fields(p))
        parts.append(p.name + (f"{{{opts}}}" if opts else ""))
    return ",".join(parts)


def run_pipeline(module: ir.Module, passes: list, dump_dir: str | None = None) -> None:
    """Run each pass as a named MLIR Python pass; optionally write the IR after every pass."""
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
            raise err
        if dump_dir:
            _dump(module, os.path.join(dump_dir, f"{index:02d}-{p.name}.mlir"))


def _dump(module: ir.Module, path: str) -> None:
    with open(path, "w") as f:
        f.write(str(module))

"""`btc opt`: run a pass pipeline, given as text, on a btc module read from a file (btc's mlir-opt).

The input can be any stage `btc compile --dump-ir-after-all DIR` wrote (00-input.mlir is the
frontend's module); the output is the module after the pipeline, or, with `emit="vmfb"`, the IREE
module compiled from it with the target backend's default flags, exactly as `btc compile` does.
So an artifact's recorded pipeline replays: `btc opt DIR/00-input.mlir --pipeline-from
ARTIFACT/manifest.json --emit vmfb -o model.vmfb` gives its model.vmfb again, byte for byte.
"""
from __future__ import annotations

import json
import sys

from btc.errors import BtcError

__all__ = ["read_module", "run_opt", "emit_vmfb", "pipeline_of_manifest"]


def read_module(path: str):
    """Parse a btc (or lowered) module from a file, '-' for stdin."""
    from btc.dialect import parse_module

    if path == "-":
        return parse_module(sys.stdin.read())
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise BtcError(f"cannot read {path}: {e.strerror}") from None
    try:
        return parse_module(text)
    except BtcError as e:
        raise BtcError(f"{path}: {e}") from None


def run_opt(module, pipeline, dump_dir: str | None = None):
    """Run `pipeline` (text, or pass objects) on `module` in place and return it."""
    from btc.passes import run_pipeline

    run_pipeline(module, pipeline, dump_dir)
    return module


def emit_vmfb(module, target: str) -> bytes:
    """The vmfb of a fully lowered module: `compile_module(str(module), target)`, as btc compile does."""
    from btc.backends import compile_module
    from btc.passes.check_lowered import leftover_btc_ops

    left = leftover_btc_ops(module)
    if left:
        raise BtcError(f"--emit vmfb needs a lowered module, but {len(left)} btc op(s) remain "
                       f"({', '.join(sorted(set(left)))}); add btc-lower-to-linalg (and what precedes it) "
                       "to --pipeline")
    return compile_module(str(module), target)


def pipeline_of_manifest(path: str) -> tuple[str, str]:
    """(pipeline text, target) an artifact was compiled with (its manifest.json, or the artifact directory)."""
    import os

    if os.path.isdir(path):
        path = os.path.join(path, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise BtcError(f"cannot read the manifest {path}: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("pipeline"), str):
        raise BtcError(f"{path} records no pipeline (is it a btc artifact's manifest.json?)")
    return manifest["pipeline"], manifest.get("target", "llvm-cpu")

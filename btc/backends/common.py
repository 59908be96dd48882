"""Flags every target shares (each backend adds its device and architecture)."""

import re
from functools import cache

__all__ = ["COMMON_FLAGS", "tile_hints"]

COMMON_FLAGS = [
    "--iree-opt-level=O2",
    # IREE 3.13 workarounds, each reproduced by tests/test_against_oracles.py:
    # at O2, dispatch creation emits an invalid linalg.generic for an MSE loss into a biased readout;
    "--iree-dispatch-creation-opt-level=O1",
    # hoisting constant fills next to sequence globals yields "immutable load of a mutable global".
    "--iree-opt-const-expr-hoisting=false",
    # reproducible artifacts: IREE 3.13 numbers the source map of fused globals in hash-map order,
    # so the same input gave different vmfb bytes (tests/test_cli.py replays compare them)
    "--iree-vm-bytecode-module-strip-source-map=true",
]


@cache
def _tile_hint() -> re.Pattern:
    """A lowered op's tile hint as MLIR prints it: `attrs =  {btc.tiles = array<i64: 1, 1024, 0>}`. (Imported
    here, not at the top: btc.dialect needs the compiler, and a runtime-only install imports btc.backends.)"""
    from btc.dialect.ops import TILES_ATTR
    return re.compile(r"attrs\s*=\s*\{" + re.escape(TILES_ATTR) + r" = array<i64: ([0-9, ]+)>\}")


def tile_hints(mlir_text: str, config=None) -> str:
    """The lowered module with each tile hint (btc.dialect.ops.TILES_ATTR) replaced by config(tiles) -> the
    op's attribute dictionary text, or dropped where config is None or returns None."""
    def replace(m):
        text = config(tuple(int(v) for v in m.group(1).split(","))) if config else None
        return f"attrs = {{{text}}}" if text else ""
    return _tile_hint().sub(replace, mlir_text)

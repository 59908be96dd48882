"""Flags every target shares (each backend adds its device and architecture), and `tile_hints`, which turns
the lowering's tile hints into a backend's configuration or drops them."""

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
    """A tile hint entry as MLIR prints it, `btc.tiles = array<i64: 1, 1024, 0>`, with the comma that joins it
    to other entries of its attribute dictionary. (btc.dialect is imported here, not at the top: it needs
    the compiler, and a runtime-only install imports btc.backends.)"""
    from btc.dialect.ops import TILES_ATTR, VECTOR_TILES_ATTR
    sizes = r" = array<i64: ([0-9, ]+)>"
    # MLIR prints a dictionary's entries sorted by name: the vector tiles, if any, follow the tiles
    return re.compile(r"(,\s*)?" + re.escape(TILES_ATTR) + sizes
                      + r"(?:,\s*" + re.escape(VECTOR_TILES_ATTR) + sizes + r")?(\s*,)?")


_EMPTY_ATTRS = re.compile(r"attrs\s*=\s*\{\s*\}\s*")


def tile_hints(mlir_text: str, config=None) -> str:
    """The lowered module with each tile hint (btc.dialect.ops.TILES_ATTR, and VECTOR_TILES_ATTR if given)
    replaced by config(tiles, vector tiles or None) -> an attribute entry's text (`name = value`), or dropped
    where config is None or returns None; other entries of the op's attribute dictionary stay."""
    def sizes(text):
        return tuple(int(v) for v in text.split(",")) if text else None

    def replace(m):
        text = config(sizes(m.group(2)), sizes(m.group(3))) if config else None
        before, after = m.group(1) or "", m.group(4) or ""
        if text:
            return before + text + after
        return "," if before and after else ""  # the space after the second comma stays
    return _EMPTY_ATTRS.sub("", _tile_hint().sub(replace, mlir_text))

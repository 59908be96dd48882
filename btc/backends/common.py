"""Flags every target shares (each backend adds its device and architecture)."""

__all__ = ["COMMON_FLAGS"]

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

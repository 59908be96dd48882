"""Backends, one file each (`btc/backends/<name>.py`), found by target name and imported on use.

A backend module exposes `flags(options) -> list[str]` for iree-compile; `compile_module` runs
IREE in-process and returns the VM flatbuffer bytes.
"""
from __future__ import annotations

import importlib

from btc.errors import BtcError

__all__ = ["TARGETS", "get_backend", "compile_module"]

TARGETS = {"llvm-cpu": "llvm_cpu", "cuda": "cuda"}


def get_backend(target: str):
    if target not in TARGETS:
        raise BtcError(f"unknown target {target!r}; known targets: {sorted(TARGETS)}")
    return importlib.import_module(f"btc.backends.{TARGETS[target]}")


def compile_module(mlir_text: str, target: str, extra_flags: tuple[str, ...] = ()) -> bytes:
    """Compile lowered upstream MLIR (no btc ops left) to a .vmfb, in this process."""
    from iree.compiler import api

    backend = get_backend(target)
    flags = list(backend.flags()) + list(extra_flags)
    session = api.Session()
    try:
        session.set_flags(*flags)
        inv = session.invocation()
        diagnostics: list[str] = []
        source = api.Source.wrap_buffer(session, mlir_text.encode())
        if not inv.parse_source(source):
            raise BtcError("IREE could not parse the lowered module")
        if not inv.execute():
            raise BtcError(f"iree-compile failed for target {target} with flags {' '.join(flags)}; "
                           "rerun with --dump-ir-after-all DIR and try `iree-compile` on the last file"
                           + ("\n" + "\n".join(diagnostics) if diagnostics else ""))
        out = api.Output.open_membuffer()
        inv.output_vm_bytecode(out)
        return bytes(out.map_memory())
    finally:
        session.close()

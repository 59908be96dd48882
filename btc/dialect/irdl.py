"""The IRDL description of the `btc` dialect, generated from the declarations in `ops.py`.

Each required attribute is constrained to its kind (`#builtin.string`, `#builtin.integer`, ...) and,
for string choices, to the listed values; operands and results are f32. IRDL (as in IREE 3.13) has
no optional attributes and cannot mark an op as a terminator, so optional attributes are left to
btc's own verifier, and region bodies are checked with `btc.yield` renamed (see `verify_with_iree_opt`).
"""
from __future__ import annotations

import os
import subprocess
import tempfile

from btc.dialect.ops import OPS, Attr
from btc.errors import BtcError

__all__ = ["irdl_text", "verify_with_iree_opt", "UNVERIFIED_TERMINATOR"]

UNVERIFIED_TERMINATOR = "btc_unverified.yield"

# attribute kind -> the IRDL base attribute of its values (bool is an i1 integer: listed by value)
_BASES = {"str": "#builtin.string", "int": "#builtin.integer", "float": "#builtin.float", "f32": "#builtin.float",
          "symbol": "#builtin.symbol_ref", "array": "#builtin.array",
          "indices": "#builtin.dense_int_or_fp_elements"}


def _attr_constraint(a: Attr) -> list[str]:
    """IRDL lines defining %a_<name>, the constraint on attribute `a`'s values."""
    if a.kind == "bool" or a.choices:
        values = ("true", "false") if a.kind == "bool" else [f'"{c}"' for c in a.choices]
        names = [f"%a_{a.name}_{i}" for i in range(len(values))]
        lines = [f"    {n} = irdl.is {v}" for n, v in zip(names, values)]
        return lines + [f"    %a_{a.name} = irdl.any_of({', '.join(names)})"]
    return [f'    %a_{a.name} = irdl.base "{_BASES[a.kind]}"']


def irdl_text() -> str:
    lines = ["irdl.dialect @btc {"]
    for decl in OPS.values():
        if decl.name == "btc.yield":
            continue
        lines.append(f"  // {decl.summary}")
        lines.append(f"  irdl.operation @{decl.name.removeprefix('btc.')} {{")
        if decl.operands or decl.results:
            lines.append("    %f32 = irdl.is f32")
        if decl.operands:
            lines.append("    irdl.operands(" + ", ".join(f"x{i}: %f32" for i in range(decl.operands)) + ")")
        if decl.results:
            lines.append("    irdl.results(" + ", ".join(f"r{i}: %f32" for i in range(decl.results)) + ")")
        required = [a for a in decl.attrs if not a.optional]
        if required:
            # one constraint value per attribute: a shared value would unify their types
            for a in required:
                lines += _attr_constraint(a)
            pairs = ", ".join(f'"{a.name}" = %a_{a.name}' for a in required)
            lines.append(f"    irdl.attributes {{{pairs}}}")
        if decl.regions:
            for r in decl.regions:
                lines.append(f"    %r_{r} = irdl.region")
            lines.append("    irdl.regions(" + ", ".join(f"{r}: %r_{r}" for r in decl.regions) + ")")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _iree_opt() -> str:
    from iree.compiler.tools.binaries import find_tool

    return find_tool("iree-opt")


def verify_with_iree_opt(module_text: str) -> None:
    """Verify `module_text` against the generated IRDL with iree-opt; raise BtcError with its diagnostics."""
    with tempfile.TemporaryDirectory() as tmp:
        dialect = os.path.join(tmp, "btc.irdl.mlir")
        source = os.path.join(tmp, "module.mlir")
        with open(dialect, "w") as f:
            f.write(irdl_text())
        with open(source, "w") as f:
            f.write(module_text.replace('"btc.yield"', f'"{UNVERIFIED_TERMINATOR}"'))
        cmd = [_iree_opt(), f"--irdl-file={dialect}", "--allow-unregistered-dialect", source]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BtcError(f"iree-opt rejected the module against the btc IRDL:\n{done.stderr.strip()}")

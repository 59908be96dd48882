"""btc-check-lowered: reads the lowered module; produces nothing, or an error naming every btc op
left behind. IREE accepts unknown btc ops and then crashes deep in dispatch formation, so this
must run before any module is handed to a backend.
"""
from __future__ import annotations

from dataclasses import dataclass

from iree.compiler import ir

from btc.errors import BtcError

__all__ = ["CheckLoweredPass", "leftover_btc_ops"]


def leftover_btc_ops(module) -> list[str]:
    found: list[str] = []

    def visit(op):
        if op.operation.name.startswith("btc."):
            found.append(op.operation.name)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


@dataclass(frozen=True)
class CheckLoweredPass:
    name = "btc-check-lowered"

    def run(self, module) -> None:
        left = leftover_btc_ops(module)
        if left:
            raise BtcError(f"{len(left)} btc op(s) were not lowered: {sorted(set(left))}; "
                           "a pass is missing from the pipeline (see --dump-ir-after-all)")

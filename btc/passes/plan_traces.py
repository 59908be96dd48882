"""btc-plan-traces: reads the analysed model and the algorithm; produces one `btc.trace` op per
online trace buffer, each of shape [batch, size, num_states].

pp-prop: a presynaptic trace per distinct signal (shared by every projection reading it), a
postsynaptic trace per group, and an exact (D-RTRL) trace per group whose projections have a bias.
BPTT keeps no traces: its memory is the stored sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

from iree.compiler import ir

from btc.errors import BtcError
from btc.passes._view import ModelView

__all__ = ["PlanTracesPass"]


def _i64(v: int):
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), v)


@dataclass(frozen=True)
class PlanTracesPass:
    name = "btc-plan-traces"
    algorithm: str = "pp-prop"
    decay: float = 0.9

    def run(self, module) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise BtcError(f"pp-prop decay must be in [0, 1), got {self.decay}")
        if self.algorithm == "bptt":
            return
        view = ModelView(module)
        planned = []
        for src in view.sources():
            pre, delay = src.split("@")
            planned.append((f"eps_x_{pre}_{delay}", "pre", pre, int(delay), view.size(pre), 1, self.decay))
        for g in view.order:
            info = view.groups[g]
            planned.append((f"eps_f_{g}", "post", g, 0, info.size, info.num_states, self.decay))
            if view.biased(g):
                planned.append((f"e_b_{g}", "bias", g, 0, info.size, info.num_states, 1.0))
        with module.context, ir.Location.unknown():
            for name, kind, of, delay, size, states, decay in planned:
                ir.Operation.create("btc.trace", attributes={
                    "sym_name": ir.StringAttr.get(name), "kind": ir.StringAttr.get(kind),
                    "of": ir.FlatSymbolRefAttr.get(of), "delay": _i64(delay), "size": _i64(size),
                    "num_states": _i64(states), "decay": ir.FloatAttr.get(ir.F64Type.get(), decay)},
                    ip=ir.InsertionPoint(module.body))

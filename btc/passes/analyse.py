"""btc-analyse: reads verified model ops; annotates the module with the step order of the groups,
which presynaptic signals are shared by several projections, and which are binary spike trains.

Annotations (later passes read them): module `btc.order` = [group names], and on every
`btc.input`/`btc.group`: `btc.consumers` (projection count) and `btc.binary`.
"""
from __future__ import annotations

from dataclasses import dataclass

from iree.compiler import ir

from btc.errors import BtcError
from btc.passes._view import ModelView

__all__ = ["AnalysePass", "step_order"]


def step_order(view: ModelView) -> list[str]:
    """Groups in dependency order over same-step (feed-forward) projections."""
    deps = {g: {p.pre for p in view.into(g) if p.lag == 0 and p.pre in view.groups} for g in view.groups}
    for g, info in view.groups.items():
        if info.driver in view.groups:
            deps[g].add(info.driver)
    order: list[str] = []
    while len(order) < len(deps):
        ready = [g for g in deps if g not in order and deps[g] <= set(order)]
        if not ready:
            raise BtcError(f"feed-forward projections form a cycle among {sorted(set(deps) - set(order))}")
        order.extend(ready)
    return order


@dataclass(frozen=True)
class AnalysePass:
    name = "btc-analyse"

    def run(self, module) -> None:
        view = ModelView(module)
        order = step_order(view)
        with module.context:
            module.operation.attributes["btc.order"] = ir.ArrayAttr.get([ir.StringAttr.get(g) for g in order])
            for name, op in [(n, v.op) for n, v in view.groups.items()]:
                consumers = sum(1 for p in view.projections.values() if p.pre == name)
                op.attributes["btc.consumers"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), consumers)
                op.attributes["btc.binary"] = ir.BoolAttr.get(not view.groups[name].readout)
            for op in module.body.operations:
                if op.operation.name == "btc.input":
                    name = ir.StringAttr(op.operation.attributes["sym_name"]).value
                    consumers = sum(1 for p in view.projections.values() if p.pre == name)
                    op.operation.attributes["btc.consumers"] = ir.IntegerAttr.get(
                        ir.IntegerType.get_signless(64), consumers)
                    op.operation.attributes["btc.binary"] = op.operation.attributes["binary"]

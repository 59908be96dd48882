"""btc-analyse: reads verified model ops; annotates the module with the step order of the groups
and which presynaptic signals are binary spike trains.

Annotations (later passes read them): module `btc.order` = [group names], and on every
`btc.input`/`btc.group`/`btc.readout`: `btc.binary`.
"""
from __future__ import annotations

from dataclasses import dataclass

from btc.dialect import InputOp, make_attribute, set_module_attribute
from btc.errors import BtcError
from btc.passes._view import ModelView

__all__ = ["AnalysePass", "step_order"]


def step_order(view: ModelView) -> list[str]:
    """Groups in dependency order over same-step (feed-forward) projections."""
    deps = {g: {p.pre for p in view.into(g) if p.lag == 0 and p.pre in view.groups} for g in view.groups}
    for g, info in view.groups.items():
        if info.driven_by in view.groups:
            deps[g].add(info.driven_by)
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
            set_module_attribute(module, "btc.order", order)
            for info in view.groups.values():  # a group's output is spikes unless it is the readout
                info.op.attributes["btc.binary"] = make_attribute("bool", not info.readout)
            for op in module.body.operations:
                if op.operation.name == "btc.input":
                    op.operation.attributes["btc.binary"] = make_attribute("bool", InputOp(op).binary)

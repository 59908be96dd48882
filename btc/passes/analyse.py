"""btc-analyse: reads verified model ops; annotates the module with the step order of the groups
and which presynaptic signals are binary spike trains.

Annotations (later passes read them): module `btc.order` = [group names], and on every
`btc.input`/`btc.group`/`btc.readout`: `btc.binary`.
"""
from __future__ import annotations

from dataclasses import dataclass

from iree.compiler import ir

from btc.dialect import InputOp, make_attribute, set_module_attribute
from btc.errors import BtcError
from btc.passes._view import ModelView

__all__ = ["AnalysePass", "step_order", "emits_spikes"]


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


def emits_spikes(info) -> bool:
    """Whether a group's output is binary: its spike region yields a value that is 0 or 1 by
    construction (an AlignPre synapse group yields its synaptic state, a readout has no spike region)."""
    if info.readout:
        return False
    block = info.op.regions[1].blocks[0]
    return _zero_or_one(list(block.operations)[-1].operands[0])


def _zero_or_one(value) -> bool:
    """A btc.spike; a constant 0 or 1; stop_gradient of, select between, or product of such values
    (a refractory neuron selects 0 or its spike)."""
    if isinstance(value.owner, ir.Block):
        return False
    op = value.owner.operation
    if op.name == "btc.spike":
        return True
    if op.name == "arith.constant":
        return isinstance(op.attributes["value"], ir.FloatAttr) and op.attributes["value"].value in (0.0, 1.0)
    if op.name in ("btc.stop_gradient", "arith.mulf"):
        return all(_zero_or_one(v) for v in op.operands)
    if op.name == "arith.select":
        return all(_zero_or_one(v) for v in list(op.operands)[1:])
    return False


@dataclass(frozen=True)
class AnalysePass:
    name = "btc-analyse"

    def run(self, module) -> None:
        view = ModelView(module)
        order = step_order(view)
        with module.context:
            set_module_attribute(module, "btc.order", order)
            for info in view.groups.values():
                info.op.attributes["btc.binary"] = make_attribute("bool", emits_spikes(info))
            for op in module.body.operations:
                if op.operation.name == "btc.input":
                    op.operation.attributes["btc.binary"] = make_attribute("bool", InputOp(op).binary)

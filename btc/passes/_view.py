"""A read-only Python view of a btc module's model ops, shared by the passes.

Passes communicate only through the IR; this module reads the IR (ops and the attributes earlier
passes attached) into small records so each pass does not re-walk attributes by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

from iree.compiler import ir

from btc.dialect import attrs_of, btc_ops

__all__ = ["ModelView", "GroupInfo", "ProjectionInfo", "TraceInfo", "source_key"]


def source_key(pre: str, delay: int) -> str:
    """A distinct presynaptic signal: an input, or a group's spikes of this (0) or the last (1) step."""
    return f"{pre}@{delay}"


@dataclass(frozen=True)
class GroupInfo:
    name: str
    size: int
    states: tuple[str, ...]
    init: tuple[float, ...]
    readout: bool
    op: object

    @property
    def num_states(self) -> int:
        return len(self.states)


@dataclass(frozen=True)
class ProjectionInfo:
    name: str
    pre: str
    post: str
    recurrent: bool
    bias: bool

    @property
    def source(self) -> str:
        return source_key(self.pre, 1 if self.recurrent else 0)


@dataclass(frozen=True)
class TraceInfo:
    name: str
    kind: str
    of: str
    delay: int
    size: int
    num_states: int
    decay: float


class ModelView:
    def __init__(self, module: ir.Module):
        self.module = module
        self.inputs: dict[str, dict] = {}
        self.groups: dict[str, GroupInfo] = {}
        self.projections: dict[str, ProjectionInfo] = {}
        self.traces: dict[str, TraceInfo] = {}
        self.derivatives: dict[str, object] = {}
        self.schedule = None
        self.loss: dict | None = None
        for op in btc_ops(module):
            a = attrs_of(op)
            if op.name == "btc.input":
                self.inputs[a["sym_name"]] = a
            elif op.name in ("btc.group", "btc.readout"):
                self.groups[a["sym_name"]] = GroupInfo(a["sym_name"], a["size"], tuple(a["states"]),
                                                       tuple(a["init"]), op.name == "btc.readout", op)
            elif op.name == "btc.projection":
                self.projections[a["sym_name"]] = ProjectionInfo(a["sym_name"], a["pre"], a["post"],
                                                                 a["recurrent"], a["bias"])
            elif op.name == "btc.loss":
                self.loss = a
            elif op.name == "btc.derivatives":
                self.derivatives[a["group"]] = op
            elif op.name == "btc.trace":
                self.traces[a["sym_name"]] = TraceInfo(a["sym_name"], a["kind"], a["of"], a["delay"],
                                                       a["size"], a["num_states"], a["decay"])
            elif op.name == "btc.schedule":
                self.schedule = op
        attrs = module.operation.attributes
        self.batch = ir.IntegerAttr(attrs["btc.batch"]).value
        self.chunk = ir.IntegerAttr(attrs["btc.chunk"]).value
        self.order: list[str] = ([ir.StringAttr(a).value for a in ir.ArrayAttr(attrs["btc.order"])]
                                 if "btc.order" in attrs else list(self.groups))

    def size(self, name: str) -> int:
        return self.inputs[name]["size"] if name in self.inputs else self.groups[name].size

    def into(self, group: str) -> list[ProjectionInfo]:
        return [p for p in self.projections.values() if p.post == group]

    def out_of(self, group: str, recurrent: bool) -> list[ProjectionInfo]:
        return [p for p in self.projections.values() if p.pre == group and p.recurrent == recurrent]

    def sources(self) -> list[str]:
        """Distinct presynaptic signals, in first-use order."""
        seen: list[str] = []
        for p in self.projections.values():
            if p.source not in seen:
                seen.append(p.source)
        return seen

    def spiking(self) -> list[str]:
        return [g for g in self.order if not self.groups[g].readout]

    def biased(self, group: str) -> list[ProjectionInfo]:
        return [p for p in self.into(group) if p.bias]

    def readout(self) -> GroupInfo:
        return self.groups[self.loss["readout"]]

    def params(self) -> list[tuple[str, tuple[int, ...]]]:
        """(parameter name, shape) for every trainable tensor, in a fixed order."""
        out = []
        for p in self.projections.values():
            out.append((f"{p.name}.W", (self.size(p.pre), self.size(p.post))))
            if p.bias:
                out.append((f"{p.name}.b", (self.size(p.post),)))
        return out

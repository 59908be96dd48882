"""A read-only Python view of a btc module's model ops, shared by the passes.

Passes communicate only through the IR; this module reads the IR (ops, through their typed
wrappers, and the module attributes earlier passes attached) into small records.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from iree.compiler import ir

from btc.dialect import btc_ops, module_attribute, typed
from btc.dialect.ops import ANNOTATIONS
from btc.errors import BtcError

__all__ = ["ModelView", "GroupInfo", "ProjectionInfo", "TraceInfo", "source_key"]


def source_key(pre: str, lag: int) -> str:
    """A distinct presynaptic signal: an input or a group's spikes, `lag` steps ago (0: this step)."""
    return f"{pre}@{lag}"


@dataclass(frozen=True)
class GroupInfo:
    name: str
    size: int
    states: tuple[str, ...]
    init: tuple[float, ...]
    readout: bool
    op: object
    params: tuple[str, ...] = ()  # learned per-neuron parameters: extra region arguments
    ports: tuple[str, ...] = ("y",)  # input entry points, each its own region argument
    driven_by: str | None = None  # AlignPre synapse: port "y" is this input's or group's spikes, one-to-one

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
    port: str = "y"
    sign: int = 0  # Dale's law: W = sign*|W_raw|
    delay: int = 0
    propagation: str = "dense"  # "event": pre @ W sums the rows of W its active inputs select
    weight_gradient: str = "dense"  # "event": pp-prop's dW regrouped per block (pp-prop.md section 7)
    # sparse projections: W exists only at the pairs (pre_index[k], post_index[k]), sorted by (pre, post)
    pre_index: np.ndarray | None = field(default=None, compare=False)
    post_index: np.ndarray | None = field(default=None, compare=False)
    frozen: bool = False  # its W (and b) never learn: no traces, no gradient
    # shared weights (a convolution): pair k applies weight_scale * W[tie[k]]; b per bias_block posts
    tie: np.ndarray | None = field(default=None, compare=False)
    n_weights: int = 0
    weight_scale: float = 1.0
    bias_block: int = 1

    @property
    def learns(self) -> bool:
        return not self.frozen

    @property
    def sparse(self) -> bool:
        return self.pre_index is not None

    @property
    def nnz(self) -> int:
        """Its number of connected pairs (0 if dense)."""
        return int(self.pre_index.size) if self.sparse else 0

    @property
    def shared(self) -> bool:
        return self.tie is not None

    @property
    def lag(self) -> int:
        return self.delay + (1 if self.recurrent else 0)

    @property
    def source(self) -> str:
        return source_key(self.pre, self.lag)


@dataclass(frozen=True)
class TraceInfo:
    name: str
    kind: str
    of: str
    delay: int
    size: int
    num_states: int
    decay: float
    rows: int = 0  # dense (D-RTRL) traces: the presynaptic size (sparse: the largest fan-in); 0 for [batch, size]
    param: str = ""  # elem traces: the learned parameter
    correction: bool = False  # post traces: divide by 1 - decay^(k+1), k = steps since reset
    port: str = "y"  # post and bias traces: the entry point whose Df drives them

    def shape(self, batch: int) -> tuple[int, ...]:
        """One state's tensor shape; the trace holds num_states of them."""
        return (batch, self.rows, self.size) if self.rows else (batch, self.size)

    def bytes(self, batch: int) -> int:
        n = 4 * self.num_states
        for d in self.shape(batch):
            n *= d
        return n


class ModelView:
    def __init__(self, module: ir.Module):
        self.module = module
        self.inputs: dict[str, dict] = {}
        self.groups: dict[str, GroupInfo] = {}
        self.projections: dict[str, ProjectionInfo] = {}
        self.projection_ops: dict[str, object] = {}  # for passes that annotate a projection
        self.traces: dict[str, TraceInfo] = {}
        self.derivatives: dict[str, object] = {}
        self.schedule = None
        self.loss: dict | None = None
        for op in btc_ops(module):
            w = typed(op)
            if op.name == "btc.input":
                self.inputs[w.sym_name] = {"sym_name": w.sym_name, "size": w.size, "binary": w.binary, "op": op}
            elif op.name == "btc.group":
                self.groups[w.sym_name] = GroupInfo(w.sym_name, w.size, w.states, w.init, False, op, w.params,
                                                    w.ports, w.driven_by)
            elif op.name == "btc.readout":
                self.groups[w.sym_name] = GroupInfo(w.sym_name, w.size, w.states, w.init, True, op)
            elif op.name == "btc.projection":
                self.projection_ops[w.sym_name] = op
                self.projections[w.sym_name] = ProjectionInfo(w.sym_name, w.pre, w.post, w.recurrent, w.bias,
                                                              w.port, w.sign, w.delay, w.propagation,
                                                              w.weight_gradient, w.pre_index, w.post_index,
                                                              w.frozen, w.tie, w.n_weights, w.weight_scale,
                                                              w.bias_block)
            elif op.name == "btc.loss":
                self.loss = {"kind": w.kind, "readout": w.readout}
            elif op.name == "btc.derivatives":
                self.derivatives[w.group] = op
            elif op.name == "btc.trace":
                self.traces[w.sym_name] = TraceInfo(w.sym_name, w.kind, w.of, w.delay, w.size, w.num_states,
                                                    w.decay, w.rows, w.param, w.correction, w.port)
            elif op.name == "btc.schedule":
                self.schedule = op
        self.batch = module_attribute(module, "btc.batch")
        self.chunk = module_attribute(module, "btc.chunk")
        self.event_block = module_attribute(module, "btc.event_block")
        order = module_attribute(module, "btc.order")
        self.order: list[str] = list(order) if order is not None else list(self.groups)

    def size(self, name: str) -> int:
        return self.inputs[name]["size"] if name in self.inputs else self.groups[name].size

    def binary(self, pre: str) -> bool:
        """Whether a presynaptic signal is a spike train (0/1), as btc-analyse found it."""
        if pre in self.inputs:
            return bool(self.inputs[pre]["binary"])
        attrs = self.source_op(pre).attributes
        if "btc.binary" not in attrs:
            raise BtcError(f"group {pre!r} has no btc.binary annotation: run btc-analyse first")
        return bool(attrs["btc.binary"].value)

    def source_op(self, pre: str):
        return self.inputs[pre]["op"] if pre in self.inputs else self.groups[pre].op

    def activity_of(self, pre: str) -> float:
        """The expected fraction of `pre`'s entries active per step, as btc-plan-events planned it."""
        attrs = self.source_op(pre).attributes
        return float(attrs["btc.activity"].value) if "btc.activity" in attrs else ANNOTATIONS["btc.activity"].default

    def into(self, group: str) -> list[ProjectionInfo]:
        return [p for p in self.projections.values() if p.post == group]

    def out_of(self, group: str, lag: int) -> list[ProjectionInfo]:
        return [p for p in self.projections.values() if p.pre == group and p.lag == lag]

    def driven_by(self, pre: str) -> list[str]:
        """The AlignPre synapse groups that `pre`'s spikes drive."""
        return [g for g, info in self.groups.items() if info.driven_by == pre]

    def histories(self) -> dict[str, int]:
        """pre -> how many past steps of it some projection reads (its longest lag)."""
        out: dict[str, int] = {}
        for p in self.projections.values():
            if p.lag:
                out[p.pre] = max(out.get(p.pre, 0), p.lag)
        return out

    def sources(self) -> list[str]:
        """Distinct presynaptic signals, in first-use order."""
        seen: list[str] = []
        for p in self.projections.values():
            if p.source not in seen:
                seen.append(p.source)
        return seen

    def spiking(self) -> list[str]:
        return [g for g in self.order if not self.groups[g].readout]

    def biased(self, group: str, port: str | None = None) -> list[ProjectionInfo]:
        return [p for p in self.into(group) if p.bias and port in (None, p.port)]

    def learning(self, group: str) -> list[ProjectionInfo]:
        """The projections into `group` whose weights learn."""
        return [p for p in self.into(group) if p.learns]

    def learned_biases(self, group: str, port: str) -> list[ProjectionInfo]:
        return [p for p in self.biased(group, port) if p.learns]

    def readout(self) -> GroupInfo:
        return self.groups[self.loss["readout"]]

    def params(self) -> list[tuple[str, tuple[int, ...]]]:
        """(parameter name, shape) for every trainable tensor, in a fixed order (the frontend's
        `Network.init_params` order: projections, then learned per-neuron parameters)."""
        out = []
        for p in self.projections.values():
            n = p.n_weights if p.shared else p.nnz
            out.append((f"{p.name}.W", (n,) if p.sparse else (self.size(p.pre), self.size(p.post))))
            if p.bias:
                out.append((f"{p.name}.b", (self.size(p.post) // p.bias_block,)))
        for g in self.order:
            out += [(f"{g}.{q}", (self.groups[g].size,)) for q in self.groups[g].params]
        return out

    def dense_trace(self, projection: str) -> TraceInfo | None:
        """The D-RTRL trace of a projection, if the plan gave it one (else it learns by pp-prop)."""
        return next((t for t in self.traces.values() if t.kind == "dense" and t.of == projection), None)

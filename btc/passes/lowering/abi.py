"""The ABI record of a lowered module: its functions (argument and result names, shapes, dtypes),
its globals (role, shape, bytes), the model it was built from, the trace plan and BPTT's tape.

The lowering produces it and attaches it to the module as one structured attribute, `btc.abi`;
the driver copies it into the artifact's manifest and the runtime reads it from there. Nothing
else computes function signatures.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from iree.compiler import ir

from btc.algorithm import Algorithm
from btc.dialect import attribute_value
from btc.dialect.typed import typed
from btc.errors import BtcError
from btc.passes._view import ModelView
from btc.passes.lowering.bptt import tape_entries
from btc.passes.lowering.context import Lowering
from btc.passes.plan_events import projection_costs

__all__ = ["Abi", "abi_of", "trace_plan", "ABI_ATTR", "PARAMETER_SCOPE"]

ABI_ATTR = "btc.abi"
# every mutable global starts from #flow.parameter.named<"model"::"<global>">: the scope an archive is
# provided under (`iree-run-module --parameters=model=params.irpa`)
PARAMETER_SCOPE = "model"


@dataclass(frozen=True)
class Abi:
    algorithm: str
    batch: int
    chunk: int
    loss: str
    readout: str
    num_classes: int
    # ordered collections are lists of records with a "name": an MLIR dictionary sorts its keys
    inputs: list  # [{name, size, binary}], the order of every function's x_<input> arguments
    groups: list  # [{name, size, model, states}], in step order
    projections: list  # [{name, pre, post, port, sign, delay, recurrent, bias, connectivity, ...}]
    params: list  # [{name, shape, dtype}], the order of get_params/set_params
    functions: list  # [{name, inputs: [{name, shape, dtype}], outputs: [...]}]
    layout: list  # [{global, role, name, shape, bytes}]
    trace_plan: dict
    tape: list  # [{name, shape, bytes}] of one BPTT step (empty for online algorithms)
    bptt_tape_bytes_per_step: int  # what BPTT would keep per step, for every algorithm
    step_macs: int  # multiply-accumulates of one step's projections
    update_every: int  # 0: the runtime applies the update
    steps_per_iteration: int  # time steps per iteration of train_chunk's loop (a regrouped gradient's block)
    parameter_scope: str  # the scope of the named parameters the globals start from

    @property
    def memory_bytes(self) -> dict[str, int]:
        return {role: sum(e["bytes"] for e in self.layout if e["role"] == role)
                for role in sorted({e["role"] for e in self.layout})}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Abi":
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise BtcError(f"ABI record is missing {missing}")
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    def attach(self, module: ir.Module) -> None:
        with module.context, ir.Location.unknown():
            module.operation.attributes[ABI_ATTR] = _to_attr(self.to_dict())

    @classmethod
    def from_module(cls, module: ir.Module) -> "Abi":
        if ABI_ATTR not in module.operation.attributes:
            raise BtcError(f"the module has no {ABI_ATTR} attribute; run btc-lower-to-linalg first")
        return cls.from_dict(attribute_value(module.operation.attributes[ABI_ATTR]))


def trace_plan(view: ModelView, online: bool) -> dict:
    """The planned traces and each projection's algorithm, as the manifest records them."""
    B = view.batch
    return {
        "projections": {p: "frozen" if view.projections[p].frozen else (
            Algorithm.BPTT if not online else Algorithm.D_RTRL if view.dense_trace(p) else Algorithm.PP_PROP).value
            for p in view.projections},
        "traces": [{"name": t.name, "kind": t.kind, "of": t.of, "states": t.num_states,
                    "shape": [t.num_states, *t.shape(B)], "bytes": t.bytes(B), "decay": t.decay,
                    **({"bias_correction": t.correction} if t.kind == "post" else {})}
                   for t in view.traces.values()],
        "trace_bytes": sum(t.bytes(B) for t in view.traces.values()),
    }


def abi_of(lw: Lowering) -> Abi:
    v = lw.v
    tape = [{"name": n, "shape": list(s), "bytes": 4 * s[0] * s[1]} for n, s in tape_entries(v)]
    groups = []
    for g in v.order:
        info = v.groups[g]
        model = "readout" if info.readout else typed(info.op).model
        groups.append({"name": g, "size": info.size, "model": model, "states": list(info.states)})
    return Abi(
        algorithm=lw.algorithm.value, batch=lw.B, chunk=lw.K, loss=v.loss["kind"], readout=v.readout().name,
        num_classes=lw.C,
        inputs=[{"name": n, "size": i["size"], "binary": bool(i["binary"])} for n, i in v.inputs.items()],
        groups=groups,
        projections=[{"name": p.name, "pre": p.pre, "post": p.post, "port": p.port, "sign": p.sign,
                      "delay": p.delay, "recurrent": p.recurrent, "bias": p.bias, "trainable": p.learns,
                      **_work(lw, p)}
                     for p in v.projections.values()],
        params=[{"name": n, "shape": list(s), "dtype": "float32", "trainable": n not in lw.frozen_params}
                for n, s in lw.params],
        functions=[{"name": f.name, "inputs": [a.record() for a in f.inputs],
                    "outputs": [a.record() for a in f.outputs]} for f in lw.functions],
        layout=lw.layout + lw.table_layout(), trace_plan=trace_plan(v, lw.algorithm.online),
        tape=tape if not lw.algorithm.online else [],
        bptt_tape_bytes_per_step=sum(e["bytes"] for e in tape), step_macs=step_macs(v),
        update_every=lw.options.update_every, steps_per_iteration=lw.unroll,
        parameter_scope=PARAMETER_SCOPE)


def _work(lw: Lowering, p) -> dict:
    """How the step computes a projection (btc-plan-events' choice) and the multiply-accumulates
    per step its cost model expects for that choice, beside the dense ones."""
    v = lw.v
    layout = lw.sparse.get(p.name)
    costs = projection_costs(lw.B, v.size(p.pre), v.size(p.post), v.activity_of(p.pre), lw.unroll,
                             layout.slots() if layout else 0, layout.push_width if layout else 0)
    learns = lw.algorithm.online and p.learns
    gradient = p.weight_gradient if learns else ("bptt" if p.learns else "frozen")
    return {"connectivity": layout.record() if layout else {"layout": "dense"}, "binary": v.binary(p.pre),
            "activity": v.activity_of(p.pre), "propagation": p.propagation, "weight_gradient": gradient,
            "expected_macs_per_step": {
                "propagation": int(costs[f"propagation_{p.propagation}"]),
                "weight_gradient": int(costs[f"gradient_{p.weight_gradient}"]) if learns else 0,
                "dense": int(costs["propagation_dense"] + (costs["gradient_dense"] if learns else 0))}}


def step_macs(view: ModelView) -> int:
    """Multiply-accumulates of one step's products (a sparse projection: one per pair)."""
    return sum(view.batch * (p.nnz if p.sparse else view.size(p.pre) * view.size(p.post))
               for p in view.projections.values())


# ---- a Python record as a typed MLIR attribute (dict, list, str, int, float, bool, None); read back
# by btc.dialect.attribute_value
def _to_attr(value) -> ir.Attribute:
    if value is None:
        return ir.UnitAttr.get()
    if isinstance(value, bool):
        return ir.BoolAttr.get(value)
    if isinstance(value, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)
    if isinstance(value, float):
        return ir.FloatAttr.get(ir.F64Type.get(), value)
    if isinstance(value, str):
        return ir.StringAttr.get(value)
    if isinstance(value, (list, tuple)):
        return ir.ArrayAttr.get([_to_attr(x) for x in value])
    if isinstance(value, dict):
        return ir.DictAttr.get({str(k): _to_attr(x) for k, x in value.items()})
    raise TypeError(f"cannot record {type(value).__name__} in the ABI attribute")

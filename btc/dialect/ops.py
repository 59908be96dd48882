"""Every `btc` op, declared once: operands, results, attributes, regions and an optional verifier.

The verifier (`verify_op`), the IRDL description (`irdl.py`) and the passes all read `OPS`.
btc ops are unregistered in IREE's MLIR context (IRDL cannot be loaded from Python there), so
this table is the dialect.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Attr", "OpDecl", "OPS", "SURROGATE_KINDS", "TRACE_KINDS", "SCHEDULE_OPS"]

SURROGATE_KINDS = ("sigmoid", "fast_sigmoid", "arctan", "triangle")
TRACE_KINDS = ("pre", "post", "bias", "dense", "elem")
ALGORITHMS = ("pp-prop", "d-rtrl", "hybrid", "bptt")
LOSS_KINDS = ("cross_entropy", "mse")


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str  # str | int | float | bool | symbol | array
    choices: tuple = ()
    optional: bool = False


@dataclass(frozen=True)
class OpDecl:
    name: str
    summary: str
    attrs: tuple[Attr, ...] = ()
    operands: int | None = 0  # None: variadic
    results: int = 0
    regions: tuple[str, ...] = ()
    where: str = "module"  # where it may appear: module | region | schedule, or several joined by "|"
    verify: Callable | None = field(default=None, compare=False)


def _states_match_regions(op, attrs) -> str | None:
    """A group's dynamics take (states..., input, learned params...) and yield states; its spike
    takes (states..., learned params...)."""
    n, p, k = len(attrs["states"]), len(attrs.get("params", [])), len(attrs.get("ports", ["y"]))
    if len(attrs["init"]) != n:
        return f"has {n} states but {len(attrs['init'])} initial values"
    shapes = {"dynamics": (n + k + p, n), "spike": (n + p, 1)}
    for region, name in zip(op.regions, ("dynamics", "spike")):
        block = region.blocks[0]
        args, yielded = shapes[name]
        if len(block.arguments) != args:
            return (f"region {name} takes {len(block.arguments)} arguments, expected {args} "
                    f"({n} states{f' + {k} input ports' if name == 'dynamics' else ''} + {p} learned parameters)")
        last = list(block.operations)[-1]
        if last.name != "btc.yield" or len(last.operands) != yielded:
            return f"region {name} must end in btc.yield of {yielded} values"
    return None


def _positive_size(op, attrs) -> str | None:
    return None if attrs["size"] > 0 else f"size must be positive, got {attrs['size']}"


def _group_verify(op, attrs):
    return _positive_size(op, attrs) or _states_match_regions(op, attrs)


_SYM = Attr("sym_name", "str")
_SIZE = Attr("size", "int")

OPS: dict[str, OpDecl] = {d.name: d for d in [
    # ---- the model, as the frontend emits it
    OpDecl("btc.input", "an external input of `size` channels per batch row",
           (_SYM, _SIZE, Attr("binary", "bool")), verify=_positive_size),
    OpDecl("btc.group", "a neuron group: elementwise internal dynamics and spike function",
           (_SYM, _SIZE, Attr("states", "array"), Attr("init", "array"), Attr("model", "str"),
            Attr("params", "array", optional=True), Attr("ports", "array", optional=True),
            Attr("driver", "symbol", optional=True)),
           regions=("dynamics", "spike"), verify=_group_verify),
    OpDecl("btc.readout", "a leaky-integrator readout group (no spikes)",
           (_SYM, _SIZE, Attr("states", "array"), Attr("init", "array"), Attr("tau", "float")),
           regions=("dynamics",), verify=_positive_size),
    OpDecl("btc.projection", "dense interaction y_post[port] += pre(t - lag) @ W (+ b), W = sign*|W| if "
           "sign != 0; lag = delay (+1 if recurrent)",
           (_SYM, Attr("pre", "symbol"), Attr("post", "symbol"), Attr("recurrent", "bool"),
            Attr("bias", "bool"), Attr("init_scale", "float"), Attr("port", "str", optional=True),
            Attr("sign", "int", optional=True), Attr("delay", "int", optional=True))),
    OpDecl("btc.loss", "per-step loss on a readout, weighted by the step mask",
           (Attr("kind", "str", LOSS_KINDS), Attr("readout", "symbol"))),
    # ---- scalar ops inside elementwise regions
    OpDecl("btc.spike", "Heaviside step H(x) with a surrogate derivative",
           (Attr("surrogate", "str", SURROGATE_KINDS), Attr("slope", "float")),
           operands=1, results=1, where="region"),
    OpDecl("btc.stop_gradient", "identity whose derivative is zero (detached reset)",
           operands=1, results=1, where="region"),
    OpDecl("btc.yield", "terminates an elementwise region or a schedule", operands=None, where="region|schedule"),
    # ---- produced by btc-derive-jacobians
    OpDecl("btc.derivatives", "a group's step with its Jacobian blocks D (SxS), Df (S), Dp (S per learned "
           "parameter) and its spike with ds/dh (S), ds/dp (1 per learned parameter)",
           (Attr("group", "symbol"), Attr("num_states", "int")), regions=("step", "spike")),
    # ---- produced by btc-plan-traces
    OpDecl("btc.trace", "an online trace buffer: num_states tensors of [batch, rows, size] (dense: "
           "D-RTRL's per-weight trace of projection `of`) or [batch, size] (every other kind)",
           (_SYM, Attr("kind", "str", TRACE_KINDS), Attr("of", "symbol"), Attr("delay", "int"),
            _SIZE, Attr("num_states", "int"), Attr("decay", "float"), Attr("rows", "int", optional=True),
            Attr("param", "str", optional=True), Attr("correction", "bool", optional=True),
            Attr("port", "str", optional=True))),
    # ---- produced by btc-rewrite-online: one step of the training loop, in order
    OpDecl("btc.schedule", "the per-step update ops of one learning algorithm",
           (Attr("algorithm", "str", ALGORITHMS),), regions=("step",)),
    OpDecl("btc.update_pre_trace", "eps_x = alpha*eps_x + x", (Attr("trace", "symbol"),), where="schedule"),
    OpDecl("btc.update_post_trace", "eps_f = alpha*D eps_f + (1-alpha)*Df",
           (Attr("trace", "symbol"), Attr("group", "symbol")), where="schedule"),
    OpDecl("btc.update_bias_trace", "e_b = D e_b + Df (exact, per neuron)",
           (Attr("trace", "symbol"), Attr("group", "symbol")), where="schedule"),
    OpDecl("btc.learning_signal", "delta = dL_t/dh_t through the within-step graph",
           (Attr("group", "symbol"),), where="schedule"),
    OpDecl("btc.accumulate_grad", "grad W += eps_x^T (sum_s eps_f*delta)",
           (Attr("projection", "symbol"), Attr("pre_trace", "symbol"), Attr("post_trace", "symbol")),
           where="schedule"),
    OpDecl("btc.accumulate_bias_grad", "grad b += sum_b sum_s e_b*delta",
           (Attr("projection", "symbol"), Attr("trace", "symbol")), where="schedule"),
    OpDecl("btc.update_dense_trace", "e[s] = sum_s' D[s][s'] e[s'] + Df[s] (outer) x (D-RTRL, per weight)",
           (Attr("trace", "symbol"), Attr("projection", "symbol")), where="schedule"),
    OpDecl("btc.accumulate_dense_grad", "grad W[i,o] += sum_b sum_s e[s][b,i,o]*delta[s][b,o]",
           (Attr("projection", "symbol"), Attr("trace", "symbol")), where="schedule"),
    OpDecl("btc.update_elem_trace", "e_p = D e_p + dh/dp (exact trace of a learned per-neuron parameter)",
           (Attr("trace", "symbol"), Attr("group", "symbol")), where="schedule"),
    OpDecl("btc.accumulate_elem_grad", "grad p += sum_b (sum_s e_p*delta + dL/ds * ds/dp)",
           (Attr("trace", "symbol"), Attr("group", "symbol")), where="schedule"),
    OpDecl("btc.bptt_backward", "after the forward loop, the exact reverse sweep over the stored steps",
           (), where="schedule"),
]}

SCHEDULE_OPS = tuple(n for n, d in OPS.items() if d.where == "schedule")

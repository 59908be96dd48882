"""Every `btc` op, declared once: operands, results, attributes, regions and an optional verifier.

The verifier (`verify_op`), the IRDL description (`irdl.py`) and the typed builders and accessors
(`typed.py`: `TraceOp.build(...)`, `TraceOp(op).decay`) are generated from `OPS`.
btc ops are unregistered in IREE's MLIR context (IRDL cannot be loaded from Python there), so
this table is the dialect.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from btc.algorithm import Algorithm
from btc.dialect.surrogates import SURROGATE_RULES

__all__ = ["Attr", "OpDecl", "OPS", "SURROGATE_KINDS", "TRACE_KINDS", "SCHEDULE_OPS", "ATTR_KINDS", "MODULE_ATTRS",
           "ANNOTATIONS", "TILES_ATTR", "VECTOR_TILES_ATTR"]

SURROGATE_KINDS = tuple(SURROGATE_RULES)
TRACE_KINDS = ("pre", "post", "bias", "dense", "elem")
ALGORITHMS = tuple(a.value for a in Algorithm)
LOSS_KINDS = ("cross_entropy", "mse")
# a projection's propagation or weight gradient; "sparse": over its connected pairs (sparse projections);
# "sparse-event": over the pairs of its active inputs
EVENT_CHOICES = ("dense", "event", "sparse", "sparse-event")
# an attribute's kind: str -> StringAttr, int -> i64, float -> f64, f32 -> f32 (array elements),
# bool -> BoolAttr, symbol -> FlatSymbolRefAttr, array -> ArrayAttr of `element`, indices -> a 1-D
# dense i32 elements attribute (numpy int32 arrays; printed in hex when large)
ATTR_KINDS = ("str", "int", "float", "f32", "bool", "symbol", "array", "indices")


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str  # one of ATTR_KINDS
    choices: tuple = ()
    optional: bool = False
    default: object = None  # what an absent optional attribute means
    element: str | None = None  # arrays: the kind of every element

    def __post_init__(self):
        assert self.kind in ATTR_KINDS and (self.kind == "array") == (self.element is not None), self


@dataclass(frozen=True)
class OpDecl:
    name: str
    summary: str
    attrs: tuple[Attr, ...] = ()
    operands: int | None = 0  # None: variadic
    results: int = 0
    regions: tuple[str, ...] = ()
    where: str = "module"  # where it may appear: module | region | schedule, or several joined by "|"
    verify: Callable | None = field(default=None, compare=False)  # (typed op) -> problem or None


def _states_match_regions(group) -> str | None:
    """A group's dynamics take (states..., input, learned params...) and yield states; its spike
    takes (states..., learned params...)."""
    n, p, k = len(group.states), len(group.params), len(group.ports)
    if len(group.init) != n:
        return f"has {n} states but {len(group.init)} initial values"
    shapes = {"dynamics": (n + k + p, n), "spike": (n + p, 1)}
    for region, name in zip(group.regions, ("dynamics", "spike")):
        block = region.blocks[0]
        args, yielded = shapes[name]
        if len(block.arguments) != args:
            return (f"region {name} takes {len(block.arguments)} arguments, expected {args} "
                    f"({n} states{f' + {k} input ports' if name == 'dynamics' else ''} + {p} learned parameters)")
        last = list(block.operations)[-1]
        if last.name != "btc.yield" or len(last.operands) != yielded:
            return f"region {name} must end in btc.yield of {yielded} values"
    return None


def _positive_size(op) -> str | None:
    return None if op.size > 0 else f"size must be positive, got {op.size}"


def _group_verify(group) -> str | None:
    return _positive_size(group) or _states_match_regions(group)


def _projection_verify(p) -> str | None:
    pre, post = p.pre_index, p.post_index
    if (pre is None) != (post is None):
        return "a sparse projection needs both pre_index and post_index"
    if pre is not None and (pre.size != post.size or pre.size == 0):
        return f"pre_index and post_index must be non-empty and of one length, got {pre.size} and {post.size}"
    if p.tie is not None:  # shared weights (a convolution): pair k applies weight_scale * W[tie[k]]
        if pre is None or p.tie.size != pre.size:
            return f"tie needs one entry per pair of pre_index/post_index, got {p.tie.size}"
        if p.n_weights < 1 or p.tie.min() < 0 or p.tie.max() >= p.n_weights:
            return f"tie must index W's n_weights = {p.n_weights} entries"
    elif p.n_weights or p.bias_block != 1 or p.weight_scale != 1.0:
        return "n_weights, bias_block and weight_scale belong to a projection with shared weights (tie)"
    if p.bias_block < 1:
        return f"bias_block must be positive, got {p.bias_block}"
    for name in ("propagation", "weight_gradient"):  # "dense" until btc-plan-events; then "sparse*" iff sparse
        value = getattr(p, name)
        if value != "dense" and value.startswith("sparse") != (pre is not None):
            return f"{name} {value!r} does not fit a {'sparse' if pre is not None else 'dense'} projection"
    return None


_SYM = Attr("sym_name", "str")
_SIZE = Attr("size", "int")
_STATES = Attr("states", "array", element="str")
_INIT = Attr("init", "array", element="f32")

OPS: dict[str, OpDecl] = {d.name: d for d in [
    # ---- the model, as the frontend emits it
    OpDecl("btc.input", "an external input of `size` channels per batch row",
           (_SYM, _SIZE, Attr("binary", "bool")), verify=_positive_size),
    OpDecl("btc.group", "a neuron group: elementwise internal dynamics and spike function",
           (_SYM, _SIZE, _STATES, _INIT, Attr("model", "str"),
            Attr("params", "array", optional=True, default=(), element="str"),
            Attr("ports", "array", optional=True, default=("y",), element="str"),
            Attr("driven_by", "symbol", optional=True)),
           regions=("dynamics", "spike"), verify=_group_verify),
    OpDecl("btc.readout", "a leaky-integrator readout group (no spikes)",
           (_SYM, _SIZE, _STATES, _INIT),
           regions=("dynamics",), verify=_positive_size),
    OpDecl("btc.projection", "interaction y_post[port] += pre(t - lag) @ W (+ b), W = sign*|W| if "
           "sign != 0; lag = delay (+1 if recurrent); W dense, or only at the pairs (pre_index, post_index), "
           "possibly shared between them (tie)",
           (_SYM, Attr("pre", "symbol"), Attr("post", "symbol"), Attr("recurrent", "bool"),
            Attr("bias", "bool"), Attr("port", "str", optional=True, default="y"),
            Attr("sign", "int", optional=True, default=0), Attr("delay", "int", optional=True, default=0),
            # frozen: W (and b) are parameters the training never changes (no traces, no gradient)
            Attr("frozen", "bool", optional=True, default=False),
            # set by btc-plan-events: how the step computes pre @ W, and how pp-prop accumulates dW
            Attr("propagation", "str", EVENT_CHOICES, optional=True, default="dense"),
            Attr("weight_gradient", "str", EVENT_CHOICES, optional=True, default="dense"),
            # a sparse projection: W exists only at the pairs (pre_index[k], post_index[k]), k < nnz
            Attr("pre_index", "indices", optional=True), Attr("post_index", "indices", optional=True),
            # shared weights (a convolution): pair k applies weight_scale * W[tie[k]], W has n_weights
            # entries; b has one entry per bias_block consecutive postsynaptic neurons
            Attr("tie", "indices", optional=True), Attr("n_weights", "int", optional=True, default=0),
            Attr("weight_scale", "float", optional=True, default=1.0),
            Attr("bias_block", "int", optional=True, default=1)),
           verify=_projection_verify),
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
           "D-RTRL's per-weight trace of projection `of`; rows = its presynaptic size, or for a sparse projection "
           "its largest fan-in: one trace per pull slot) or [batch, size] (every other kind)",
           (_SYM, Attr("kind", "str", TRACE_KINDS), Attr("of", "symbol"), Attr("delay", "int"),
            _SIZE, Attr("num_states", "int"), Attr("decay", "float"), Attr("rows", "int", optional=True, default=0),
            Attr("param", "str", optional=True, default=""), Attr("correction", "bool", optional=True, default=False),
            Attr("port", "str", optional=True, default="y"))),
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

# attributes of the module itself: set by the frontend (batch, chunk) and by btc-analyse (order);
# read and written through btc.dialect.typed.set_module_attribute / module_attribute
MODULE_ATTRS: dict[str, Attr] = {a.name: a for a in [
    Attr("btc.batch", "int"),  # the compiled batch size B
    Attr("btc.chunk", "int"),  # the compiled time steps per train_chunk/infer_chunk call K
    Attr("btc.order", "array", optional=True, element="str"),  # groups in step order (btc-analyse)
    # time steps whose event-driven weight gradients are regrouped together (btc-plan-events)
    Attr("btc.event_block", "int", optional=True, default=1),
]}

# on a lowered op (upstream MLIR, no btc op left): its preferred workgroup tile, one size per loop, 0 for each
# reduction loop (left whole); a hint the backend turns into its own configuration (llvm-cpu) or drops
TILES_ATTR = "btc.tiles"
# with TILES_ATTR, optionally: the vector tile within a workgroup, one size per loop (0: not tiled)
VECTOR_TILES_ATTR = "btc.vector_tiles"

# annotations the analysis passes put on model ops, read through btc.passes._view.ModelView
ANNOTATIONS: dict[str, Attr] = {a.name: a for a in [
    Attr("btc.binary", "bool"),  # btc-analyse, on btc.input/group/readout: its output is 0 or 1
    # btc-plan-events, on btc.input/group: the expected fraction of its entries active per step
    Attr("btc.activity", "float", optional=True, default=0.05),
]}

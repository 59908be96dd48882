"""The functions that set and read the module's globals from the host: reset_state, zero_grads,
reset_optimizer, get_params, get_grads, set_params, get_grad_sums, set_grad_sums, get_optimizer,
set_optimizer (and the constant setter BPTT reuses).
"""
from __future__ import annotations

from btc.passes.lowering.bodies import constant_like_body
from btc.passes.lowering.context import Arg, Lowering
from btc.passes.lowering.optimizer import raw_grads
from btc.passes.lowering.text import Fn

__all__ = ["setter", "reset_state", "params_io"]


def setter(lw: Lowering, name: str, entries: list[tuple[str, float]]) -> None:
    """Export `name`(), which sets each global to a constant. The constant is computed from the
    global's own buffer (max(x*0, 0) + c, which no canonicalization folds): IREE 3.13 gives one
    buffer to globals stored from the same (CSE'd) fill, and an in-place update of one then changes
    them all."""
    fn = Fn()
    for sym, value in entries:
        shape = lw.shape_of(sym)
        lw.store(fn, fn.map([lw.load(fn, sym)], [shape], shape, 1, constant_like_body(value))[0], sym)
    lw.export(name, [], [], fn, [])


def reset_state(lw: Lowering) -> None:
    """States, traces, histories and the step counter to their initial values (the layout's `init`)."""
    init = {e["global"]: e["init"] for e in lw.layout}
    setter(lw, "reset_state", [(s, init[s]) for s in lw.state_syms() + lw.trace_syms()])


def params_io(lw: Lowering) -> None:
    """get_params, get_grads (by the stored parameters), set_params, get/set_grad_sums (the raw accumulators),
    the optimizer's state, reset_optimizer, zero_grads."""
    params = [Arg(name, tuple(shape), local=f"a{i}") for i, (name, shape) in enumerate(lw.params)]
    n = len(params)
    fn = Fn()
    lw.export("get_params", [], params, fn, [lw.load(fn, f"p{i}") for i in range(n)])
    fn = Fn()
    grads = raw_grads(lw, fn, {k: lw.load(fn, k) for i in range(n) for k in (f"p{i}", f"g{i}")})
    lw.export("get_grads", [], params, fn, grads)
    fn = Fn()
    for i, arg in enumerate(params):
        lw.store(fn, arg.ssa, f"p{i}")
    lw.export("set_params", params, [], fn, [])
    # the accumulators themselves (by the applied weights, before any chain rule): data-parallel ranks sum
    # them, linear as they are, and every rank then takes the same optimizer step
    fn = Fn()
    lw.export("get_grad_sums", [], params, fn, [lw.load(fn, f"g{i}") for i in range(n)])
    fn = Fn()
    for i, arg in enumerate(params):
        lw.store(fn, arg.ssa, f"g{i}")
    lw.export("set_grad_sums", params, [], fn, [])
    moments = [e for e in lw.layout if e["role"] in ("adam_m", "adam_v", "optimizer")]
    setter(lw, "reset_optimizer", [(e["global"], 0.0) for e in moments])
    # the optimizer's state (Adam moments, step count), so a checkpoint resumes training exactly; not the
    # steps since an in-module update: gradients are not saved, so a loaded model starts a new interval
    moments = [e for e in moments if e["global"] != "t_upd"]
    state = [Arg(f"{e['role']}.{e['name']}", tuple(e["shape"]), local=f"o{j}") for j, e in enumerate(moments)]
    fn = Fn()
    lw.export("get_optimizer", [], state, fn, [lw.load(fn, e["global"]) for e in moments])
    fn = Fn()
    for arg, e in zip(state, moments):
        lw.store(fn, arg.ssa, e["global"])
    lw.export("set_optimizer", state, [], fn, [])
    if lw.options.update_every:
        setter(lw, "reset_update_interval", [("t_upd", 0.0)])
    setter(lw, "zero_grads", [(f"g{i}", 0.0) for i in range(n)])

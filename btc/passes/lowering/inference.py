"""Inference: infer_chunk (K steps in an scf.for, the readout of each), record_step (one step,
returning the readout and every group's spikes and states) and, for one rank of a partitioned network,
peek_step (the readout and spikes of the next step, storing nothing)."""
from __future__ import annotations

from btc.passes.lowering.context import Arg, Lowering
from btc.passes.lowering.forward import drives_at, forward, input_drives, next_states, time_loop, weights
from btc.passes.lowering.text import Fn, tt

__all__ = ["infer_chunk", "record_step", "peek_step"]


def infer_chunk(lw: Lowering) -> None:
    fn = Fn()
    fn.chunk = lw.K
    B, C, K = lw.B, lw.C, lw.K
    W, b = weights(lw, fn)
    drives = input_drives(lw, fn, W)
    states = lw.state_syms()
    carry = [(s, lw.load(fn, s), lw.type_of(s)) for s in states]
    carry.append(("rseq", fn.empty((K, B, C)), tt(K, B, C)))  # small: [K, B, classes]

    def step(t, cur):
        xt = lw.inputs_at(fn, t)
        st = forward(lw, fn, cur, xt, W, b, drives_at(lw, fn, drives, t))
        rseq = fn.insert_t(st.h[lw.v.readout().name][0], cur["rseq"], t, (B, C))
        return dict(cur, rseq=rseq, **next_states(lw, st, cur, xt))

    out = time_loop(lw, fn, carry, step)
    for s in states:
        lw.store(fn, out[s], s)
    lw.export("infer_chunk", lw.step_inputs(per_step=False), [Arg("readout", (K, B, C))], fn, [out["rseq"]])


def record_step(lw: Lowering) -> None:
    """One step that returns everything: readout, every group's spikes and states."""
    v, B = lw.v, lw.B
    fn = Fn()
    W, b = weights(lw, fn)
    cur = {s: lw.load(fn, s) for s in lw.state_syms()}
    xt = lw.inputs_at(fn, None)
    st = forward(lw, fn, cur, xt, W, b)
    for sym, val in next_states(lw, st, cur, xt).items():
        lw.store(fn, val, sym)
    values = [st.h[v.readout().name][0]] + [st.spk[g] for g in v.spiking()]
    outputs = [Arg("readout", (B, lw.C))] + [Arg(f"spikes.{g}", (B, v.groups[g].size)) for g in v.spiking()]
    for g in v.order:
        values += st.h[g]
        outputs += [Arg(f"state.{g}.{s}", (B, v.groups[g].size)) for s in v.groups[g].states]
    lw.export("record_step", lw.step_inputs(per_step=True), outputs, fn, values)


def peek_step(lw: Lowering) -> None:
    """The next step's readout and spikes from the stored states, which stay as they are: a rank of a
    partitioned network exchanges them before train_chunk takes the same step with the whole readout."""
    v, B = lw.v, lw.B
    fn = Fn()
    W, b = weights(lw, fn)
    cur = {s: lw.load(fn, s) for s in lw.state_syms()}
    st = forward(lw, fn, cur, lw.inputs_at(fn, None), W, b)
    values = [st.h[v.readout().name][0]] + [st.spk[g] for g in v.spiking()]
    outputs = [Arg("readout", (B, lw.C))] + [Arg(f"spikes.{g}", (B, v.groups[g].size)) for g in v.spiking()]
    lw.export("peek_step", lw.step_inputs(per_step=True), outputs, fn, values)

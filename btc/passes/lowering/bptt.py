"""Exact BPTT, one step per call: bptt_forward_step returns this step's tape (the Jacobian blocks
and presynaptic values the reverse sweep needs), which the runtime holds; bptt_begin_backward
zeroes the adjoints; bptt_backward_step(x_t, tape_t) walks back one step and accumulates gradients.

Per-step outputs are never stacked inside a loop: IREE 3.13 copies a tensor carried through scf.for
on every tensor.insert_slice (quadratic in the sequence length), so the tape lives in the runtime.
"""
from __future__ import annotations

from btc.passes._view import ModelView
from btc.passes.lowering.backward import backward
from btc.passes.lowering.bodies import dot_body, transpose_apply_body
from btc.passes.lowering.context import Arg, Lowering
from btc.passes.lowering.forward import Step, forward, next_states, source_value, weights
from btc.passes.lowering.loss import step_loss
from btc.passes.lowering.shared import bias_sums
from btc.passes.lowering.products import times_weights_t, weight_outer
from btc.passes.lowering.state_io import setter
from btc.passes.lowering.text import Fn

__all__ = ["tape_entries", "bptt_forward_step", "bptt_begin_backward", "bptt_backward_step"]


def tape_entries(view: ModelView) -> list[tuple[str, tuple]]:
    """What BPTT keeps per step, in the order bptt_forward_step returns it: (name, shape)."""
    B = view.batch
    entries = [("dLdr", (B, view.readout().size))]
    for g in view.order:
        info = view.groups[g]
        S, N = info.num_states, info.size
        names = [f"D{k}" for k in range(S * S)] + [f"Df{k}_{s}" for k in range(len(info.ports)) for s in range(S)]
        names += [f"Dp{j}_{s}" for j in range(len(info.params)) for s in range(S)]
        names += [] if info.readout else [f"dsdh{s}" for s in range(S)] + [f"dsdp{j}" for j in range(len(info.params))]
        entries += [(f"{g}.{n}", (B, N)) for n in names]
    for key in view.sources():
        pre, lag = key.split("@")
        if pre not in view.inputs or lag != "0":  # this step's input is passed to the backward step again
            entries.append((f"src.{key}", (B, view.size(pre))))
    return entries


def _tape_args(lw: Lowering) -> list[Arg]:
    return [Arg(f"tape.{name}", shape, local=f"tape{i}") for i, (name, shape) in enumerate(tape_entries(lw.v))]


def bptt_forward_step(lw: Lowering) -> None:
    fn = Fn()
    W, b = weights(lw, fn)
    cur = {s: lw.load(fn, s) for s in lw.state_syms()}
    xt = lw.inputs_at(fn, None)
    st = forward(lw, fn, cur, xt, W, b)
    r = st.h[lw.v.readout().name][0]
    target, w = lw.target_at(fn, None), lw.step_weight(fn, None)
    dLdr, loss = step_loss(lw, fn, r, target, w, fn.full((), 0.0))
    for sym, val in next_states(lw, st, cur, xt).items():
        lw.store(fn, val, sym)
    tape = {"dLdr": dLdr}
    for g in lw.v.order:
        S = lw.v.groups[g].num_states
        tape.update({f"{g}.D{k}": st.D[g][k] for k in range(S * S)})
        tape.update({f"{g}.Df{k}_{s}": st.Df[g][port][s] for k, port in enumerate(lw.v.groups[g].ports)
                     for s in range(S)})
        tape.update({f"{g}.dsdh{s}": v for s, v in enumerate(st.dsdh.get(g, []))})
        tape.update({f"{g}.Dp{j}_{s}": v for j, vs in enumerate(st.Dp[g]) for s, v in enumerate(vs)})
        tape.update({f"{g}.dsdp{j}": v for j, v in enumerate(st.dsdp.get(g, []))})
    entries = tape_entries(lw.v)
    for name, _ in entries:
        if name.startswith("src."):
            tape[name] = source_value(lw, name[4:], xt, cur, st)
    outputs = [Arg("loss", ()), Arg("readout", (lw.B, lw.C))] + _tape_args(lw)
    lw.export("bptt_forward_step", lw.step_inputs(per_step=True) + lw.target_inputs(per_step=True), outputs, fn,
              [loss, r] + [tape[name] for name, _ in entries])


def bptt_begin_backward(lw: Lowering) -> None:
    setter(lw, "bptt_begin_backward", [(sym, 0.0) for sym in lw.syms("adjoint")])


def bptt_backward_step(lw: Lowering) -> None:
    """a_h^t = within-step signal + D^{t+1,T} a_h^{t+1} (+ spike credit from later steps, which
    reach back `lag` steps through recurrent or delayed projections)."""
    v, B = lw.v, lw.B
    fn = Fn()
    W, _ = weights(lw, fn)
    args = _tape_args(lw)
    tape = {a.name[len("tape."):]: a.ssa for a in args}
    st = Step()
    for g in v.order:
        S, P = v.groups[g].num_states, len(v.groups[g].params)
        spiking = not v.groups[g].readout
        st.D[g] = [tape[f"{g}.D{k}"] for k in range(S * S)]
        st.Df[g] = {port: [tape[f"{g}.Df{k}_{s}"] for s in range(S)] for k, port in enumerate(v.groups[g].ports)}
        st.dsdh[g] = [tape[f"{g}.dsdh{s}"] for s in range(S)] if spiking else []
        st.Dp[g] = [[tape[f"{g}.Dp{j}_{s}"] for s in range(S)] for j in range(P)]
        st.dsdp[g] = [tape[f"{g}.dsdp{j}"] for j in range(P)] if spiking else []
    fut = {g: [lw.load(fn, f"fut_{g}_{s}") for s in v.groups[g].states] for g in v.order}
    pending = {g: [lw.load(fn, f"futs_{g}_{k}") for k in range(lags)] for g, lags in lw.spike_histories().items()}
    a_h, a_y, a_s = backward(lw, fn, st, tape["dLdr"], W, fut, {g: q[0] for g, q in pending.items()})
    xt = lw.inputs_at(fn, None)
    for p in (p for p in v.projections.values() if p.learns):
        x = tape.get(f"src.{p.source}") or xt[p.pre]
        i = lw.param_index(f"{p.name}.W")
        a = a_y[p.post][p.port]
        lw.store(fn, weight_outer(fn, W[p.name], x, a, B, v.size(p.pre), v.size(p.post), lw.load(fn, f"g{i}")),
                 f"g{i}")
        if p.bias:
            j = lw.param_index(f"{p.name}.b")
            lw.store(fn, bias_sums(fn, p, a, B, v.size(p.post), lw.load(fn, f"g{j}")), f"g{j}")
    for g in v.order:  # learned per-neuron parameters: this step's local derivatives
        N = v.groups[g].size
        for j, q in enumerate(v.groups[g].params):
            i = lw.param_index(f"{g}.{q}")
            ins = a_h[g] + st.Dp[g][j]  # sum_s a_h[s]*Dp[s] (+ a_s*ds/dp)
            if not v.groups[g].readout:
                ins = a_h[g] + [a_s[g]] + st.Dp[g][j] + [st.dsdp[g][j]]
            local = fn.map(ins, [(B, N)] * len(ins), (B, N), 1, dot_body)[0]
            lw.store(fn, fn.sum_rows(local, B, N, lw.load(fn, f"g{i}")), f"g{i}")
    for g in v.order:
        S, N = v.groups[g].num_states, v.groups[g].size
        res = fn.map(st.D[g] + a_h[g], [(B, N)] * (S * S + S), (B, N), S, transpose_apply_body(S))
        for s, name in enumerate(v.groups[g].states):
            lw.store(fn, res[s], f"fut_{g}_{name}")
    for g, queue in pending.items():  # credit for s^{t-1-k}: what was pending for it, plus step t's
        N = v.groups[g].size
        for k in range(len(queue)):
            acc = queue[k + 1] if k + 1 < len(queue) else None
            for p in v.out_of(g, lag=k + 1):
                acc = times_weights_t(fn, W[p.name], a_y[p.post][p.port], B, N, v.size(p.post), acc=acc)
            lw.store(fn, acc or fn.full((B, N), 0.0), f"futs_{g}_{k}")
    lw.export("bptt_backward_step", lw.step_inputs(per_step=True) + args, [], fn, [])

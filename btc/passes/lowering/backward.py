"""The within-step backward: from dL_t/dr back through every group of this step, the learning
signal a_h = dL_t/dh_t that online algorithms multiply with their traces (BPTT adds the adjoint
carried from step t+1).
"""
from __future__ import annotations

from btc.passes.lowering.bodies import dot, sum_body
from btc.passes.lowering.context import Lowering
from btc.passes.lowering.forward import Step
from btc.passes.lowering.products import times_weights_t
from btc.passes.lowering.text import Fn

__all__ = ["backward"]


def backward(lw: Lowering, fn: Fn, st: Step, dLdr: str, W: dict, fut: dict | None = None,
             fut_s: dict | None = None) -> tuple[dict, dict, dict]:
    """a_h[g] = dL/dh_g^t (the learning signal delta, plus `fut` for BPTT), a_y[g][port] =
    dL/dy_{g,port}^t, a_s[g] = dL/ds_g^t, which learned spike parameters (the threshold) need."""
    v, B = lw.v, lw.B
    a_h, a_y = {}, {}
    a_s_of = {}
    for g in reversed(v.order):
        info = v.groups[g]
        N, S, K = info.size, info.num_states, len(info.ports)
        extra = fut[g] if fut else []
        Df = [d for port in info.ports for d in st.Df[g][port]]
        if info.readout:
            ins = [dLdr] + Df + extra
        else:
            a_s = (fut_s or {}).get(g)
            for p in v.out_of(g, lag=0):
                a_s = times_weights_t(fn, W[p.name], a_y[p.post][p.port], B, N, v.size(p.post), acc=a_s)
            for syn in v.driven_by(g):  # one-to-one into its AlignPre synapses
                a_s = a_y[syn]["y"] if a_s is None else fn.map([a_s, a_y[syn]["y"]], [(B, N)] * 2, (B, N), 1,
                                                               sum_body)[0]
            a_s = a_s or fn.full((B, N), 0.0)
            a_s_of[g] = a_s
            ins = [a_s] + st.dsdh[g] + Df + extra

        def body(fn, a, S=S, K=K, readout=info.readout, has_fut=bool(extra)):
            lines, hs = [], []
            for s in range(S):
                if readout:
                    base = a[0]
                else:
                    base = fn.name("r")
                    lines.append(f"{base} = arith.mulf {a[0]}, {a[1 + s]} : f32")
                if has_fut:
                    tot = fn.name("r")
                    lines.append(f"{tot} = arith.addf {base}, {a[-S + s]} : f32")
                    base = tot
                hs.append(base)
            df0 = 1 if readout else 1 + S
            a_ys = [dot(fn, lines, hs, a[df0 + k * S:df0 + (k + 1) * S]) for k in range(K)]
            return lines, a_ys if readout and not has_fut else hs + a_ys

        # a readout's a_h without BPTT's carry is dL/dr itself, not yielded again: a generic yielding its
        # input unchanged is turned into invalid IR by IREE 3.13's transpose propagation (sparse kernels)
        own = 0 if info.readout and not extra else S
        res = fn.map(ins, [(B, N)] * len(ins), (B, N), own + K, body)
        a_h[g] = res[:own] if own else [dLdr] * S
        a_y[g] = dict(zip(info.ports, res[own:]))
    return a_h, a_y, a_s_of

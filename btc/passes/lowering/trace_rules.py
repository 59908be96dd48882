"""Lowering rules of the trace updates: pp-prop's presynaptic and postsynaptic traces, the exact
traces of biases and learned per-neuron parameters, and D-RTRL's per-weight trace.
"""
from __future__ import annotations

from btc.passes._view import source_key
from btc.passes.lowering.bodies import decay_body, dot, post_trace_body
from btc.passes.lowering.context import Lowering
from btc.passes.lowering.forward import source_value
from btc.passes.lowering.schedule import StepValues, lowers
from btc.passes.lowering.sparse import gather_columns
from btc.passes.lowering.text import Fn, tt

__all__: list[str] = []

_M3 = {"bo": "affine_map<(d0, d1, d2) -> (d0, d2)>", "bi": "affine_map<(d0, d1, d2) -> (d0, d1)>",
       "bio": "affine_map<(d0, d1, d2) -> (d0, d1, d2)>"}


@lowers("btc.update_pre_trace")
def update_pre_trace(lw: Lowering, sv: StepValues, op) -> None:
    """eps_x = alpha*eps_x + x for one distinct presynaptic signal."""
    t = lw.v.traces[op.trace]
    x = source_value(lw, source_key(t.of, t.delay), sv.xt, sv.cur, sv.st)
    key = f"tr_{t.name}_0"
    sv.nxt[key] = sv.fn.map([sv.cur[key], x], [(lw.B, t.size)] * 2, (lw.B, t.size), 1, decay_body(t.decay))[0]


def _neuron_trace(lw: Lowering, sv: StepValues, op, exact: bool) -> None:
    """eps' = alpha*D eps + (1-alpha)*drive (exact: alpha = 1, weight 1), with the postsynaptic factor
    sum_s eps'[s]*delta[s] kept in sv.post_sum for the gradient rules."""
    t, g = lw.v.traces[op.trace], op.group
    S, N, B = t.num_states, t.size, lw.B
    st = sv.st
    old = [sv.cur[f"tr_{t.name}_{s}"] for s in range(S)]
    drive = st.Dp[g][lw.v.groups[g].params.index(t.param)] if t.kind == "elem" else st.Df[g][t.port]
    res = sv.fn.map(st.D[g] + drive + old + sv.a_h[g], [(B, N)] * (S * S + 3 * S), (B, N), S + 1,
                    post_trace_body(S, 1.0 if exact else t.decay, exact, sv.inv_corr.get(t.name)))
    for s in range(S):
        sv.nxt[f"tr_{t.name}_{s}"] = res[s]
    sv.post_sum[t.name] = res[S]


@lowers("btc.update_post_trace")
def update_post_trace(lw: Lowering, sv: StepValues, op) -> None:
    _neuron_trace(lw, sv, op, exact=False)


@lowers("btc.update_bias_trace")
def update_bias_trace(lw: Lowering, sv: StepValues, op) -> None:
    _neuron_trace(lw, sv, op, exact=True)


@lowers("btc.update_elem_trace")
def update_elem_trace(lw: Lowering, sv: StepValues, op) -> None:
    _neuron_trace(lw, sv, op, exact=True)


@lowers("btc.update_dense_trace")
def update_dense_trace(lw: Lowering, sv: StepValues, op) -> None:
    t, p = lw.v.traces[op.trace], lw.v.projections[op.projection]
    x = source_value(lw, p.source, sv.xt, sv.cur, sv.st)
    if p.sparse:  # one trace per pull slot [B, F_in, O]: the drive is each slot's presynaptic value
        x = gather_columns(sv.fn, sv.W[p.name], x, lw.B)
    new = _dense_trace_update(sv.fn, sv.st.D[p.post], sv.st.Df[p.post][p.port], x,
                              [sv.cur[f"tr_{t.name}_{s}"] for s in range(t.num_states)], lw.B, t.rows, t.size,
                              per_slot=p.sparse)
    for s, value in enumerate(new):
        sv.nxt[f"tr_{t.name}_{s}"] = value


def _dense_trace_update(fn: Fn, D: list, Df: list, x: str, old: list, B: int, I: int, O: int,
                        per_slot: bool = False) -> list[str]:
    """D-RTRL: e'[s][b,i,o] = sum_s' D[s][s'][b,o]*e[s'][b,i,o] + Df[s][b,o]*x[b,i] (x[b,i,o] per_slot)."""
    S = len(old)
    ins = ([(d, _M3["bo"], tt(B, O)) for d in D + Df]
           + [(x, _M3["bio"], tt(B, I, O)) if per_slot else (x, _M3["bi"], tt(B, I))]
           + [(e, _M3["bio"], tt(B, I, O)) for e in old])
    outs = [(fn.empty((B, I, O)), _M3["bio"], tt(B, I, O)) for _ in range(S)]

    def body(a):
        Dv, Dfv, xv, ev = a[:S * S], a[S * S:S * S + S], a[S * S + S], a[S * S + S + 1:S * S + S + 1 + S]
        lines: list[str] = []
        new = []
        for s in range(S):
            drive = fn.name("r")
            lines.append(f"{drive} = arith.mulf {Dfv[s]}, {xv} : f32")
            acc = dot(fn, lines, Dv[s * S:(s + 1) * S], ev)
            total = fn.name("r")
            lines.append(f"{total} = arith.addf {acc}, {drive} : f32")
            new.append(total)
        return lines, new

    return fn.generic(ins, outs, ["parallel"] * 3, body)

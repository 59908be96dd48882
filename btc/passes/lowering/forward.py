"""The forward step: weights as applied, each group's inputs (matmuls, biases, one-to-one AlignPre
drive), each group's derivative region as one elementwise linalg.generic, and the time loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from btc.errors import BtcError
from btc.passes.lowering.bodies import signed_abs_body, sum_body
from btc.passes.lowering.context import Lowering
from btc.passes.lowering.active_lists import active_lists
from btc.passes.lowering.events import gather_rows_sum, list_capacity_of, padded_table
from btc.passes.lowering.shared import channel_bias
from btc.passes.lowering.products import times_weights
from btc.passes.lowering.sparse import sparse_weights
from btc.passes.lowering.sparse_events import event_propagate, step_lists
from btc.passes.lowering.text import Fn, block_body, tt
from btc.passes.plan_events import propagation_spill_tiles

__all__ = ["Step", "weights", "split_params", "pre_value", "source_value", "forward", "next_states", "time_loop"]


@dataclass
class Step:
    """Values of one forward step, per group: new states, D (S*S, row-major), Df, spikes, ds/dh,
    and per learned per-neuron parameter j: Dp[g][j] (S values dh'/dp_j) and dsdp[g][j] (ds/dp_j)."""

    h: dict = field(default_factory=dict)
    D: dict = field(default_factory=dict)
    Df: dict = field(default_factory=dict)
    spk: dict = field(default_factory=dict)
    dsdh: dict = field(default_factory=dict)
    Dp: dict = field(default_factory=dict)
    dsdp: dict = field(default_factory=dict)
    active: dict = field(default_factory=dict)  # source key (or (key, "step")) -> its ActiveLists, built once per step


def weights(lw: Lowering, fn: Fn) -> tuple[dict, dict]:
    """W[projection], b[projection] and, under "<group>.<param>", learned per-neuron parameters, read
    once before a function's time loop."""
    return split_params(lw, [lw.load(fn, f"p{i}") for i in range(len(lw.params))], fn, hoisted=True)


def split_params(lw: Lowering, values: list[str], fn: Fn, hoisted: bool = False) -> tuple[dict, dict]:
    """W[projection] (the applied weights: sign*|W_raw| under Dale's law; SparseWeights for a sparse
    projection), b[projection], and
    b["<group>.<param>"] for learned per-neuron parameters."""
    W, b = {}, {}
    for (name, shape), value in zip(lw.params, values):
        owner, kind = name.rsplit(".", 1)
        if owner in lw.v.projections and kind in ("W", "b"):
            sign = lw.v.projections[owner].sign
            if kind == "W" and sign:
                value = fn.map([value], [shape], shape, 1, signed_abs_body(sign))[0]
            if kind == "W" and owner in lw.sparse:
                p = lw.v.projections[owner]  # pulled back through: within the step, or by BPTT's sweep
                push = p.pre in lw.v.groups and (p.lag == 0 or not lw.algorithm.online)
                events = "" if not (hoisted and fn.optimistic) else (  # spikes push the pairs (sparse_events.py)
                    "propagation" if p.propagation == "sparse-event" else
                    "gradient" if p.weight_gradient == "sparse-event" else "")
                value = sparse_weights(fn, lw.sparse[owner], value,
                                       lambda table, owner=owner: lw.load_table(fn, owner, table), push, hoisted,
                                       events)
            if kind == "W" and hoisted and lw.v.projections[owner].propagation == "event":
                # its zero-row twin, built once before the loop (the barrier keeps it there)
                fn.padded[value] = fn.barrier(padded_table(fn, value, *shape), (shape[0] + 1, shape[1]))
            if kind == "b" and lw.v.projections[owner].bias_block > 1:  # one per channel of a convolution
                value = channel_bias(fn, value, shape[0], lw.v.projections[owner].bias_block)
            (W if kind == "W" else b)[owner] = value
        else:
            b[name] = value
    return W, b


def input_drives(lw: Lowering, fn: Fn, W: dict) -> dict:
    """x @ W for every dense, undelayed projection from an input, for all K steps of a chunk at once
    ([K, B, N], sliced per step inside the time loop): one matmul of K*B rows instead of K of B rows,
    each of which IREE fused into the neuron update as a slow generic (1.7 ms of a 9 ms step at
    recurrent_lif N=2048; an optimization barrier between them leaked ~35 MB per call inside scf.for)."""
    v, B, K = lw.v, lw.B, lw.K
    out = {}
    if K == 1:  # nothing to batch (and IREE 3.13 failed to distribute one such dispatch: a partitioned rank)
        return out
    for p in v.projections.values():
        if p.pre in v.inputs and p.lag == 0 and p.propagation == "dense" and p.name not in lw.sparse:
            I, N = v.size(p.pre), v.size(p.post)
            flat, y, seq = fn.name("xs"), None, fn.name("drive")
            fn.emit(f"{flat} = tensor.collapse_shape %x_{p.pre} [[0, 1], [2]] : {tt(K, B, I)} into {tt(K * B, I)}")
            y = fn.matmul(flat, W[p.name], K * B, I, N)
            fn.emit(f"{seq} = tensor.expand_shape {y} [[0, 1], [2]] output_shape [{K}, {B}, {N}] : "
                    f"{tt(K * B, N)} into {tt(K, B, N)}")
            out[p.name] = seq
    return out


def drives_at(lw: Lowering, fn: Fn, drives: dict, t: str) -> dict:
    """Step t's [B, N] slice of each input drive."""
    return {p: fn.slice_t(d, t, (lw.B, lw.v.size(lw.v.projections[p].post))) for p, d in drives.items()}


def pre_value(lw: Lowering, pre: str, lag: int, xt: dict, cur: dict, st: Step) -> str:
    """What a projection reads: this step's input or spikes, or `lag` steps ago from the history."""
    if lag:
        return cur[f"hist_{pre}_{lag - 1}"]
    return xt[pre] if pre in lw.v.inputs else st.spk[pre]


def source_value(lw: Lowering, key: str, xt: dict, cur: dict, st: Step) -> str:
    """The value of a distinct presynaptic signal "<pre>@<lag>" (see _view.source_key)."""
    pre, lag = key.split("@")
    return pre_value(lw, pre, int(lag), xt, cur, st)


def _group_inputs(lw: Lowering, fn: Fn, g: str, xt: dict, cur: dict, W: dict, b: dict, st: Step,
                  drives: dict) -> list[str]:
    """y per input port of group g: the one-to-one source (an AlignPre synapse: driven_by), every projection into the port, its biases."""
    v, B = lw.v, lw.B
    info = v.groups[g]
    N = info.size
    ys = []
    for port in info.ports:
        y = pre_value(lw, info.driven_by, 0, xt, cur, st) if info.driven_by else None
        for p in v.into(g):
            if p.port == port:
                pre = pre_value(lw, p.pre, p.lag, xt, cur, st)
                # a sparse projection's spikes push its pairs in an optimistic loop only (its lists' overflow flagged)
                pushed = p.propagation == "sparse-event" and fn.overflows is not None
                if pushed:
                    if (p.source, "step") not in st.active:  # one list over the whole batch
                        st.active[p.source, "step"] = step_lists(fn, pre, 1, B, v.size(p.pre), v.activity_of(p.pre))
                    y = event_propagate(fn, W[p.name], st.active[p.source, "step"], B, y)
                elif p.propagation == "event":
                    if p.source not in st.active:
                        st.active[p.source] = active_lists(fn, pre, (B, v.size(p.pre)), 1,
                                                           list_capacity_of(fn, v.size(p.pre), v.activity_of(p.pre)))
                    padded = fn.padded.get(W[p.name])
                    # a burst in a few batch rows spills past their lists instead of failing the chunk
                    spill = propagation_spill_tiles(B) * st.active[p.source].capacity if padded else 0
                    y = gather_rows_sum(fn, st.active[p.source], padded or W[p.name], v.size(p.pre), N,
                                        y or fn.full((B, N), 0.0), spill=spill, padded=padded is not None)
                elif p.name not in drives:
                    y = times_weights(fn, W[p.name], pre, B, v.size(p.pre), N, acc=y)
        # x @ W computed for the whole chunk before the loop, added last: a slice of it as the destination of
        # another product made IREE 3.13 copy it in a dispatch it failed to compile
        added = [drives[p.name] for p in v.into(g) if p.port == port and p.name in drives]
        if added and y is None and len(added) == 1:
            y = added.pop()
        biases = [b[p.name] for p in v.biased(g, port)]
        if biases or added:
            terms = [y if y is not None else fn.full((B, N), 0.0)] + added
            y = fn.map(terms + biases, [(B, N)] * len(terms) + [(N,)] * len(biases), (B, N), 1, sum_body)[0]
        ys.append(y or fn.full((B, N), 0.0))
    return ys


def forward(lw: Lowering, fn: Fn, cur: dict, xt: dict, W: dict, b: dict, drives: dict | None = None) -> Step:
    """One step; `drives`: this step's slice of input_drives, where computed."""
    v, B = lw.v, lw.B
    st = Step()
    for g in v.order:
        info = v.groups[g]
        N, S, K, P = info.size, info.num_states, len(info.ports), len(info.params)
        ys = _group_inputs(lw, fn, g, xt, cur, W, b, st, drives or {})
        deriv = v.derivatives[g]
        elem = [b[f"{g}.{q}"] for q in info.params]

        def body(fn, a, deriv=deriv, S=S, K=K, readout=info.readout):
            lines, out = block_body(fn, deriv.regions[0].blocks[0], a)
            if not readout:  # the spike of the new state, with the same learned parameters
                more, spike = block_body(fn, deriv.regions[1].blocks[0], out[:S] + a[S + K:])
                lines, out = lines + more, out + spike
            return lines, out

        n_step = S + S * S + K * S + S * P
        n_out = n_step + (0 if info.readout else 1 + S + P)
        res = fn.map([cur[f"h_{g}_{s}"] for s in info.states] + ys + elem,
                     [(B, N)] * (S + K) + [(N,)] * P, (B, N), n_out, body)
        st.h[g], st.D[g] = res[:S], res[S:S + S * S]
        st.Df[g] = {port: res[S + S * S + k * S:S + S * S + (k + 1) * S] for k, port in enumerate(info.ports)}
        base = S + S * S + K * S
        st.Dp[g] = [res[base + j * S:base + (j + 1) * S] for j in range(P)]
        if not info.readout:
            st.spk[g], st.dsdh[g] = res[n_step], res[n_step + 1:n_step + 1 + S]
            st.dsdp[g] = res[n_step + 1 + S:]
    return st


def next_states(lw: Lowering, st: Step, cur: dict, xt: dict) -> dict:
    """The states after the step, and every history shifted by one (the newest becomes past step 1)."""
    nxt = {}
    for g in lw.v.order:
        for s, val in zip(lw.v.groups[g].states, st.h[g]):
            nxt[f"h_{g}_{s}"] = val
    for pre, lags in lw.histories.items():
        for k in reversed(range(1, lags)):
            nxt[f"hist_{pre}_{k}"] = cur[f"hist_{pre}_{k - 1}"]
        nxt[f"hist_{pre}_0"] = xt[pre] if pre in lw.v.inputs else st.spk[pre]
    return nxt


def time_loop(lw: Lowering, fn: Fn, carried: list[tuple[str, str, str]], body, unroll: int = 1,
              end=None) -> dict:
    """scf.for over the K steps; carried = [(key, init value, type)]; body(t, cur) -> next;
    end(cur) -> cur, if given, closes each iteration's block of `unroll` steps.

    `unroll` steps run per iteration (K % unroll == 0): IREE 3.13 copies every loop-carried
    tensor once per iteration, gradient accumulators included, so fewer iterations copy less.
    """
    if lw.K % unroll:
        raise BtcError(f"unroll={unroll} does not divide the chunk of {lw.K} steps")
    c0, cstep, ck = fn.index(0), fn.index(unroll), fn.index(lw.K)
    offsets = [fn.index(j) for j in range(1, unroll)]
    res, iv = fn.name("loop"), fn.name("t")
    args = {k: fn.name("it") for k, _, _ in carried}
    types = ", ".join(t for _, _, t in carried)
    inits = ", ".join(f"{args[k]} = {init}" for k, init, _ in carried)
    fn.emit(f"{res}:{len(carried)} = scf.for {iv} = {c0} to {ck} step {cstep} iter_args({inits}) -> ({types}) {{")
    fn.indent += 1
    cur = dict(args)
    for j in range(unroll):
        t = iv
        if j:
            t = fn.name("t")
            fn.emit(f"{t} = arith.addi {iv}, {offsets[j - 1]} : index")
        cur = body(t, cur)
    if end is not None:
        cur = end(cur)
    fn.emit(f"scf.yield {', '.join(cur[k] for k, _, _ in carried)} : {types}")
    fn.indent -= 1
    fn.emit("}")
    return {k: f"{res}#{i}" for i, (k, _, _) in enumerate(carried)}

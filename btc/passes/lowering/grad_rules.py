"""Lowering rules of the gradient accumulations: pp-prop's eps_x^T (post factor), D-RTRL's sum over
its per-weight trace, and the exact gradients of biases and learned per-neuron parameters.
"""
from __future__ import annotations

from btc.passes.lowering.bodies import dot, fma_body
from btc.passes.lowering.context import Lowering
from btc.passes.lowering.forward import source_value
from btc.passes.lowering.schedule import StepValues, lowers
from btc.passes.lowering.shared import bias_sums
from btc.passes.lowering.products import weight_outer
from btc.passes.lowering.sparse import outer_grad_slots, slot_shapes, slots_to_pairs
from btc.passes.lowering.text import Fn, tt

__all__ = ["slot_keys", "slot_accumulators"]


SLOT_BATCH_MAX = 4


def slot_keys(i: int, projection: str, lw: Lowering) -> list[str]:
    """The loop-carried names of parameter i's per-slot gradient (one per pull bucket)."""
    return [f"gs{i}_{b}" for b in range(len(lw.sparse[projection].pull.widths))] if projection in lw.sparse else []


def slot_accumulators(lw: Lowering, optimistic: bool = False) -> dict[str, tuple[str, tuple]]:
    """name -> (projection, shape) of every per-slot gradient a time loop carries: sparse projections
    learning by pp-prop's pair of traces, their gradient read at the pairs after the loop. Only for
    small batches: reading the pairs costs nnz scattered reads a step whatever the batch, the slot
    products B x slots. Measured: B=1, 3.1 M pairs, chunk 50: the per-step read took 56 of 96 ms;
    B=32, 2.7 M pairs, chunk 100: carrying the slots made a step 354 ms against 228. An optimistic function
    regroups a "sparse-event" gradient per block instead (event_grad.GradientBlock)."""
    out = {}
    if lw.B > SLOT_BATCH_MAX:
        return out
    for p in lw.v.projections.values():
        if (p.sparse and p.learns and not (optimistic and p.weight_gradient == "sparse-event")
                and lw.v.dense_trace(p.name) is None):
            i = lw.param_index(f"{p.name}.W")
            out.update({k: (p.name, shape) for k, shape in zip(slot_keys(i, p.name, lw), slot_shapes(lw.sparse[p.name]))})
    return out


@lowers("btc.accumulate_grad")
def accumulate_grad(lw: Lowering, sv: StepValues, op) -> None:
    """grad W += eps_x^T (sum_s eps_f*delta): one outer product over the batch."""
    p, pre_t = lw.v.projections[op.projection], lw.v.traces[op.pre_trace]
    i = lw.param_index(f"{p.name}.W")
    # added once per block, by GradientBlock.flush; a sparse projection's only in an optimistic function
    if p.weight_gradient == "event" or (p.weight_gradient == "sparse-event" and sv.fn.overflows is not None):
        x = source_value(lw, p.source, sv.xt, sv.cur, sv.st)
        sv.block.add(f"g{i}", pre_t.name, pre_t.decay, sv.cur[f"tr_{pre_t.name}_0"], x, sv.post_sum[op.post_trace],
                     pre_t.size, lw.v.size(p.post), sv.W[p.name] if p.sparse else None,
                     sv.st.active.get((p.source, "step")))
        sv.nxt[f"g{i}"] = sv.cur[f"g{i}"]
        return
    if not p.sparse and sv.block is not None and sv.block.stacks(pre_t.size, lw.v.size(p.post)):
        sv.block.add_stacked(f"g{i}", sv.nxt[f"tr_{pre_t.name}_0"], sv.post_sum[op.post_trace], pre_t.size,
                             lw.v.size(p.post))
        sv.nxt[f"g{i}"] = sv.cur[f"g{i}"]
        return
    slots = slot_keys(i, p.name, lw)
    if slots and slots[0] in sv.cur:  # a time loop keeps this gradient per pull slot (sparse.outer_grad_slots)
        new = outer_grad_slots(sv.fn, sv.W[p.name], sv.nxt[f"tr_{pre_t.name}_0"], sv.post_sum[op.post_trace], lw.B,
                               [sv.cur[k] for k in slots])
        sv.nxt.update(zip(slots, new))
        sv.nxt[f"g{i}"] = sv.cur[f"g{i}"]
        return
    sv.nxt[f"g{i}"] = weight_outer(sv.fn, sv.W[p.name], sv.nxt[f"tr_{pre_t.name}_0"], sv.post_sum[op.post_trace],
                                   lw.B, pre_t.size, lw.v.size(p.post), sv.cur[f"g{i}"])


@lowers("btc.accumulate_bias_grad")
def accumulate_bias_grad(lw: Lowering, sv: StepValues, op) -> None:
    p = lw.v.projections[op.projection]
    i = lw.param_index(f"{p.name}.b")
    sv.nxt[f"g{i}"] = bias_sums(sv.fn, p, sv.post_sum[op.trace], lw.B, lw.v.size(p.post), sv.cur[f"g{i}"])


@lowers("btc.accumulate_elem_grad")
def accumulate_elem_grad(lw: Lowering, sv: StepValues, op) -> None:
    t, g = lw.v.traces[op.trace], op.group
    i = lw.param_index(f"{g}.{t.param}")
    total = sv.post_sum[t.name]
    if not lw.v.groups[g].readout:  # the spike's own dependence on the parameter (a threshold)
        direct = sv.st.dsdp[g][lw.v.groups[g].params.index(t.param)]
        total = sv.fn.map([total, sv.a_s[g], direct], [(lw.B, t.size)] * 3, (lw.B, t.size), 1, fma_body)[0]
    sv.nxt[f"g{i}"] = sv.fn.sum_rows(total, lw.B, t.size, sv.cur[f"g{i}"])


@lowers("btc.accumulate_dense_grad")
def accumulate_dense_grad(lw: Lowering, sv: StepValues, op) -> None:
    t, p = lw.v.traces[op.trace], lw.v.projections[op.projection]
    i = lw.param_index(f"{p.name}.W")
    e = [sv.nxt[f"tr_{t.name}_{s}"] for s in range(t.num_states)]
    if p.sparse:  # the trace is per pull slot, [B, F_in, O]: summed per slot, then read at the pairs
        per_slot = _dense_grad(sv.fn, e, sv.a_h[p.post], sv.fn.full((t.rows, t.size), 0.0), lw.B, t.rows, t.size)
        sv.nxt[f"g{i}"] = slots_to_pairs(sv.fn, sv.W[p.name], per_slot, sv.cur[f"g{i}"], transposed=True)
        return
    sv.nxt[f"g{i}"] = _dense_grad(sv.fn, e, sv.a_h[p.post], sv.cur[f"g{i}"], lw.B, t.rows, t.size)


def _dense_grad(fn: Fn, e: list, delta: list, acc: str, B: int, I: int, O: int) -> str:
    """D-RTRL: acc[i,o] + sum_b sum_s e[s][b,i,o]*delta[s][b,o] (batch reduction innermost)."""
    S = len(e)
    ins = ([(x, "affine_map<(d0, d1, d2) -> (d2, d0, d1)>", tt(B, I, O)) for x in e]
           + [(d, "affine_map<(d0, d1, d2) -> (d2, d1)>", tt(B, O)) for d in delta])

    def body(a):
        lines: list[str] = []
        total = dot(fn, lines, a[:S], a[S:2 * S])
        out = fn.name("r")
        lines.append(f"{out} = arith.addf {a[2 * S]}, {total} : f32")
        return lines, [out]

    return fn.generic(ins, [(acc, "affine_map<(d0, d1, d2) -> (d0, d1)>", tt(I, O))],
                      ["parallel", "parallel", "reduction"], body)[0]

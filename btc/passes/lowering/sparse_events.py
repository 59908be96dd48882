"""Spike-driven work on a sparse projection ("sparse-event", btc-plan-events): its binary presynaptic
signal's active entries, (batch row, neuron) pairs listed per step, each push their fan_out slots (sparse_layout.push_tables).

- propagation: y[b, post_k] += W[k] for every pair k of every active (b, pre): one scatter of
  capacity x fan_out updates instead of a pull over every pair for every batch row;
- pp-prop's regrouped weight gradient (pp-prop.md section 7), its spike term: dW[k] += M^tau[b, post_k]
  for every pair k of every spike (tau, b, pre) of the block.

One list per step over the whole batch, not one per batch row: its capacity need only cover the step's
total, which varies far less than the busiest row (N=16,384, 0.41 % firing: rows of 206 at most against
67 on average), and the work follows the capacity.

Both are optimistic (train_chunk_fast and _roomy only): entries past a list's capacity are left out and
flagged, and the runtime then runs the exact train_chunk, whose sparse products pull over every pair.
Every update lands: unused list entries read row I, whose slots all point at a dump entry (column O of
a row, pair nnz) that is cut off after the scatter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from btc.passes.lowering.bodies import sum_body
from btc.passes.lowering.events import ActiveLists, active_lists, list_capacity_of, list_positions, overflow_flag
from btc.passes.lowering.text import Fn, tt

if TYPE_CHECKING:
    from btc.passes.lowering.sparse import SparseWeights

__all__ = ["step_lists", "event_propagate", "event_gradient"]


def step_lists(fn: Fn, x: str, steps: int, B: int, I: int, activity: float) -> ActiveLists:
    """The active entries of binary x[steps * B, I] (step-major), one list per step over its B x I entries
    (flat positions b * I + i)."""
    n = B * I
    flat, rows = fn.name("ev"), fn.name("ev")
    fn.emit(f"{flat} = tensor.collapse_shape {x} [[0, 1]] : {tt(steps * B, I)} into {tt(steps * n)}")
    fn.emit(f"{rows} = tensor.expand_shape {flat} [[0, 1]] output_shape [{steps}, {n}] : {tt(steps * n)} "
            f"into {tt(steps, n)}")
    return active_lists(fn, rows, (steps, n), 1, list_capacity_of(fn, n, activity))


def event_propagate(fn: Fn, w: SparseWeights, lists: ActiveLists, B: int, acc: str | None) -> str:
    """acc + x[B, I] @ W for binary x listed by step_lists (one step), its overflow flagged."""
    L = w.layout
    assert w.events is not None, f"{L.name}: the spike-driven weight table was not gathered"
    cols = L.O + 1  # a dump column

    def updates(b, i, f, lines):
        post, val, bb, width, base, flat = (fn.name("r") for _ in range(6))
        lines += [f"{post} = tensor.extract {w.t['ev_post']}[{i}, {f}] : {tt(L.I + 1, L.fan_out, dtype='i32')}",
                  f"{val} = tensor.extract {w.events}[{i}, {f}] : {tt(L.I + 1, L.fan_out)}",
                  f"{bb} = arith.index_cast {b} : index to i32", f"{width} = arith.constant {cols} : i32",
                  f"{base} = arith.muli {bb}, {width} : i32", f"{flat} = arith.addi {base}, {post} : i32"]
        return val, flat

    idx = list_positions(fn, lists, -1)
    summed = _pushed(fn, idx, lists.capacity, L, fn.full((B * cols,), 0.0), B * cols, updates)
    fn.capped |= lists.capacity < lists.n  # a roomier variant would differ (online.train_chunk)
    y = _unflatten_rows(fn, summed, B, cols, L.O)
    fn.overflows.append(overflow_flag(fn, lists))
    return y if acc is None else fn.map([acc, y], [(B, L.O)] * 2, (B, L.O), 1, sum_body)[0]


def event_gradient(fn: Fn, w: SparseWeights, lists: ActiveLists, stacked: str, acc: str, B: int) -> str:
    """acc[k] + sum over the block's spikes (b, pre_k) of step j of stacked[j * B + b, post_k]: `lists`
    lists each step's spikes (step_lists), `stacked` is M of the block's rows ([steps * B + 1, O]). One
    scatter per step: the block's updates at once (capacity x fan_out per step, 8 bytes each) are hundreds
    of MB at N=16,384, and took twice as long per update as a step's."""
    L = w.layout
    table = tt(lists.rows * B + 1, L.O)

    def updates(b, i, f, lines, offset):
        k, post, last, safe, val, shift, row, col = (fn.name("r") for _ in range(8))
        lines += [f"{k} = tensor.extract {w.t['ev_k']}[{i}, {f}] : {tt(L.I + 1, L.fan_out, dtype='i32')}",
                  f"{post} = tensor.extract {w.t['ev_post']}[{i}, {f}] : {tt(L.I + 1, L.fan_out, dtype='i32')}",
                  f"{last} = arith.constant {L.O - 1} : i32",  # padding's column O: read inside, dumped anyway
                  f"{safe} = arith.minsi {post}, {last} : i32",
                  f"{col} = arith.index_cast {safe} : i32 to index", f"{shift} = arith.constant {offset} : index",
                  f"{row} = arith.addi {b}, {shift} : index",
                  f"{val} = tensor.extract {stacked}[{row}, {col}] : {table}"]
        return val, k

    idx = list_positions(fn, lists, -1)
    summed = fn.full((L.nnz + 1,), 0.0)
    for j in range(lists.rows):
        step = fn.name("gi")
        fn.emit(f"{step} = tensor.extract_slice {idx}[{j}, 0] [1, {lists.capacity}] [1, 1] : "
                f"{tt(lists.rows, lists.capacity, dtype='i32')} to {tt(1, lists.capacity, dtype='i32')}")
        summed = _pushed(fn, step, lists.capacity, L, summed, L.nnz + 1,
                         lambda *a, j=j: updates(*a, offset=j * B))
    fn.capped |= lists.capacity < lists.n
    kept = fn.name("gk")
    fn.emit(f"{kept} = tensor.extract_slice {summed}[0] [{L.nnz}] [1] : {tt(L.nnz + 1)} to {tt(L.nnz)}")
    fn.overflows.append(overflow_flag(fn, lists))
    return fn.map([acc, kept], [(L.nnz,)] * 2, (L.nnz,), 1, sum_body)[0]


def _pushed(fn: Fn, idx: str, C: int, L, into: str, length: int, updates) -> str:
    """`into` ([length]) plus the fan_out updates of every entry of idx[1, C] (flat positions b * I + i, -1
    for none: row I of the push tables), `updates(b, i, f, lines)` giving one slot's (value, flat
    destination) for batch row b's presynaptic neuron i (indices) and slot f."""
    F = L.fan_out
    m3 = "affine_map<(d0, d1, d2) -> (d0, d1, d2)>"

    def body(a):
        c, pos, f, none, zero, width, q, m, b32, i32, b, i = (fn.name("r") for _ in range(12))
        # the entry read inside, not as an input: an input let IREE fuse the list's binary search into this
        # loop, once per slot (8x slower at N=16,384)
        lines = [f"{c} = linalg.index 1 : index", f"{pos} = tensor.extract {idx}[{zero_index}, {c}] : {tt(1, C, dtype='i32')}",
                 f"{f} = linalg.index 2 : index", f"{zero} = arith.constant 0 : i32",
                 f"{width} = arith.constant {L.I} : i32", f"{none} = arith.cmpi slt, {pos}, {zero} : i32",
                 f"{q} = arith.divsi {pos}, {width} : i32", f"{m} = arith.remsi {pos}, {width} : i32",
                 f"{b32} = arith.select {none}, {zero}, {q} : i32", f"{i32} = arith.select {none}, {width}, {m} : i32",
                 f"{b} = arith.index_cast {b32} : i32 to index", f"{i} = arith.index_cast {i32} : i32 to index"]
        val, flat = updates(b, i, f, lines)
        return lines, [val, flat]

    zero_index = fn.name("c")
    fn.emit(f"{zero_index} = arith.constant 0 : index")
    vals, dest = fn.generic([],
                            [(fn.empty((1, C, F)), m3, tt(1, C, F)), (fn.empty((1, C, F), "i32"), m3, tt(1, C, F, dtype="i32"))],
                            ["parallel"] * 3, body)
    # updates and indices keep the generic's [1, C, F] (batch dimensions of the scatter): collapsed to one,
    # the generic fused with the reshape into a 1-D loop that took 8x longer (22 ms a step at N=16,384)
    dest2, out = fn.name("ev"), fn.name("ev")
    size, v_type, d_type = tt(length), tt(1, C, F), tt(1, C, F, 1, dtype="i32")
    fn.emit(f"{dest2} = tensor.expand_shape {dest} [[0], [1], [2, 3]] output_shape [1, {C}, {F}, 1] : "
            f"{tt(1, C, F, dtype='i32')} into {d_type}")
    a, b, s = fn.name("a"), fn.name("a"), fn.name("r")
    fn.emit(f"{out} = iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins({vals}, {dest2} : "
            f"{v_type}, {d_type}) outs({into} : {size}) {{")
    fn.emit(f"^bb0({a}: f32, {b}: f32):")
    fn.emit(f"  {s} = arith.addf {a}, {b} : f32")
    fn.emit(f"  iree_linalg_ext.yield {s} : f32")
    fn.emit(f"}} -> {size}")
    return out


def _unflatten_rows(fn: Fn, flat: str, B: int, cols: int, keep: int) -> str:
    """flat[B * cols] as [B, cols], its first `keep` columns."""
    rows, cut = fn.name("ev"), fn.name("ev")
    fn.emit(f"{rows} = tensor.expand_shape {flat} [[0, 1]] output_shape [{B}, {cols}] : {tt(B * cols)} into {tt(B, cols)}")
    fn.emit(f"{cut} = tensor.extract_slice {rows}[0, 0] [{B}, {keep}] [1, 1] : {tt(B, cols)} to {tt(B, keep)}")
    return cut

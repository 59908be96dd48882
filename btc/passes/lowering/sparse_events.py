"""Spike-driven work on a sparse projection ("sparse-event", btc-plan-events): its binary presynaptic
signal's active entries, (batch row, neuron) pairs listed per step, each push their push_width slots
(sparse_layout.push_tables).

- propagation: y[b, post_k] += W[k] for every pair k of every active (b, pre): one scatter of
  capacity x push_width updates instead of a pull over every pair for every batch row;
- pp-prop's regrouped weight gradient (pp-prop.md section 7), its spike term: dW[k] += M^tau[b, post_k]
  for every pair k of every spike (tau, b, pre) of the block.

One list per step over the whole batch, not one per batch row: its capacity need only cover the step's
total, which varies far less than the busiest row (N=16,384, 0.41 % firing: rows of 206 at most against
67 on average), and the work follows the capacity.

Both are optimistic (train_chunk_tight, _fast and _roomy only; _tight sizes these lists for 1.25x the
expected count, plan_events.step_list_capacity): entries past a list's capacity are left out and flagged,
and the runtime then runs the next variant, down to the exact train_chunk, whose sparse products pull over
every pair.
Every update lands: unused list entries read row I, whose slots all point at dump entries (column O + f of
a row, pair nnz + f for slot f; sparse_layout.push_tables) that are cut off after the scatter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from btc.passes.lowering.bodies import sum_body
from btc.passes.lowering.active_lists import ActiveLists, active_lists, list_positions, overflow_flag
from btc.passes.lowering.events import list_capacity_of
from btc.passes.lowering.text import Fn, tt
from btc.passes.plan_events import step_list_capacity

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
    capacity = step_list_capacity(n, activity) if fn.tight else list_capacity_of(fn, n, activity)
    return active_lists(fn, rows, (steps, n), 1, capacity)


def event_propagate(fn: Fn, w: SparseWeights, lists: ActiveLists, B: int, acc: str | None) -> str:
    """acc + x[B, I] @ W for binary x listed by step_lists (one step), its overflow flagged."""
    L = w.layout
    assert w.events is not None, f"{L.name}: the spike-driven weight table was not gathered"
    C, F = lists.capacity, L.push_width
    cols = L.O + F  # and a dump column per slot
    b, i = _entries(fn, list_positions(fn, lists, -1), C, L.I)

    # whole rows of the push tables (read slot by slot, each was a masked scalar load: ~3 ns a slot at N=16,384)
    posts, weights = (fn.gather_rows(t, L.I + 1, F, i, (C,), d) for t, d in ((w.t["ev_post"], "i32"), (w.events, "f32")))

    def slot(row, a):  # the entry's batch row, [its slot's post, weight]
        width, base, flat = (fn.name("r") for _ in range(3))
        return [f"{width} = arith.constant {cols} : i32", f"{base} = arith.muli {row}, {width} : i32",
                f"{flat} = arith.addi {base}, {a[0]} : i32"], [a[1], flat]
    vals, dests = _per_slot(fn, b, C, F, [(posts, "i32"), (weights, "f32")], slot)
    summed = _pushed(fn, vals, dests, C, F, fn.full((B * cols,), 0.0), B * cols)
    _flag_overflow(fn, lists)
    y = _unflatten_rows(fn, summed, B, cols, L.O)
    return y if acc is None else fn.map([acc, y], [(B, L.O)] * 2, (B, L.O), 1, sum_body)[0]


def event_gradient(fn: Fn, w: SparseWeights, lists: list[ActiveLists], stacked: str, acc: str, B: int) -> str:
    """acc[k] + sum over the block's spikes (b, pre_k) of step j of stacked[j * B + b, post_k]: `lists` lists
    the block's spikes step by step (step_lists), one step a row: either one per step (the lists its
    propagation made, shared) or one for the block. `stacked` is M of the block's rows ([steps * B + 1, O]).
    One scatter per step: the block's updates at once (capacity x push_width per step, 8 bytes each) are
    hundreds of MB at N=16,384, and took twice as long per update as a step's."""
    L = w.layout
    F = L.push_width
    dumped = L.nnz + F  # and a dump slot per push slot
    summed = fn.full((dumped,), 0.0)
    steps = [(each, r) for each in lists for r in range(each.rows)]
    for j, (each, r) in enumerate(steps):
        C, idx = each.capacity, list_positions(fn, each, -1)
        step = idx
        if each.rows > 1:
            step = fn.name("gi")
            fn.emit(f"{step} = tensor.extract_slice {idx}[{r}, 0] [1, {C}] [1, 1] : "
                    f"{tt(each.rows, C, dtype='i32')} to {tt(1, C, dtype='i32')}")
        b, i = _entries(fn, step, C, L.I)

        posts, pairs = (fn.gather_rows(w.t[t], L.I + 1, F, i, (C,), "i32") for t in ("ev_post", "ev_k"))

        def slot(row_b, a, offset=j * B):  # the entry's batch row, [its slot's post, pair]
            last, safe, col, bi, shift, row, val = (fn.name("r") for _ in range(7))
            return [f"{last} = arith.constant {L.O - 1} : i32",  # padding's columns O + f: read inside, dumped anyway
                    f"{safe} = arith.minsi {a[0]}, {last} : i32", f"{col} = arith.index_cast {safe} : i32 to index",
                    f"{bi} = arith.index_cast {row_b} : i32 to index", f"{shift} = arith.constant {offset} : index",
                    f"{row} = arith.addi {bi}, {shift} : index",
                    f"{val} = tensor.extract {stacked}[{row}, {col}] : {tt(len(steps) * B + 1, L.O)}"], [val, a[1]]
        vals, ks = _per_slot(fn, b, C, F, [(posts, "i32"), (pairs, "i32")], slot)
        summed = _pushed(fn, vals, ks, C, F, summed, dumped)
    for each in lists:
        _flag_overflow(fn, each)
    kept = fn.name("gk")
    fn.emit(f"{kept} = tensor.extract_slice {summed}[0] [{L.nnz}] [1] : {tt(dumped)} to {tt(L.nnz)}")
    return fn.map([acc, kept], [(L.nnz,)] * 2, (L.nnz,), 1, sum_body)[0]


def _flag_overflow(fn: Fn, lists: ActiveLists) -> None:
    """A capped list makes a roomier variant differ (online.train_chunk); its overflow flag goes in once
    (propagation and gradient share a step's lists)."""
    fn.capped |= lists.capacity < lists.n
    if (flag := overflow_flag(fn, lists)) not in fn.overflows:
        fn.overflows.append(flag)


def _entries(fn: Fn, idx: str, C: int, I: int) -> tuple[str, str]:
    """The batch row and presynaptic neuron ([C] i32 each) of every entry of idx[1, C] (flat positions
    b * I + i, -1 for none: row 0, neuron I, whose push-table row points every slot at a dump)."""
    flat = fn.name("ev")
    fn.emit(f"{flat} = tensor.collapse_shape {idx} [[0, 1]] : {tt(1, C, dtype='i32')} into {tt(C, dtype='i32')}")

    def body(a):
        none, zero, width, q, m, b, i = (fn.name("r") for _ in range(7))
        return [f"{zero} = arith.constant 0 : i32", f"{width} = arith.constant {I} : i32",
                f"{none} = arith.cmpi slt, {a[0]}, {zero} : i32", f"{q} = arith.divsi {a[0]}, {width} : i32",
                f"{m} = arith.remsi {a[0]}, {width} : i32", f"{b} = arith.select {none}, {zero}, {q} : i32",
                f"{i} = arith.select {none}, {width}, {m} : i32"], [b, i]
    m1, i32 = "affine_map<(d0) -> (d0)>", tt(C, dtype="i32")
    b, i = fn.generic([(flat, m1, i32)], [(fn.empty((C,), "i32"), m1, i32), (fn.empty((C,), "i32"), m1, i32)],
                      ["parallel"], body)
    return b, i


def _per_slot(fn: Fn, b: str, C: int, F: int, ins: list[tuple[str, str]], body) -> tuple[str, str]:
    """The scatter's ([C, F] f32 values, [C, F] i32 destinations): body(its entry's batch row, [the slot's
    value in each of `ins`]) -> (lines, [value, destination]) for every slot of every entry.

    b comes in computed once per entry (_entries): a division and remainder per slot cost more than the slot's
    own work. Even a value the body only passes on goes through here: a gathered table fed to the scatter
    directly was pulled into the scatter's single workgroup whole, on the stack ("exceeded stack allocation
    limit", 4.7 MB at N=16,384). (Were _entries' list search fused in here through b, it would run once per
    slot: 8x slower in an earlier layout; profiles show it is not.)"""
    m2, m1 = "affine_map<(d0, d1) -> (d0, d1)>", "affine_map<(d0, d1) -> (d0)>"
    vals, dests = fn.generic([(b, m1, tt(C, dtype="i32"))] + [(t, m2, tt(C, F, dtype=d)) for t, d in ins],
                             [(fn.empty((C, F)), m2, tt(C, F)), (fn.empty((C, F), "i32"), m2, tt(C, F, dtype="i32"))],
                             ["parallel", "parallel"], lambda a: body(a[0], a[1:1 + len(ins)]))
    return vals, dests


def _pushed(fn: Fn, vals: str, dests: str, C: int, F: int, into: str, length: int) -> str:
    """`into` ([length]) plus vals[c, f] at dests[c, f] (every slot lands: padding at a dump position)."""
    # updates and indices as [1, C, F] (batch dimensions of the scatter): collapsed to one, the producers
    # fused with the reshape into a 1-D loop that took 8x longer (22 ms a step at N=16,384)
    v3, d4, out = fn.name("ev"), fn.name("ev"), fn.name("ev")
    size, v_type, d_type = tt(length), tt(1, C, F), tt(1, C, F, 1, dtype="i32")
    fn.emit(f"{v3} = tensor.expand_shape {vals} [[0, 1], [2]] output_shape [1, {C}, {F}] : {tt(C, F)} into {v_type}")
    fn.emit(f"{d4} = tensor.expand_shape {dests} [[0, 1], [2, 3]] output_shape [1, {C}, {F}, 1] : "
            f"{tt(C, F, dtype='i32')} into {d_type}")
    a, b, s = fn.name("a"), fn.name("a"), fn.name("r")
    fn.emit(f"{out} = iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins({v3}, {d4} : "
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

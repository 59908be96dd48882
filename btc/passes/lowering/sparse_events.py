"""Spike-driven work on a sparse projection ("sparse-event", btc-plan-events): its binary presynaptic
signal's active entries, listed per row, each push their fan_out slots (SparseLayout's ev_ tables).

- propagation: y[b, post_k] += W[k] for every pair k of every active (b, pre): one scatter of
  B x capacity x fan_out updates instead of a pull over every pair for every batch row;
- pp-prop's regrouped weight gradient (pp-prop.md section 7), its spike term: dW[k] += M^tau[b, post_k]
  for every pair k of every spike (tau, b, pre) of the block.

Both are optimistic (train_chunk_fast and _roomy only): entries past a list's capacity are left out and
flagged, and the runtime then runs the exact train_chunk, whose sparse products pull over every pair.
Every update lands: unused list entries read row I, whose slots all point at a dump entry (column O of
a row, pair nnz) that is cut off after the scatter. Measured alone at N=16,384, 1 %, B=32 (2 cores):
the forward's 1.0 M updates take 7-8 ms, against 116 ms for the pull over the pairs.
"""
from __future__ import annotations

from btc.passes.lowering.bodies import sum_body
from btc.passes.lowering.events import ActiveLists, list_positions, overflow_flag
from btc.passes.lowering.sparse import SparseWeights
from btc.passes.lowering.text import Fn, tt

__all__ = ["event_propagate", "event_gradient"]


def event_propagate(fn: Fn, w: SparseWeights, lists: ActiveLists, B: int, acc: str | None) -> str:
    """acc + x[B, I] @ W for binary x listed per batch row (`lists`), its overflow flagged."""
    L = w.layout
    assert w.events is not None, f"{L.name}: the spike-driven weight table was not gathered"
    cols = L.O + 1  # a dump column

    def updates(a, r, i, f, lines):
        post, val, rr, width, base, flat = (fn.name("r") for _ in range(6))
        lines += [f"{post} = tensor.extract {w.t['ev_post']}[{i}, {f}] : {tt(L.I + 1, L.fan_out, dtype='i32')}",
                  f"{val} = tensor.extract {w.events}[{i}, {f}] : {tt(L.I + 1, L.fan_out)}",
                  f"{rr} = arith.index_cast {r} : index to i32", f"{width} = arith.constant {cols} : i32",
                  f"{base} = arith.muli {rr}, {width} : i32", f"{flat} = arith.addi {base}, {post} : i32"]
        return val, flat

    idx = list_positions(fn, lists, L.I)  # unused entries read row I: all dump slots
    summed = _pushed(fn, idx, lists.rows, lists.capacity, L, fn.full((B * cols,), 0.0), B * cols, updates)
    fn.capped |= lists.capacity < lists.n  # a roomier variant would differ (online.train_chunk)
    y = _unflatten_rows(fn, summed, B, cols, L.O)
    fn.overflows.append(overflow_flag(fn, lists))
    return y if acc is None else fn.map([acc, y], [(B, L.O)] * 2, (B, L.O), 1, sum_body)[0]


def event_gradient(fn: Fn, w: SparseWeights, lists: ActiveLists, stacked: str, acc: str, B: int) -> str:
    """acc[k] + sum over the block's spikes (r, pre_k) of stacked[r, post_k]: `lists` lists the spikes of
    the block's stacked signal [rows, I] per row, `stacked` is M of the same rows ([rows + 1, O]). One
    scatter per step of B rows: the block's updates at once (B x capacity x fan_out per step, 8 bytes each)
    are hundreds of MB at N=16,384, and took twice as long per update as a step's."""
    L = w.layout
    table = tt(lists.rows + 1, L.O)
    steps = lists.rows // B

    def updates(a, r, i, f, lines, offset):
        k, post, last, safe, val, shift, row = (fn.name("r") for _ in range(7))
        lines += [f"{k} = tensor.extract {w.t['ev_k']}[{i}, {f}] : {tt(L.I + 1, L.fan_out, dtype='i32')}",
                  f"{post} = tensor.extract {w.t['ev_post']}[{i}, {f}] : {tt(L.I + 1, L.fan_out, dtype='i32')}",
                  f"{last} = arith.constant {L.O - 1} : i32",  # padding's column O: read inside, dumped anyway
                  f"{safe} = arith.minsi {post}, {last} : i32"]
        col = fn.name("r")
        lines += [f"{col} = arith.index_cast {safe} : i32 to index", f"{shift} = arith.constant {offset} : index",
                  f"{row} = arith.addi {r}, {shift} : index",
                  f"{val} = tensor.extract {stacked}[{row}, {col}] : {table}"]
        return val, k

    idx = list_positions(fn, lists, L.I)
    summed = fn.full((L.nnz + 1,), 0.0)
    for j in range(steps):
        rows = fn.name("gi")
        fn.emit(f"{rows} = tensor.extract_slice {idx}[{j * B}, 0] [{B}, {lists.capacity}] [1, 1] : "
                f"{tt(lists.rows, lists.capacity, dtype='i32')} to {tt(B, lists.capacity, dtype='i32')}")
        summed = _pushed(fn, rows, B, lists.capacity, L, summed, L.nnz + 1,
                         lambda *a, j=j: updates(*a, offset=j * B))
    fn.capped |= lists.capacity < lists.n
    kept = fn.name("gk")
    fn.emit(f"{kept} = tensor.extract_slice {summed}[0] [{L.nnz}] [1] : {tt(L.nnz + 1)} to {tt(L.nnz)}")
    fn.overflows.append(overflow_flag(fn, lists))
    return fn.map([acc, kept], [(L.nnz,)] * 2, (L.nnz,), 1, sum_body)[0]


def _pushed(fn: Fn, idx: str, R: int, C: int, L, into: str, length: int, updates) -> str:
    """`into` ([length]) plus the fan_out updates of every entry of idx[R, C] (presynaptic neurons, I for none),
    `updates(args, r, i, f, lines)` giving one slot's (value, flat destination) for row r's entry pre i
    (index) and slot f."""
    F = L.fan_out
    n = R * C * F
    m2, m3 = "affine_map<(d0, d1, d2) -> (d0, d1)>", "affine_map<(d0, d1, d2) -> (d0, d1, d2)>"

    def body(a):
        r, f, i = fn.name("r"), fn.name("r"), fn.name("r")
        lines = [f"{r} = linalg.index 0 : index", f"{f} = linalg.index 2 : index",
                 f"{i} = arith.index_cast {a[0]} : i32 to index"]
        val, flat = updates(a, r, i, f, lines)
        return lines, [val, flat]

    vals, dest = fn.generic([(idx, m2, tt(R, C, dtype="i32"))],
                            [(fn.empty((R, C, F)), m3, tt(R, C, F)), (fn.empty((R, C, F), "i32"), m3, tt(R, C, F, dtype="i32"))],
                            ["parallel"] * 3, body)
    flat_v, flat_d, dest2, out = (fn.name("ev") for _ in range(4))
    size = tt(length)
    fn.emit(f"{flat_v} = tensor.collapse_shape {vals} [[0, 1, 2]] : {tt(R, C, F)} into {tt(n)}")
    fn.emit(f"{flat_d} = tensor.collapse_shape {dest} [[0, 1, 2]] : {tt(R, C, F, dtype='i32')} into {tt(n, dtype='i32')}")
    fn.emit(f"{dest2} = tensor.expand_shape {flat_d} [[0, 1]] output_shape [{n}, 1] : {tt(n, dtype='i32')} "
            f"into {tt(n, 1, dtype='i32')}")
    a, b, s = fn.name("a"), fn.name("a"), fn.name("r")
    fn.emit(f"{out} = iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins({flat_v}, {dest2} : "
            f"{tt(n)}, {tt(n, 1, dtype='i32')}) outs({into} : {size}) {{")
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

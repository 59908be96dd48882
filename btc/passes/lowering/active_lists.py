"""Lists of the active (non-zero) entries of a binary tensor: each list's flags summed by a prefix sum
(segmented where the lists run along a row), and the searches that find a list's c-th entry from it.
events.py sums the table rows they select; sparse_events.py pushes them.
"""
from __future__ import annotations

import math

from btc.passes.lowering.text import Fn, tt

__all__ = ["ActiveLists", "SEGMENT", "active_lists", "list_positions", "overflow_flag", "any_longer", "find_entry",
           "first_above", "scan_along"]


class ActiveLists:
    """A binary tensor's active entries, ready to be listed: `prefix`, the inclusive prefix sum of its flags
    along the list dimension (i32, the tensor's own shape), and `totals`, each list's length. Segmented
    (`segment` > 1, lists along dimension 1 only): `prefix` sums the flags' counts per segment of that many
    entries ([rows, n / segment]), and `source` is the tensor itself, read inside a segment."""

    def __init__(self, prefix: str, totals: str, shape: tuple[int, int], along: int, capacity: int,
                 segment: int = 1, source: str | None = None):
        self.prefix, self.totals, self.shape, self.along, self.capacity = prefix, totals, shape, along, capacity
        self.segment, self.source = segment, source
        self.rows, self.n = (shape[0], shape[1]) if along == 1 else (shape[1], shape[0])
        self.found: dict[int, str] = {}  # list_positions' result per `missing`, written once per function
        self.flag: str | None = None  # overflow_flag's


# entries per segment of a list's prefix sum: IREE 3.13's scan is a serial loop (one core, ~2.2 ns an entry:
# 1.15 ms for one step's list over 32 x 16,384 spikes); counting each segment's flags is a parallel, vectorised
# reduction, leaving 1/32 of the entries to the scan, and finding an entry reads its segment's 32 flags
SEGMENT = 32


def active_lists(fn: Fn, x: str, shape: tuple[int, int], along: int, capacity: int) -> ActiveLists:
    """The active entries of binary x[shape] along dimension `along` (1: per row, the columns;
    0: per column, the rows): their flags' prefix sum and each list's length."""
    R0, R1 = shape
    rows, n = (R0, R1) if along == 1 else (R1, R0)
    capacity = max(1, min(capacity, n))
    segment = max(p for p in (1, 2, 4, 8, 16, SEGMENT) if R1 % p == 0) if along == 1 else 1
    if segment > 1:
        segs = R1 // segment
        split = fn.name("seg")
        fn.emit(f"{split} = tensor.expand_shape {x} [[0], [1, 2]] output_shape [{R0}, {segs}, {segment}] : "
                f"{tt(R0, R1)} into {tt(R0, segs, segment)}")
        counts = fn.generic([(split, "affine_map<(d0, d1, d2) -> (d0, d1, d2)>", tt(R0, segs, segment))],
                            [(fn.full((R0, segs), 0, "i32"), "affine_map<(d0, d1, d2) -> (d0, d1)>",
                              tt(R0, segs, dtype="i32"))],
                            ["parallel", "parallel", "reduction"], lambda a: _count_body(fn, a))[0]
        prefix = scan_along(fn, counts, (R0, segs), 1)
        return ActiveLists(prefix, _row_totals(fn, prefix, R0, segs, 1), shape, 1, capacity, segment, x)
    flags = fn.generic([(x, "affine_map<(d0, d1) -> (d0, d1)>", tt(R0, R1))],
                       [(fn.empty((R0, R1), "i32"), "affine_map<(d0, d1) -> (d0, d1)>", tt(R0, R1, dtype="i32"))],
                       ["parallel", "parallel"], lambda a: _flag_body(fn, a))[0]
    prefix = scan_along(fn, flags, shape, along)
    return ActiveLists(prefix, _row_totals(fn, prefix, R0, R1, along), shape, along, capacity)


def scan_along(fn: Fn, values: str, shape: tuple[int, ...], along: int) -> str:
    """The inclusive prefix sum of i32 values[shape] along dimension `along`."""
    rest = tuple(d for i, d in enumerate(shape) if i != along)  # the scan's running total: one per list
    i32, total = tt(*shape, dtype="i32"), tt(*rest, dtype="i32")
    prefix, scan_out, zero = fn.name("scan"), fn.empty(shape, "i32"), fn.full(rest, 0, "i32")
    fn.emit(f"{prefix}:2 = iree_linalg_ext.scan dimension({along}) inclusive(true) ins({values} : {i32}) "
            f"outs({scan_out}, {zero} : {i32}, {total}) {{")
    a, b, s = fn.name("a"), fn.name("a"), fn.name("r")
    fn.emit(f"^bb0({a}: i32, {b}: i32):")
    fn.emit(f"  {s} = arith.addi {a}, {b} : i32")
    fn.emit(f"  iree_linalg_ext.yield {s} : i32")
    fn.emit(f"}} -> {i32}, {total}")
    return f"{prefix}#0"


def list_positions(fn: Fn, lists: ActiveLists, missing: int) -> str:
    """[rows, capacity] i32: the position of each list's c-th active entry, or `missing` past its end (found
    once: a step's propagation and the block's gradient share one step's spikes' lists)."""
    rows, C = lists.rows, lists.capacity
    if missing not in lists.found:
        lists.found[missing] = fn.generic(
            [(lists.totals, "affine_map<(d0, d1) -> (d0)>", tt(rows, dtype="i32"))],
            [(fn.empty((rows, C), "i32"), "affine_map<(d0, d1) -> (d0, d1)>", tt(rows, C, dtype="i32"))],
            ["parallel", "parallel"], lambda a: _search_body(fn, lists, a[0], missing))[0]
    return lists.found[missing]


def overflow_flag(fn: Fn, lists: ActiveLists) -> str:
    """1.0 if some list is longer than its capacity, else 0.0 (a rank-0 f32 tensor; written once)."""
    if lists.flag is None:
        lists.flag = any_longer(fn, lists.totals, lists.rows, lists.capacity)
    return lists.flag


def any_longer(fn: Fn, counts: str, rows: int, limit: int) -> str:
    """1.0 if any of the i32 `counts` exceeds `limit`, else 0.0 (a rank-0 f32 tensor). Each flag stands alone
    (chaining one into the next as its initial value serialized the step: 1.0-1.1 s per chunk of recurrent_lif
    N=2048, B=32, K=100 instead of 0.8)."""
    def body(a):
        cap, big, one, zero, flag, out = (fn.name("r") for _ in range(6))
        return [f"{cap} = arith.constant {limit} : i32", f"{big} = arith.cmpi sgt, {a[0]}, {cap} : i32",
                f"{one} = arith.constant 1.0 : f32", f"{zero} = arith.constant 0.0 : f32",
                f"{flag} = arith.select {big}, {one}, {zero} : f32", f"{out} = arith.maximumf {a[1]}, {flag} : f32"], [out]
    return fn.generic([(counts, "affine_map<(d0) -> (d0)>", tt(rows, dtype="i32"))],
                      [(fn.full((), 0.0), "affine_map<(d0) -> ()>", tt())], ["reduction"], body)[0]


def _count_body(fn: Fn, a):
    """The running count of non-zero f32 entries (a[0]) in an i32 accumulator (a[1])."""
    z, c, one, r = (fn.name("r") for _ in range(4))
    return [f"{z} = arith.constant 0.0 : f32", f"{c} = arith.cmpf one, {a[0]}, {z} : f32",
            f"{one} = arith.extui {c} : i1 to i32", f"{r} = arith.addi {a[1]}, {one} : i32"], [r]


def _flag_body(fn: Fn, a):
    z, c, r = fn.name("r"), fn.name("r"), fn.name("r")
    return [f"{z} = arith.constant 0.0 : f32", f"{c} = arith.cmpf one, {a[0]}, {z} : f32",
            f"{r} = arith.extui {c} : i1 to i32"], [r]


def _row_totals(fn: Fn, prefix: str, R0: int, R1: int, along: int) -> str:
    """The last entry of each list's prefix sum: its number of active entries."""
    n = fn.name("tot")
    if along == 1:
        fn.emit(f"{n} = tensor.extract_slice {prefix}[0, {R1 - 1}] [{R0}, 1] [1, 1] : "
                f"{tt(R0, R1, dtype='i32')} to {tt(R0, dtype='i32')}")
    else:
        fn.emit(f"{n} = tensor.extract_slice {prefix}[{R0 - 1}, 0] [1, {R1}] [1, 1] : "
                f"{tt(R0, R1, dtype='i32')} to {tt(R1, dtype='i32')}")
    return n


def find_entry(fn: Fn, lists: ActiveLists, r: str, ci: str) -> tuple[list[str], str]:
    """Lines finding the smallest position p with prefix[r, p] > ci (row r's ci-th active entry,
    if it has one): ceil(log2 n) probes, unrolled. Returns (lines, p as an index)."""
    if lists.segment > 1:
        return _segment_search(fn, lists, r, ci)
    at_type = tt(*lists.shape, dtype="i32")
    at = (lambda mid: f"[{r}, {mid}]") if lists.along == 1 else (lambda mid: f"[{mid}, {r}]")
    return first_above(fn, lists.n, lambda mid: f"tensor.extract {lists.prefix}{at(mid)} : {at_type}", ci)


def _segment_search(fn: Fn, lists: ActiveLists, r: str, ci: str) -> tuple[list[str], str]:
    """find_entry over segmented lists: the segment s holding row r's ci-th active entry (binary search
    over the segments' prefix), then the entry's position inside it, p = s * segment + the number of the
    segment's entries j whose count of active entries up to j is at most ci minus those before s."""
    S, segs = lists.segment, lists.n // lists.segment
    seg_type, x_type = tt(lists.rows, segs, dtype="i32"), tt(*lists.shape)
    lines, s = first_above(fn, segs, lambda mid: f"tensor.extract {lists.prefix}[{r}, {mid}] : {seg_type}", ci)
    one, z_idx, zero, first, at, prev, before_s, before, want, width, base, count, pos, fzero = (
        fn.name("r") for _ in range(14))
    lines += [f"{one} = arith.constant 1 : index", f"{z_idx} = arith.constant 0 : index",
              f"{zero} = arith.constant 0 : i32", f"{first} = arith.cmpi eq, {s}, {z_idx} : index",
              f"{at} = arith.maxui {s}, {one} : index", f"{prev} = arith.subi {at}, {one} : index",
              f"{before_s} = tensor.extract {lists.prefix}[{r}, {prev}] : {seg_type}",
              f"{before} = arith.select {first}, {zero}, {before_s} : i32", f"{want} = arith.subi {ci}, {before} : i32",
              f"{width} = arith.constant {S} : index", f"{base} = arith.muli {s}, {width} : index",
              f"{count} = arith.constant 0 : i32", f"{pos} = arith.constant 0 : i32",
              f"{fzero} = arith.constant 0.0 : f32"]
    for j in range(S):
        off, col, v, on, on_i, count2, le, le_i, pos2 = (fn.name("r") for _ in range(9))
        lines += [f"{off} = arith.constant {j} : index", f"{col} = arith.addi {base}, {off} : index",
                  f"{v} = tensor.extract {lists.source}[{r}, {col}] : {x_type}",
                  f"{on} = arith.cmpf one, {v}, {fzero} : f32", f"{on_i} = arith.extui {on} : i1 to i32",
                  f"{count2} = arith.addi {count}, {on_i} : i32", f"{le} = arith.cmpi sle, {count2}, {want} : i32",
                  f"{le_i} = arith.extui {le} : i1 to i32", f"{pos2} = arith.addi {pos}, {le_i} : i32"]
        count, pos = count2, pos2
    inside, p = fn.name("r"), fn.name("r")
    lines += [f"{inside} = arith.index_cast {pos} : i32 to index", f"{p} = arith.addi {base}, {inside} : index"]
    return lines, p


def first_above(fn: Fn, n: int, read, ci: str) -> tuple[list[str], str]:
    """Lines finding the smallest position p in [0, n) whose non-decreasing value (`read(p)`: the text of an
    op yielding it, i32) exceeds ci, or n - 1: ceil(log2 n) probes, unrolled. Returns (lines, p as an index)."""
    lo, hi, one = fn.name("r"), fn.name("r"), fn.name("r")
    lines = [f"{lo} = arith.constant 0 : index", f"{hi} = arith.constant {n - 1} : index",
             f"{one} = arith.constant 1 : index"]
    for _ in range(math.ceil(math.log2(n)) if n > 1 else 0):
        s, mid, p, gt, hi2, mid1, lo2 = (fn.name("r") for _ in range(7))
        lines += [f"{s} = arith.addi {lo}, {hi} : index", f"{mid} = arith.shrui {s}, {one} : index",
                  f"{p} = {read(mid)}",
                  f"{gt} = arith.cmpi sgt, {p}, {ci} : i32",
                  f"{hi2} = arith.select {gt}, {mid}, {hi} : index",
                  f"{mid1} = arith.addi {mid}, {one} : index",
                  f"{lo2} = arith.select {gt}, {lo}, {mid1} : index"]
        lo, hi = lo2, hi2
    # hi: the answer once lo and hi meet, or n - 1 if no value exceeds ci (lo may then pass it, to n)
    return lines, hi


def _search_body(fn: Fn, lists: ActiveLists, total: str, missing: int):
    """idx[r, c] = the position of row r's c-th active entry, or `missing` past its last (c >= total)."""
    r, c, ci, minus, found, pos, out = (fn.name("r") for _ in range(7))
    lines = [f"{r} = linalg.index 0 : index", f"{c} = linalg.index 1 : index",
             f"{ci} = arith.index_cast {c} : index to i32", f"{minus} = arith.constant {missing} : i32"]
    search, p = find_entry(fn, lists, r, ci)
    lines += search + [f"{found} = arith.cmpi slt, {ci}, {total} : i32",
                       f"{pos} = arith.index_cast {p} : index to i32",
                       f"{out} = arith.select {found}, {pos}, {minus} : i32"]
    return lines, [out]

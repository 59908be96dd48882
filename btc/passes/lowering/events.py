"""Event-driven kernels: lists of the active (non-zero) entries of a binary tensor, built with a
prefix sum, and the sum of the table rows those lists select.

A list holds `capacity` entries (from the expected activity); entries past it are summed by a
slower exact path, so a busier step costs more but is never wrong. An optimistic function leaves that
path out (and flags what it left), adding the spilled entries of a regrouped gradient with one scatter. Indices travel as i32: `index`
tensors may not cross an IREE dispatch boundary.
"""
from __future__ import annotations

import math

from btc.passes.lowering.text import Fn, tt

__all__ = ["ActiveLists", "active_lists", "gather_rows_sum", "any_flag"]


class ActiveLists:
    """A binary tensor's active entries, ready to be listed: `prefix`, the inclusive prefix sum of
    its flags along the list dimension (i32, the tensor's own shape), and `totals`, each list's length."""

    def __init__(self, prefix: str, totals: str, shape: tuple[int, int], along: int, capacity: int):
        self.prefix, self.totals, self.shape, self.along, self.capacity = prefix, totals, shape, along, capacity
        self.rows, self.n = (shape[0], shape[1]) if along == 1 else (shape[1], shape[0])


def active_lists(fn: Fn, x: str, shape: tuple[int, int], along: int, capacity: int) -> ActiveLists:
    """The active entries of binary x[shape] along dimension `along` (1: per row, the columns;
    0: per column, the rows): their flags' prefix sum and each list's length."""
    R0, R1 = shape
    rows, n = (R0, R1) if along == 1 else (R1, R0)
    i32 = tt(R0, R1, dtype="i32")
    flags = fn.generic([(x, "affine_map<(d0, d1) -> (d0, d1)>", tt(R0, R1))],
                       [(fn.empty((R0, R1), "i32"), "affine_map<(d0, d1) -> (d0, d1)>", i32)],
                       ["parallel", "parallel"], lambda a: _flag_body(fn, a))[0]
    prefix, scan_out, zero = fn.name("scan"), fn.empty((R0, R1), "i32"), fn.full((rows,), 0, "i32")
    fn.emit(f"{prefix}:2 = iree_linalg_ext.scan dimension({along}) inclusive(true) ins({flags} : {i32}) "
            f"outs({scan_out}, {zero} : {i32}, {tt(rows, dtype='i32')}) {{")
    a, b, s = fn.name("a"), fn.name("a"), fn.name("r")
    fn.emit(f"^bb0({a}: i32, {b}: i32):")
    fn.emit(f"  {s} = arith.addi {a}, {b} : i32")
    fn.emit(f"  iree_linalg_ext.yield {s} : i32")
    fn.emit(f"}} -> {i32}, {tt(rows, dtype='i32')}")
    totals = _row_totals(fn, f"{prefix}#0", R0, R1, along)
    return ActiveLists(f"{prefix}#0", totals, shape, along, max(1, min(capacity, n)))


def gather_rows_sum(fn: Fn, lists: ActiveLists, table: str, table_rows: int, cols: int, acc: str,
                    spill: int = 0) -> str:
    """acc[r, o] + sum over r's active entries e of table[e, o].

    In an optimistic function (fn.optimistic) the slow path below is left out: up to `spill` entries past
    the lists' capacity, over all lists, are gathered into one list and their rows added with one scatter;
    its flag in fn.overflows says whether entries were left out (the runtime then runs the exact function).

    The first `capacity` entries of every list are found, then their table rows gathered and summed.
    Entries past the capacity, if a list is that long, are summed by a scalar loop in a second kernel
    whose trip count is zero for every shorter list: exact whatever the activity. That kernel costs
    about 7 ns per output entry even when it has nothing to add, and running it only when some list
    overflows would need the flag read back to the host inside train_chunk's loop (in IREE 3.13 that
    kept ~60 MB per call alive, peak RSS x14.6 at T=10,000, and a few tens of read-backs per iteration
    failed to compile: "failed to solve for timepoint coverage"). Hence train_chunk_fast (fn.optimistic),
    which reads one flag back per call, after the chunk.
    """
    C, rows = lists.capacity, lists.rows
    acc_type, idx_type = tt(rows, cols), tt(rows, C, dtype="i32")
    idx = fn.generic([(lists.totals, "affine_map<(d0, d1) -> (d0)>", tt(rows, dtype="i32"))],
                     [(fn.empty((rows, C), "i32"), "affine_map<(d0, d1) -> (d0, d1)>", idx_type)],
                     ["parallel", "parallel"], lambda a: _search_body(fn, lists, a[0]))[0]

    # the listed rows of the table, gathered whole ([rows, C, cols]; -1 reads row 0, masked below),
    # then summed over the list: IREE vectorizes the row copies of iree_linalg_ext.gather, where a
    # tensor.extract inside a linalg.generic became scalar loads (2x slower at 32x2048x2048)
    clamped = fn.generic([(idx, "affine_map<(d0, d1) -> (d0, d1)>", idx_type)],
                         [(fn.empty((rows, C), "i32"), "affine_map<(d0, d1) -> (d0, d1)>", idx_type)],
                         ["parallel", "parallel"], lambda a: _clamp_body(fn, a))[0]
    rows_type = tt(rows, C, cols)
    gathered = fn.name("rows")
    fn.emit(f"{gathered} = iree_linalg_ext.gather dimension_map = [0] ins({table}, {clamped} : "
            f"{tt(table_rows, cols)}, {idx_type}) outs({fn.empty((rows, C, cols))} : {rows_type}) -> {rows_type}")

    def masked_sum(a):
        zero_i, zero_f, ok, z, out = (fn.name("r") for _ in range(5))
        return [f"{zero_i} = arith.constant 0 : i32", f"{zero_f} = arith.constant 0.0 : f32",
                f"{ok} = arith.cmpi sge, {a[1]}, {zero_i} : i32", f"{z} = arith.select {ok}, {a[0]}, {zero_f} : f32",
                f"{out} = arith.addf {a[2]}, {z} : f32"], [out]

    summed = fn.generic([(gathered, "affine_map<(d0, d1, d2) -> (d0, d1, d2)>", rows_type),
                         (idx, "affine_map<(d0, d1, d2) -> (d0, d1)>", idx_type)],
                        [(acc, "affine_map<(d0, d1, d2) -> (d0, d2)>", acc_type)],
                        ["parallel", "reduction", "parallel"], masked_sum)[0]
    if C == lists.n:
        return summed
    if fn.optimistic:
        if fn.overflows is None:
            raise AssertionError("an optimistic event-driven sum outside the time loop: nothing would read its flag")
        if spill:
            summed, spilled_before = _spill(fn, lists, table, table_rows, cols, summed, spill)
            fn.overflows.append(_any_longer(fn, spilled_before, rows, spill))  # its last entry: all spilled
        else:
            fn.overflows.append(_any_longer(fn, lists.totals, rows, C))
        return summed

    def overflow(a):
        r, o, n, first, one, c, it, res, v, s = (fn.name("r") for _ in range(10))
        lines = [f"{r} = linalg.index 0 : index", f"{o} = linalg.index 1 : index",
                 f"{n} = arith.index_cast {a[0]} : i32 to index", f"{first} = arith.constant {C} : index",
                 f"{one} = arith.constant 1 : index",
                 f"{res} = scf.for {c} = {first} to {n} step {one} iter_args({it} = {a[1]}) -> (f32) {{"]
        ci = fn.name("r")
        lines.append(f"  {ci} = arith.index_cast {c} : index to i32")
        body, pos = _binary_search(fn, lists, r, ci)
        lines += ["  " + line for line in body]
        lines += [f"  {v} = tensor.extract {table}[{pos}, {o}] : {tt(table_rows, cols)}",
                  f"  {s} = arith.addf {it}, {v} : f32", f"  scf.yield {s} : f32", "}"]
        return lines, [res]

    return fn.generic([(lists.totals, "affine_map<(d0, d1) -> (d0)>", tt(rows, dtype="i32"))],
                      [(summed, "affine_map<(d0, d1) -> (d0, d1)>", acc_type)], ["parallel", "parallel"], overflow)[0]


def any_flag(fn: Fn, flags: list[str], into: str) -> str:
    """`into` (a rank-0 f32 flag) raised to 1 if any of `flags` is: the flags are stacked into one tensor and
    reduced on the device (reading each back to the host inside the time loop is what IREE 3.13 could not take)."""
    n = len(flags)
    stacked = fn.empty((n,))
    for i, f in enumerate(flags):
        one, put = fn.name("fl"), fn.name("fl")
        fn.emit(f"{one} = tensor.expand_shape {f} [] output_shape [1] : {tt()} into {tt(1)}")
        fn.emit(f"{put} = tensor.insert_slice {one} into {stacked}[{i}] [1] [1] : {tt(1)} into {tt(n)}")
        stacked = put

    def body(a):
        out = fn.name("r")
        return [f"{out} = arith.maximumf {a[1]}, {a[0]} : f32"], [out]
    return fn.generic([(stacked, "affine_map<(d0) -> (d0)>", tt(n))], [(into, "affine_map<(d0) -> ()>", tt())],
                      ["reduction"], body)[0]


def _any_longer(fn: Fn, counts: str, rows: int, limit: int) -> str:
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


def _spill(fn: Fn, lists: ActiveLists, table: str, table_rows: int, cols: int, acc: str, spill: int):
    """acc plus the table rows of the first `spill` entries past the lists' capacity (all lists together, in
    list order), scattered onto their lists' rows. Returns (the sum, the inclusive prefix sum over lists of
    each list's entries past the capacity: its last entry counts them all)."""
    C, rows = lists.capacity, lists.rows
    i32 = tt(rows, dtype="i32")

    def excess_body(a):
        cap, d, z, out = (fn.name("r") for _ in range(4))
        return [f"{cap} = arith.constant {C} : i32", f"{d} = arith.subi {a[0]}, {cap} : i32",
                f"{z} = arith.constant 0 : i32", f"{out} = arith.maxsi {d}, {z} : i32"], [out]
    excess = fn.generic([(lists.totals, "affine_map<(d0) -> (d0)>", i32)],
                        [(fn.empty((rows,), "i32"), "affine_map<(d0) -> (d0)>", i32)], ["parallel"], excess_body)[0]
    scan, zero = fn.name("scan"), fn.full((), 0, "i32")
    fn.emit(f"{scan}:2 = iree_linalg_ext.scan dimension(0) inclusive(true) ins({excess} : {i32}) "
            f"outs({fn.empty((rows,), 'i32')}, {zero} : {i32}, {tt(dtype='i32')}) {{")
    a, b, s = fn.name("a"), fn.name("a"), fn.name("r")
    fn.emit(f"^bb0({a}: i32, {b}: i32):")
    fn.emit(f"  {s} = arith.addi {a}, {b} : i32")
    fn.emit(f"  iree_linalg_ext.yield {s} : i32")
    fn.emit(f"}} -> {i32}, {tt(dtype='i32')}")
    prefix = f"{scan}#0"

    def slot_body(a):
        """Spilled entry j: its list r (the first with prefix[r] > j) and its table row (-1 past the last)."""
        j, ji, last, total = (fn.name("r") for _ in range(4))
        lines = [f"{j} = linalg.index 0 : index", f"{ji} = arith.index_cast {j} : index to i32",
                 f"{last} = arith.constant {rows - 1} : index", f"{total} = tensor.extract {prefix}[{last}] : {i32}"]
        search, lo = _first_above(fn, rows, lambda mid: f"tensor.extract {prefix}[{mid}] : {i32}", ji)
        lines += search
        # within list lo: entry C + j - (the entries spilled by the lists before it)
        before, mine, first, k, cap = (fn.name("r") for _ in range(5))
        lines += [f"{before} = tensor.extract {prefix}[{lo}] : {i32}", f"{mine} = tensor.extract {excess}[{lo}] : {i32}",
                  f"{first} = arith.subi {before}, {mine} : i32", f"{cap} = arith.constant {C} : i32",
                  f"{k} = arith.subi {ji}, {first} : i32"]
        kc = fn.name("r")
        lines.append(f"{kc} = arith.addi {k}, {cap} : i32")
        search, pos = _binary_search(fn, lists, lo, kc)
        found, posi, minus, out, row = (fn.name("r") for _ in range(5))
        lines += search + [f"{found} = arith.cmpi slt, {ji}, {total} : i32", f"{posi} = arith.index_cast {pos} : index to i32",
                           f"{minus} = arith.constant -1 : i32", f"{out} = arith.select {found}, {posi}, {minus} : i32",
                           f"{row} = arith.index_cast {lo} : index to i32"]
        return lines, [out, row]

    s_type = tt(spill, dtype="i32")
    position, list_index = fn.generic([], [(fn.empty((spill,), "i32"), "affine_map<(d0) -> (d0)>", s_type),
                              (fn.empty((spill,), "i32"), "affine_map<(d0) -> (d0)>", s_type)], ["parallel"], slot_body)
    clamped = fn.generic([(position, "affine_map<(d0) -> (d0)>", s_type)],
                         [(fn.empty((spill,), "i32"), "affine_map<(d0) -> (d0)>", s_type)], ["parallel"],
                         lambda a: _clamp_body(fn, a))[0]
    rows_type = tt(spill, cols)
    gathered = fn.name("rows")
    fn.emit(f"{gathered} = iree_linalg_ext.gather dimension_map = [0] ins({table}, {clamped} : "
            f"{tt(table_rows, cols)}, {s_type}) outs({fn.empty((spill, cols))} : {rows_type}) -> {rows_type}")

    def masked(a):
        z, zf, ok, out = (fn.name("r") for _ in range(4))
        return [f"{z} = arith.constant 0 : i32", f"{zf} = arith.constant 0.0 : f32",
                f"{ok} = arith.cmpi sge, {a[1]}, {z} : i32", f"{out} = arith.select {ok}, {a[0]}, {zf} : f32"], [out]
    updates = fn.generic([(gathered, "affine_map<(d0, d1) -> (d0, d1)>", rows_type),
                          (position, "affine_map<(d0, d1) -> (d0)>", s_type)],
                         [(fn.empty((spill, cols)), "affine_map<(d0, d1) -> (d0, d1)>", rows_type)],
                         ["parallel", "parallel"], masked)[0]
    index = fn.name("sidx")
    fn.emit(f"{index} = tensor.expand_shape {list_index} [[0, 1]] output_shape [{spill}, 1] : {s_type} into "
            f"{tt(spill, 1, dtype='i32')}")
    out, x, y, r = fn.name("scat"), fn.name("a"), fn.name("a"), fn.name("r")
    fn.emit(f"{out} = iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins({updates}, {index} : "
            f"{rows_type}, {tt(spill, 1, dtype='i32')}) outs({acc} : {tt(rows, cols)}) {{")
    fn.emit(f"^bb0({x}: f32, {y}: f32):")
    fn.emit(f"  {r} = arith.addf {x}, {y} : f32")
    fn.emit(f"  iree_linalg_ext.yield {r} : f32")
    fn.emit(f"}} -> {tt(rows, cols)}")
    return out, prefix


def _clamp_body(fn: Fn, a):
    z, r = fn.name("r"), fn.name("r")
    return [f"{z} = arith.constant 0 : i32", f"{r} = arith.maxsi {a[0]}, {z} : i32"], [r]


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


def _binary_search(fn: Fn, lists: ActiveLists, r: str, ci: str) -> tuple[list[str], str]:
    """Lines finding the smallest position p with prefix[r, p] > ci (row r's ci-th active entry,
    if it has one): ceil(log2 n) probes, unrolled. Returns (lines, p as an index)."""
    at_type = tt(*lists.shape, dtype="i32")
    at = (lambda mid: f"[{r}, {mid}]") if lists.along == 1 else (lambda mid: f"[{mid}, {r}]")
    return _first_above(fn, lists.n, lambda mid: f"tensor.extract {lists.prefix}{at(mid)} : {at_type}", ci)


def _first_above(fn: Fn, n: int, read, ci: str) -> tuple[list[str], str]:
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
    return lines, lo


def _search_body(fn: Fn, lists: ActiveLists, total: str):
    """idx[r, c] = the position of row r's c-th active entry, or -1 past its last (c >= total)."""
    r, c, ci, minus, found, pos, out = (fn.name("r") for _ in range(7))
    lines = [f"{r} = linalg.index 0 : index", f"{c} = linalg.index 1 : index",
             f"{ci} = arith.index_cast {c} : index to i32", f"{minus} = arith.constant -1 : i32"]
    search, p = _binary_search(fn, lists, r, ci)
    lines += search + [f"{found} = arith.cmpi slt, {ci}, {total} : i32",
                       f"{pos} = arith.index_cast {p} : index to i32",
                       f"{out} = arith.select {found}, {pos}, {minus} : i32"]
    return lines, [out]

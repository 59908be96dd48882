"""Event-driven kernels: the sum of the table rows that lists of active entries select (active_lists.py
makes the lists).

A list holds `capacity` entries (from the expected activity); entries past it are summed by a
slower exact path, so a busier step costs more but is never wrong. An optimistic function leaves that
path out (and flags what it left), summing the spilled entries of a regrouped gradient by tiles
(_spilled). Indices travel as i32: `index` tensors may not cross an IREE dispatch boundary.
"""
from __future__ import annotations

from btc.passes.lowering.active_lists import (ActiveLists, any_longer, find_entry, first_above, list_positions,
                                                scan_along)
from btc.passes.lowering.bodies import sum_body
from btc.passes.lowering.text import Fn, tt
from btc.passes.plan_events import list_capacity

__all__ = ["gather_rows_sum", "list_capacity_of", "padded_table", "any_flag"]


def list_capacity_of(fn: Fn, n: int, activity: float) -> int:
    """The capacity of an active list over n positions in this function: room for `fn.headroom` times
    the expected activity (plan_events.list_capacity)."""
    return list_capacity(n, min(1.0, activity * fn.headroom))


def padded_table(fn: Fn, table: str, rows: int, cols: int) -> str:
    """table[rows, cols] with a zero row after its last: list entries past a list's end read it, so
    gathered rows are summed without a mask (half the time of a masked sum at 32x32x2048)."""
    out = fn.name("pad")
    fn.emit(f"{out} = tensor.insert_slice {table} into {fn.full((rows + 1, cols), 0.0)}[0, 0] [{rows}, {cols}] "
            f"[1, 1] : {tt(rows, cols)} into {tt(rows + 1, cols)}")
    return out


# columns per workgroup of a gathered-row sum: alone, one row by 1024 was within noise of the best of 1-64
# rows by 128-8192 columns at [8192, 12, 8192], [2048, 12, 2048] and [32, 96, 8192]; IREE's 32 x 32 took 1.8-2.3x
ROW_TILE = 1024


def gather_rows_sum(fn: Fn, lists: ActiveLists, table: str, table_rows: int, cols: int, acc: str,
                    spill: int = 0, padded: bool = False) -> str:
    """acc[r, o] + sum over r's active entries e of table[e, o]. `padded`: the table has a zero row
    after its table_rows rows (padded_table), which the lists' unused entries read.

    In an optimistic function (fn.optimistic) the slow path below is left out: with a `spill` budget (and a
    padded table), about that many entries past the lists' capacity are summed by `_spilled`; flags in
    fn.overflows say whether entries were left out (the runtime then runs the exact function).

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
    # summed into zeros, acc added after: a sum into its producer's result (a matmul) fused with it, badly
    acc_in, acc = acc, fn.full((rows, cols), 0.0)
    idx = list_positions(fn, lists, table_rows if padded else -1)
    table_type = tt(table_rows + 1 if padded else table_rows, cols)

    # unpadded: -1 reads row 0, masked in the sum
    clamped = idx if padded else fn.generic([(idx, "affine_map<(d0, d1) -> (d0, d1)>", idx_type)],
                                            [(fn.empty((rows, C), "i32"), "affine_map<(d0, d1) -> (d0, d1)>", idx_type)],
                                            ["parallel", "parallel"], lambda a: _clamp_body(fn, a))[0]
    summed = _summed_rows(fn, table, table_rows + 1 if padded else table_rows, clamped, rows, C, cols, acc,
                          None if padded else idx)
    summed = fn.map([acc_in, summed], [(rows, cols)] * 2, (rows, cols), 1, sum_body)[0]
    if C == lists.n:
        return summed
    fn.capped = True
    if fn.optimistic:
        if fn.overflows is None:
            raise AssertionError("an optimistic event-driven sum outside the time loop: nothing would read its flag")
        if spill:
            if not padded:
                raise AssertionError("spilled entries read the zero row of a padded table")
            summed, flags = _spilled(fn, lists, table, table_rows, cols, summed, spill)
            fn.overflows.extend(flags)
        else:
            fn.overflows.append(any_longer(fn, lists.totals, rows, C))
        return summed

    def overflow(a):
        r, o, n, first, one, c, it, res, v, s = (fn.name("r") for _ in range(10))
        lines = [f"{r} = linalg.index 0 : index", f"{o} = linalg.index 1 : index",
                 f"{n} = arith.index_cast {a[0]} : i32 to index", f"{first} = arith.constant {C} : index",
                 f"{one} = arith.constant 1 : index",
                 f"{res} = scf.for {c} = {first} to {n} step {one} iter_args({it} = {a[1]}) -> (f32) {{"]
        ci = fn.name("r")
        lines.append(f"  {ci} = arith.index_cast {c} : index to i32")
        body, pos = find_entry(fn, lists, r, ci)
        lines += ["  " + line for line in body]
        lines += [f"  {v} = tensor.extract {table}[{pos}, {o}] : {table_type}",
                  f"  {s} = arith.addf {it}, {v} : f32", f"  scf.yield {s} : f32", "}"]
        return lines, [res]

    return fn.generic([(lists.totals, "affine_map<(d0, d1) -> (d0)>", tt(rows, dtype="i32"))],
                      [(summed, "affine_map<(d0, d1) -> (d0, d1)>", acc_type)], ["parallel", "parallel"], overflow)[0]


def _summed_rows(fn: Fn, table: str, table_rows: int, idx: str, rows: int, C: int, cols: int, acc: str,
                 mask: str | None = None) -> str:
    """acc[r, o] + sum over c of table[idx[r, c], o] (where mask[r, c] >= 0, if given). The listed rows are
    gathered whole ([rows, C, cols]), then summed: IREE vectorizes the row copies of iree_linalg_ext.gather,
    where a tensor.extract inside a linalg.generic became scalar loads (2x slower at 32x2048x2048)."""
    idx_type, rows_type = tt(rows, C, dtype="i32"), tt(rows, C, cols)
    gathered = fn.gather_rows(table, table_rows, cols, idx, (rows, C))

    def masked_sum(a):
        zero_i, zero_f, ok, z, out = (fn.name("r") for _ in range(5))
        return [f"{zero_i} = arith.constant 0 : i32", f"{zero_f} = arith.constant 0.0 : f32",
                f"{ok} = arith.cmpi sge, {a[1]}, {zero_i} : i32", f"{z} = arith.select {ok}, {a[0]}, {zero_f} : f32",
                f"{out} = arith.addf {a[2]}, {z} : f32"], [out]

    def plain_sum(a):
        out = fn.name("r")
        return [f"{out} = arith.addf {a[1]}, {a[0]} : f32"], [out]

    # loops (r, o, c), workgroups of one row by up to ROW_TILE columns: each listed row is read in long runs
    # (IREE's own 32 x 32 tiles read 128 bytes of it at a time: 1.8-2.3x slower at [8192, 12, 8192], [2048, 12, 2048])
    return fn.generic([(gathered, "affine_map<(d0, d1, d2) -> (d0, d2, d1)>", rows_type)]
                      + ([(mask, "affine_map<(d0, d1, d2) -> (d0, d2)>", idx_type)] if mask else []),
                      [(acc, "affine_map<(d0, d1, d2) -> (d0, d1)>", tt(rows, cols))],
                      ["parallel", "parallel", "reduction"], masked_sum if mask else plain_sum,
                      tiles=(1, min(cols, ROW_TILE), 0))[0]


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


def _spilled(fn: Fn, lists: ActiveLists, table: str, table_rows: int, cols: int, acc: str, spill: int):
    """acc plus the entries past the lists' capacity, about `spill` of them at most, for a padded table.

    The entries past the capacity are cut into tiles of D, each tile within one list (a list with e such
    entries takes ceil(e / D) tiles, numbered in list order); each tile's table rows are gathered and
    summed; each list with tiles ("hot") sums its up to P tiles; each list's row pulls its hot sum (the zero
    row if it has none). Every step is a gather: scatters cost 4-5x a gather per entry in IREE 3.13, and
    the tiles follow the entries wherever they fall (in recurrent_lif N=2048 ~110 of 2048 lists of 16 overflow
    per block, by up to 62 entries). Returns (the sum, [flags: more tiles than S, a list needing more than P])."""
    C, rows = lists.capacity, lists.rows
    D = max(1, min(C, lists.n - C))  # entries per tile
    S = max(1, spill // D)  # tiles, and hot lists: each hot list takes a tile at least
    P = max(1, min(8, -(-(lists.n - C) // D)))  # tiles per list
    i32, m1 = tt(rows, dtype="i32"), "affine_map<(d0) -> (d0)>"

    def tiles_body(a):
        cap, d, z, excess, dm1, up, dd, tiles, is_hot, flag = (fn.name("r") for _ in range(10))
        return [f"{cap} = arith.constant {C} : i32", f"{d} = arith.subi {a[0]}, {cap} : i32",
                f"{z} = arith.constant 0 : i32", f"{excess} = arith.maxsi {d}, {z} : i32",
                f"{dm1} = arith.constant {D - 1} : i32", f"{up} = arith.addi {excess}, {dm1} : i32",
                f"{dd} = arith.constant {D} : i32", f"{tiles} = arith.divsi {up}, {dd} : i32",
                f"{is_hot} = arith.cmpi sgt, {excess}, {z} : i32", f"{flag} = arith.extui {is_hot} : i1 to i32"], \
            [excess, tiles, flag]
    excess, tiles, hot = fn.generic([(lists.totals, m1, i32)], [(fn.empty((rows,), "i32"), m1, i32) for _ in range(3)],
                                    ["parallel"], tiles_body)
    tile_end, rank = scan_along(fn, tiles, (rows,), 0), scan_along(fn, hot, (rows,), 0)  # inclusive: list r's tiles end at tile_end[r]
    def first_tile(r, lines):
        end, mine, first = fn.name("r"), fn.name("r"), fn.name("r")
        lines += [f"{end} = tensor.extract {tile_end}[{r}] : {i32}", f"{mine} = tensor.extract {tiles}[{r}] : {i32}",
                  f"{first} = arith.subi {end}, {mine} : i32"]
        return first, mine

    def entry_body(_):
        """Tile s's entry d: list r's entry C + k*D + d, r the list of tile s and k its place among r's tiles."""
        lines, si, di, total, r = _cell_and_list(fn, tile_end, rows)
        first, _ = first_tile(r, lines)
        k, dd, kd, j, mine, cap, e, in_tile, in_list, ok, pos_i, none, out = (fn.name("r") for _ in range(13))
        lines += [f"{k} = arith.subi {si}, {first} : i32", f"{dd} = arith.constant {D} : i32",
                  f"{kd} = arith.muli {k}, {dd} : i32",
                  f"{j} = arith.addi {kd}, {di} : i32", f"{mine} = tensor.extract {excess}[{r}] : {i32}",
                  f"{cap} = arith.constant {C} : i32", f"{e} = arith.addi {j}, {cap} : i32"]
        search, pos = find_entry(fn, lists, r, e)
        lines += search + [f"{in_tile} = arith.cmpi slt, {si}, {total} : i32", f"{in_list} = arith.cmpi slt, {j}, {mine} : i32",
                           f"{ok} = arith.andi {in_tile}, {in_list} : i1", f"{pos_i} = arith.index_cast {pos} : index to i32",
                           f"{none} = arith.constant {table_rows} : i32", f"{out} = arith.select {ok}, {pos_i}, {none} : i32"]
        return lines, [out]

    def hot_body(_):
        """Hot list h's tile p: its tile number, or the zero row."""
        lines, hi, pi, n_hot, r = _cell_and_list(fn, rank, rows)
        first, mine = first_tile(r, lines)
        is_hot, inside, ok, t, none, held, ok2, out = (fn.name("r") for _ in range(8))
        lines += [f"{is_hot} = arith.cmpi slt, {hi}, {n_hot} : i32", f"{inside} = arith.cmpi slt, {pi}, {mine} : i32",
                  f"{ok} = arith.andi {is_hot}, {inside} : i1", f"{t} = arith.addi {first}, {pi} : i32",
                  f"{none} = arith.constant {S} : i32", f"{held} = arith.cmpi slt, {t}, {none} : i32",
                  # (past S tiles the chunk is flagged, but the gather must still read inside its table)
                  f"{ok2} = arith.andi {ok}, {held} : i1", f"{out} = arith.select {ok2}, {t}, {none} : i32"]
        return lines, [out]

    m2 = "affine_map<(d0, d1) -> (d0, d1)>"
    entries = fn.generic([], [(fn.empty((S, D), "i32"), m2, tt(S, D, dtype="i32"))], ["parallel", "parallel"], entry_body)[0]
    tile_sums = _summed_rows(fn, table, table_rows + 1, entries, S, D, cols, fn.full((S, cols), 0.0))
    hot_tiles = fn.generic([], [(fn.empty((S, P), "i32"), m2, tt(S, P, dtype="i32"))], ["parallel", "parallel"], hot_body)[0]
    hot_sums = _summed_rows(fn, padded_table(fn, tile_sums, S, cols), S + 1, hot_tiles, S, P, cols,
                            fn.full((S, cols), 0.0))
    slots = fn.generic([(hot, m1, i32), (rank, m1, i32)], [(fn.empty((rows,), "i32"), m1, i32)], ["parallel"],
                       lambda a: _slot_lines(fn, a, S))[0]
    pulled = fn.gather_rows(padded_table(fn, hot_sums, S, cols), S + 1, cols, slots, (rows,))
    total = fn.map([acc, pulled], [(rows, cols)] * 2, (rows, cols), 1, sum_body)[0]
    return total, [any_longer(fn, tile_end, rows, S), any_longer(fn, tiles, rows, P)]


def _cell_and_list(fn: Fn, prefix: str, rows: int):
    """Lines for a 2-D generic's body: its indices (i, j) as i32, the last entry of the inclusive prefix sum
    `prefix[rows]` (the total) and r, the first position whose prefix exceeds i (the list holding item i)."""
    i_, j_, ii, ji, last, total = (fn.name("r") for _ in range(6))
    i32 = tt(rows, dtype="i32")
    lines = [f"{i_} = linalg.index 0 : index", f"{j_} = linalg.index 1 : index",
             f"{ii} = arith.index_cast {i_} : index to i32", f"{ji} = arith.index_cast {j_} : index to i32",
             f"{last} = arith.constant {rows - 1} : index", f"{total} = tensor.extract {prefix}[{last}] : {i32}"]
    search, r = first_above(fn, rows, lambda mid: f"tensor.extract {prefix}[{mid}] : {i32}", ii)
    return lines + search, ii, ji, total, r


def _slot_lines(fn: Fn, a, hot: int):
    """A list's row in the hot sums: its rank among the hot lists (a[1] - 1) if it is hot (a[0]), else the zero row."""
    one, z, r, cap, is_hot, last, out = (fn.name("r") for _ in range(7))
    return [f"{one} = arith.constant 1 : i32", f"{z} = arith.constant 0 : i32", f"{r} = arith.subi {a[1]}, {one} : i32",
            f"{cap} = arith.constant {hot} : i32", f"{is_hot} = arith.cmpi ne, {a[0]}, {z} : i32",
            f"{last} = arith.minsi {r}, {cap} : i32", f"{out} = arith.select {is_hot}, {last}, {cap} : i32"], [out]


def _clamp_body(fn: Fn, a):
    z, r = fn.name("r"), fn.name("r")
    return [f"{z} = arith.constant 0 : i32", f"{r} = arith.maxsi {a[0]}, {z} : i32"], [r]



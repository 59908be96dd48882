"""Sparse projections: weights only at the connected pairs, stored as the vector W[k] (pairs sorted
by (pre, post)), and the index tables the step reads them through.

Layout (recorded in the manifest; the tables are built on the host, sparse_layout.py): the step pulls
per postsynaptic neuron, an ELL table of its incoming pairs (`in_col`, `in_k`); pulling a signal back through the weights (BPTT, the within-step
learning signal) pushes per presynaptic neuron (`out_col`, `out_k`). Each side is one table padded to
its largest degree when that wastes little ("ell"), else rows are bucketed by degree rounded up to a
power of two, one table per bucket ("sliced-ell": padding under 2x nnz whatever the tail, as a
connectome's hubs need), and the buckets' results are read back per neuron through `pos`.
Each product is one linalg.generic per bucket reading the signal by scalar loads. Padded slots read
weight 0 and their gradient is never read.

The tables are immutable module globals with dense i32 initial values, built only when read.
"""
from __future__ import annotations

from dataclasses import dataclass

from btc.passes.lowering.events import padded_table
from btc.passes.lowering.shared import onto_weights, pair_weights
from btc.passes.lowering.sparse_layout import Side, SparseLayout
from btc.passes.lowering.text import Fn, tt

__all__ = ["SparseLayout", "SparseWeights", "sparse_weights", "propagate", "pull_back", "outer_grad", "slot_shapes",
           "outer_grad_slots", "slots_to_vector", "gather_columns", "slots_to_pairs"]


@dataclass
class SparseWeights:
    """A sparse projection's weights in one function: the vector, each bucket's weights of the pull
    (and, where needed, push) side, and the loaded index tables (SSA names)."""

    layout: SparseLayout
    flat: str
    pull: list  # [rows, width] per pull bucket
    push: list | None  # per push bucket, or None where nothing pulls back through the weights
    t: dict  # table name -> SSA value
    events: str | None = None  # [I + 1, push_width]: the weights at ev_k (0 at its padding), for spike-driven sums


class _Tables(dict):
    """Index tables loaded on first use: a module declares only the tables it reads."""

    def __init__(self, load_table):
        super().__init__()
        self.load_table = load_table

    def __missing__(self, name: str) -> str:
        self[name] = self.load_table(name)
        return self[name]


def sparse_weights(fn: Fn, layout: SparseLayout, flat: str, load_table, push: bool,
                   hoisted: bool = False, events: str = "") -> SparseWeights:
    """Gather the vector W into its pull buckets (and push buckets if `push`: something pulls a signal
    back through these weights); `load_table(name)` gives a table's SSA value. `hoisted`: gathered
    before the time loop, and kept there by an optimization barrier: fused into the products inside
    the loop, the gather re-read W at random every step (measured at 135,000 neurons and 3.1 million
    pairs: most of a step's time). `events`: "propagation" or "gradient" where spikes push the pairs
    (sparse_events.py), "" elsewhere."""
    t = _Tables(load_table)
    if layout.tie is not None:  # a convolution: the kernel read out at every pair
        flat = pair_weights(fn, flat, t["tie"], layout.n_weights, layout.nnz, layout.scale)

    def side_weights(side: Side) -> list:
        taken = [_take(fn, flat, layout.nnz, t[f"{side.prefix}_k{b}"], (n, w))
                 for b, (w, n) in enumerate(zip(side.widths, side.counts))]
        return [fn.barrier(v, (n, w)) for v, w, n in zip(taken, side.widths, side.counts)] if hoisted else taken

    ev = None
    if events:  # the spike-driven tables (sparse_events.py), loaded before the loop that reads them
        shape = (layout.I + 1, layout.push_width)
        ev_k, _ = t["ev_k"], t["ev_post"]
        if events == "propagation":  # and the weights at ev_k, kept there like the buckets
            ev = _take(fn, flat, layout.nnz, ev_k, shape)
            ev = fn.barrier(ev, shape) if hoisted else ev
    return SparseWeights(layout, flat, side_weights(layout.pull), side_weights(layout.push) if push else None, t, ev)


def propagate(fn: Fn, w: SparseWeights, x: str, B: int, acc: str | None) -> str:
    """acc + x[B, I] @ W: per postsynaptic neuron, its incoming pairs."""
    return _side_product(fn, w, w.layout.pull, w.pull, x, B, w.layout.I, w.layout.O, acc)


def pull_back(fn: Fn, w: SparseWeights, a: str, B: int, acc: str | None) -> str:
    """acc + a[B, O] @ W^T: per presynaptic neuron, its outgoing pairs."""
    assert w.push is not None, f"{w.layout.name}: push weights were not gathered"
    return _side_product(fn, w, w.layout.push, w.push, a, B, w.layout.O, w.layout.I, acc)


def _side_product(fn: Fn, w: SparseWeights, side: Side, weights: list, x: str, B: int, n_in: int, n_out: int,
                  acc: str | None) -> str:
    if side.whole:
        return _ell_product(fn, x, B, n_in, w.t[f"{side.prefix}_col0"], weights[0], n_out, side.widths[0], acc)
    parts = [_ell_product(fn, x, B, n_in, w.t[f"{side.prefix}_col{b}"], weights[b], n, width, None)
             for b, (width, n) in enumerate(zip(side.widths, side.counts))]
    joined = _concat(fn, parts, [(B, n) for n in side.counts], (B, side.rows + 1))  # a last zero column
    return _read_back(fn, joined, w.t[f"{side.prefix}_pos"], B, side.rows + 1, n_out, acc)


def outer_grad(fn: Fn, w: SparseWeights, x: str, a: str, B: int, acc: str) -> str:
    """acc[k] + sum_b x[b, pre_k] * a[b, post_k]: the outer product x^T a at the pairs, summed per
    pull slot (x by scalar loads), then read at each pair's slot."""
    zeros = [fn.full(shape, 0.0) for shape in slot_shapes(w.layout)]
    return slots_to_vector(fn, w, outer_grad_slots(fn, w, x, a, B, zeros, tiled=True), acc)


def slot_shapes(layout: SparseLayout) -> list[tuple[int, int]]:
    """The pull buckets' shapes: a gradient kept per pull slot (one tensor per bucket)."""
    return [(n, width) for width, n in zip(layout.pull.widths, layout.pull.counts)]


def outer_grad_slots(fn: Fn, w: SparseWeights, x: str, a: str, B: int, accs: list[str],
                     tiled: bool = False) -> list[str]:
    """accs[bucket][r, f] + sum_b x[b, col] * a[b, row]: the outer product x^T a per pull slot, kept
    there. A time loop accumulates in slots and reads the pairs once after it (slots_to_vector):
    read every step, the pair order's scattered reads cost more than the product (1.4x slots at
    3.1 million pairs). `tiled`: the products carry _slot_products' tile hint, for accs that are fresh zeros
    (a product summed into another's result is fused with it, and IREE takes one configuration a dispatch)."""
    L, side = w.layout, w.layout.pull
    x_rows = _transposed(fn, x, B, L.I)  # once for every bucket
    out = []
    for b, ((n, width), acc) in enumerate(zip(slot_shapes(L), accs)):
        a_b = a if side.whole else _columns(fn, a, w.t[f"in_rows{b}"], B, L.O, n)
        out.append(_slot_products(fn, x_rows, a_b, w.t[f"in_col{b}"], B, L.I, n, width, acc, tiled))
    return out


def slots_to_vector(fn: Fn, w: SparseWeights, per_slot: list[str], acc: str) -> str:
    """acc[k] + the per-slot values at pair k's pull slot."""
    L, side = w.layout, w.layout.pull
    flat = [_collapse(fn, s, shape) for s, shape in zip(per_slot, slot_shapes(L))]
    joined = flat[0] if side.whole else _concat(fn, flat, [(n * wd,) for n, wd in slot_shapes(L)], (side.slots,))
    return onto_weights(fn, L, lambda: w.t["uses"],
                        lambda a: _read_slots(fn, joined, w.t["in_slot"], side.slots, L.nnz, a), acc)


def gather_columns(fn: Fn, w: SparseWeights, x: str, B: int) -> str:
    """x[b, pre_t[f, j]] as [B, F_in, O]: each pull slot's presynaptic value (D-RTRL's drive)."""
    L = w.layout
    shape = (B, L.fan_in, L.O)

    def body(v):
        b, p, out = fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{b} = linalg.index 0 : index", f"{p} = arith.index_cast {v[0]} : i32 to index",
                f"{out} = tensor.extract {x}[{b}, {p}] : {tt(B, L.I)}"], [out]

    return fn.generic([(w.t["pre_t"], "affine_map<(d0, d1, d2) -> (d1, d2)>", tt(L.fan_in, L.O, dtype="i32"))],
                      [(fn.empty(shape), "affine_map<(d0, d1, d2) -> (d0, d1, d2)>", tt(*shape))],
                      ["parallel"] * 3, body)[0]


def slots_to_pairs(fn: Fn, w: SparseWeights, per_slot: str, acc: str, transposed: bool) -> str:
    """acc[k] + per_slot at pair k's D-RTRL slot; per_slot is [F_in, O] (transposed) or [O, F_in]."""
    L = w.layout
    shape = (L.fan_in, L.O) if transposed else (L.O, L.fan_in)

    def body(v):
        j, f, val, out = fn.name("r"), fn.name("r"), fn.name("r"), fn.name("r")
        at = f"[{f}, {j}]" if transposed else f"[{j}, {f}]"
        return [f"{j} = arith.index_cast {v[0]} : i32 to index", f"{f} = arith.index_cast {v[1]} : i32 to index",
                f"{val} = tensor.extract {per_slot}{at} : {tt(*shape)}", f"{out} = arith.addf {v[2]}, {val} : f32"], [out]

    m = "affine_map<(d0) -> (d0)>"
    return onto_weights(fn, L, lambda: w.t["uses"], lambda a: fn.generic(
        [(w.t["slot_post"], m, tt(L.nnz, dtype="i32")), (w.t["slot_f"], m, tt(L.nnz, dtype="i32"))],
        [(a, m, tt(L.nnz))], ["parallel"], body)[0], acc)


# ---------------------------------------------------------------- kernels
def _ell_product(fn: Fn, x: str, B: int, n_in: int, index: str, weight: str, n_out: int, F: int,
                 acc: str | None) -> str:
    """acc[b, j] + sum_f weight[j, f] * x[b, index[j, f]]: one linalg.generic reading x by scalar loads.
    Measured at N=4096, 1 %, B=32 (167,949 pairs): 13-14 ms, where an iree_linalg_ext.gather of whole
    rows of x^T ([j, f, B]) was not fused with its sum, materialised O(B * pairs) floats and took 49 ms;
    and it needs no transpose (IREE 3.13's transpose propagation broke on the neuron step feeding one)."""
    def body(v):
        b, i, val, m, s_ = (fn.name("r") for _ in range(5))
        return [f"{b} = linalg.index 0 : index", f"{i} = arith.index_cast {v[0]} : i32 to index",
                f"{val} = tensor.extract {x}[{b}, {i}] : {tt(B, n_in)}", f"{m} = arith.mulf {v[1]}, {val} : f32",
                f"{s_} = arith.addf {v[2]}, {m} : f32"], [s_]

    return fn.generic([(index, "affine_map<(d0, d1, d2) -> (d1, d2)>", tt(n_out, F, dtype="i32")),
                       (weight, "affine_map<(d0, d1, d2) -> (d1, d2)>", tt(n_out, F))],
                      [(acc or fn.full((B, n_out), 0.0), "affine_map<(d0, d1, d2) -> (d0, d1)>", tt(B, n_out))],
                      ["parallel", "parallel", "reduction"], body)[0]


def _take(fn: Fn, flat: str, nnz: int, index: str, shape: tuple[int, int]) -> str:
    """flat[index] ([shape]), 0 where the index is nnz or more (a padded slot's dump)."""
    def body(v):
        i, last, c, k, val, zero, ok, out = (fn.name("r") for _ in range(8))
        return [f"{i} = arith.index_cast {v[0]} : i32 to index", f"{last} = arith.constant {nnz - 1} : index",
                f"{c} = arith.minui {i}, {last} : index", f"{val} = tensor.extract {flat}[{c}] : {tt(nnz)}",
                f"{zero} = arith.constant 0.0 : f32", f"{k} = arith.constant {nnz} : i32",
                f"{ok} = arith.cmpi slt, {v[0]}, {k} : i32", f"{out} = arith.select {ok}, {val}, {zero} : f32"], [out]

    return fn.generic([(index, "affine_map<(d0, d1) -> (d0, d1)>", tt(*shape, dtype="i32"))],
                      [(fn.empty(shape), "affine_map<(d0, d1) -> (d0, d1)>", tt(*shape))],
                      ["parallel", "parallel"], body)[0]


def _slot_products(fn: Fn, x_rows: str, a: str, cols: str, B: int, n_in: int, n: int, width: int,
                   acc: str, tiled: bool = False) -> str:
    """acc[r, f] + sum_b x[b, cols[r, f]] * a[b, r] ([n, width]; batch innermost), x read from
    x_rows = _transposed(x): a slot's B values are one contiguous run instead of B scattered loads. Alone,
    [32, 65,536] x 100 slots a row: 239 -> 97 ms; [32, 16,384] x 208: 66 -> 47 ms (benchmarks/README.md).

    `tiled` (64 rows or more): workgroups of 64 rows, vectors of 8 rows by 2 slots (each lane's x a gathered
    load). Alone at [16,384 x 216] x 32: IREE's own choice (32 rows by 27 slots, vectors of 8 by 16) 45 ms,
    this one 26-28; vectors 4-16 slots wide 29-57; the batch vectorised (x^T's contiguous runs) 65-94."""
    def body(v):
        b, i, xv, m, s_ = (fn.name("r") for _ in range(5))
        return [f"{b} = linalg.index 2 : index", f"{i} = arith.index_cast {v[0]} : i32 to index",
                f"{xv} = tensor.extract {x_rows}[{i}, {b}] : {tt(n_in + 1, B)}", f"{m} = arith.mulf {xv}, {v[1]} : f32",
                f"{s_} = arith.addf {v[2]}, {m} : f32"], [s_]

    return fn.generic([(cols, "affine_map<(d0, d1, d2) -> (d0, d1)>", tt(n, width, dtype="i32")),
                       (a, "affine_map<(d0, d1, d2) -> (d2, d0)>", tt(B, n))],
                      [(acc, "affine_map<(d0, d1, d2) -> (d0, d1)>", tt(n, width))],
                      ["parallel", "parallel", "reduction"], body,
                      **(dict(tiles=(64, width, 0), vectors=(8, min(2, width), 0)) if tiled and n >= 64 else {}))[0]


def _transposed(fn: Fn, x: str, B: int, n: int) -> str:
    """x[B, n] as [n + 1, B], its last row zero. No slot reads that row: the transpose is written into a
    padded table (events.padded_table) so that IREE keeps it; a bare one it folds back into the reads."""
    out = fn.name("xt")
    fn.emit(f"{out} = linalg.transpose ins({x} : {tt(B, n)}) outs({fn.empty((n, B))} : {tt(n, B)}) permutation = [1, 0]")
    return padded_table(fn, out, n, B)


def _columns(fn: Fn, a: str, rows: str, B: int, n_all: int, n: int) -> str:
    """a[:, rows] ([B, n]): a bucket's rows of a per-neuron signal."""
    def body(v):
        b, j, out = fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{b} = linalg.index 0 : index", f"{j} = arith.index_cast {v[0]} : i32 to index",
                f"{out} = tensor.extract {a}[{b}, {j}] : {tt(B, n_all)}"], [out]

    return fn.generic([(rows, "affine_map<(d0, d1) -> (d1)>", tt(n, dtype="i32"))],
                      [(fn.empty((B, n)), "affine_map<(d0, d1) -> (d0, d1)>", tt(B, n))], ["parallel"] * 2, body)[0]


def _read_back(fn: Fn, joined: str, pos: str, B: int, n_joined: int, n_out: int, acc: str | None) -> str:
    """acc[b, j] + joined[b, pos[j]]: each neuron's result from the buckets' concatenation."""
    def body(v):
        b, p, val, out = (fn.name("r") for _ in range(4))
        lines = [f"{b} = linalg.index 0 : index", f"{p} = arith.index_cast {v[0]} : i32 to index",
                 f"{val} = tensor.extract {joined}[{b}, {p}] : {tt(B, n_joined)}"]
        if acc is None:
            return lines, [val]
        return lines + [f"{out} = arith.addf {v[1]}, {val} : f32"], [out]

    outs = [(acc or fn.empty((B, n_out)), "affine_map<(d0, d1) -> (d0, d1)>", tt(B, n_out))]
    return fn.generic([(pos, "affine_map<(d0, d1) -> (d1)>", tt(n_out, dtype="i32"))], outs, ["parallel"] * 2,
                      body)[0]


def _read_slots(fn: Fn, per_slot: str, slot: str, n_slots: int, nnz: int, acc: str) -> str:
    """acc[k] + per_slot[slot[k]]."""
    def body(v):
        i, val, out = fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{i} = arith.index_cast {v[0]} : i32 to index",
                f"{val} = tensor.extract {per_slot}[{i}] : {tt(n_slots)}", f"{out} = arith.addf {v[1]}, {val} : f32"], [out]

    m = "affine_map<(d0) -> (d0)>"
    return fn.generic([(slot, m, tt(nnz, dtype="i32"))], [(acc, m, tt(nnz))], ["parallel"], body)[0]


def _collapse(fn: Fn, value: str, shape: tuple[int, int]) -> str:
    n = fn.name("flat")
    fn.emit(f"{n} = tensor.collapse_shape {value} [[0, 1]] : {tt(*shape)} into {tt(shape[0] * shape[1])}")
    return n


def _concat(fn: Fn, parts: list[str], shapes: list[tuple], total: tuple) -> str:
    """The parts side by side along the last axis, in a zero tensor of shape `total`."""
    out, offset = fn.full(total, 0.0), 0
    for part, shape in zip(parts, shapes):
        n = fn.name("cat")
        offsets = ", ".join(["0"] * (len(shape) - 1) + [str(offset)])
        sizes = ", ".join(str(d) for d in shape)
        strides = ", ".join(["1"] * len(shape))
        fn.emit(f"{n} = tensor.insert_slice {part} into {out}[{offsets}] [{sizes}] [{strides}] : "
                f"{tt(*shape)} into {tt(*total)}")
        out, offset = n, offset + shape[-1]
    return out

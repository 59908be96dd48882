"""The layout of a sparse projection, on the host: its pairs and the index tables (numpy arrays) that
the lowering's kernels (sparse.py, sparse_events.py) read them through, and the record of it in the manifest.

Pull side (`in_`): an ELL table per postsynaptic neuron of its incoming pairs; push side (`out_`): per
presynaptic neuron. Each is one table padded to its largest degree when that wastes little ("ell"), else
rows are bucketed by degree rounded up to a power of two ("sliced-ell"). Spike-driven work pushes through
`ev_` tables (push_tables); D-RTRL keeps a trace per pull slot (`pre_t`, `slot_post`, `slot_f`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from btc.passes.lowering.shared import shared_table
from btc.passes.plan_events import push_width

__all__ = ["Side", "SparseLayout", "push_tables"]


@dataclass(frozen=True)
class Side:
    """One direction of the layout: rows (post for the pull side, pre for the push side) in buckets
    of equal padded width; `whole`: a single bucket of every row in order (no read-back)."""

    prefix: str  # "in" | "out"
    widths: tuple[int, ...]
    counts: tuple[int, ...]  # rows per bucket
    whole: bool
    tables: dict = field(repr=False, compare=False)

    @property
    def slots(self) -> int:
        return sum(w * c for w, c in zip(self.widths, self.counts))

    @property
    def rows(self) -> int:
        return sum(self.counts)


def _side(prefix: str, row: np.ndarray, col: np.ndarray, n_rows: int) -> Side:
    """Tables of one side: for bucket b, col{b}/k{b} [rows, width] (padding: col 0, k = nnz) and
    rows{b} (its rows' ids); pos [n_rows] (a row's place in the buckets' concatenation, or their total
    for an empty row); slot [nnz] (each pair's flat place among all buckets' slots)."""
    nnz = row.size
    degree = np.bincount(row, minlength=n_rows)
    largest = max(int(degree.max()), 1)
    whole = n_rows * largest <= 2 * nnz + n_rows
    if whole:
        width = np.full(n_rows, largest)
    else:  # the next power of two; empty rows in no bucket
        width = np.where(degree > 0, 1 << np.ceil(np.log2(np.maximum(degree, 1))).astype(np.int64), 0)
    order = np.lexsort((col, row))  # pairs by row, then column
    starts = np.searchsorted(row[order], np.arange(n_rows))
    f = np.empty(nnz, np.int64)
    f[order] = np.arange(nnz) - starts[row[order]]
    widths = [int(w) for w in np.unique(width) if w > 0]
    tables, counts = {}, []
    place = np.zeros(n_rows, np.int64)  # a row's index within its bucket
    pos = np.zeros(n_rows, np.int64)
    slot = np.zeros(nnz, np.int64)
    row_offset = slot_offset = 0
    for b, w in enumerate(widths):
        members = np.flatnonzero(width == w)
        place[members] = np.arange(members.size)
        pos[members] = row_offset + place[members]
        pairs = np.flatnonzero(width[row] == w)
        cols = np.zeros((members.size, w), np.int32)
        ks = np.full((members.size, w), nnz, np.int32)
        cols[place[row[pairs]], f[pairs]] = col[pairs]
        ks[place[row[pairs]], f[pairs]] = pairs
        slot[pairs] = slot_offset + place[row[pairs]] * w + f[pairs]
        tables.update({f"{prefix}_col{b}": cols, f"{prefix}_k{b}": ks, f"{prefix}_rows{b}": members.astype(np.int32)})
        counts.append(int(members.size))
        row_offset += members.size
        slot_offset += members.size * w
    pos[width == 0] = row_offset
    tables.update({f"{prefix}_pos": pos.astype(np.int32), f"{prefix}_slot": slot.astype(np.int32)})
    return Side(prefix, tuple(widths), tuple(counts), whole, tables)


@dataclass(frozen=True, eq=False)
class SparseLayout:
    """The index tables of one sparse projection ([pre, post] = [I, O], nnz pairs)."""

    name: str
    pre: np.ndarray
    post: np.ndarray
    I: int
    O: int
    tie: np.ndarray | None = None  # shared weights: pair k applies scale * W[tie[k]] (shared.py)
    n_weights: int = 0
    scale: float = 1.0

    @property
    def nnz(self) -> int:
        return int(self.pre.size)

    @cached_property
    def fan_in(self) -> int:
        return int(np.bincount(self.post, minlength=self.O).max())

    @cached_property
    def fan_out(self) -> int:
        return int(np.bincount(self.pre, minlength=self.I).max())

    @property
    def push_width(self) -> int:
        """Slots per row of the push tables (push_tables): fan_out and padding."""
        return push_width(self.fan_out)

    @cached_property
    def pull(self) -> Side:
        return _side("in", self.post, self.pre, self.O)

    @cached_property
    def push(self) -> Side:
        return _side("out", self.pre, self.post, self.I)

    def table(self, name: str) -> np.ndarray:
        """One index table by name, built on first use (a side is built whole when first read)."""
        if name.startswith("in_"):
            return self.pull.tables[name]
        if name.startswith("out_"):
            return self.push.tables[name]
        if name in ("tie", "uses"):
            return self._shared_tables[name]
        if name.startswith("ev_"):
            return self._event_tables[name]
        return self._per_slot_trace[name]

    @cached_property
    def _event_tables(self) -> dict[str, np.ndarray]:
        return push_tables(self)

    @cached_property
    def _shared_tables(self) -> dict[str, np.ndarray]:
        """A convolution's tables (shared.py), built once: every function that reads them loads the same."""
        return {name: shared_table(self.tie, self.n_weights, name) for name in ("tie", "uses")}

    @cached_property
    def _per_slot_trace(self) -> dict[str, np.ndarray]:
        """D-RTRL's trace is one per pull slot of a single table [F_in, O]: in_pre_t (the slot's
        presynaptic neuron) and each pair's slot (slot_post, slot_f)."""
        by_post = np.lexsort((self.pre, self.post))
        starts = np.searchsorted(self.post[by_post], np.arange(self.O))
        slot_f = np.empty(self.nnz, np.int64)
        slot_f[by_post] = np.arange(self.nnz) - starts[self.post[by_post]]
        in_pre_t = np.zeros((self.fan_in, self.O), np.int32)
        in_pre_t[slot_f, self.post] = self.pre
        return {"pre_t": in_pre_t, "slot_post": self.post.astype(np.int32), "slot_f": slot_f.astype(np.int32)}

    def slots(self) -> int:
        """Pull slots, padding included: the work of one product per batch row."""
        return self.pull.slots

    def record(self) -> dict:
        pull, shared = self.pull, {} if self.tie is None else {"n_weights": self.n_weights, "scale": self.scale}
        return {**shared, "layout": "pull-ell" if pull.whole else "pull-sliced-ell", "nnz": self.nnz,
                "fan_in_max": self.fan_in, "fan_out_max": self.fan_out, "push_width": self.push_width,
                "fan_in_mean": self.nnz / self.O,
                "padded_slots": pull.slots, "bucket_widths": list(pull.widths), "bucket_rows": list(pull.counts)}


def push_tables(L: SparseLayout) -> dict[str, np.ndarray]:
    """One row of push_width slots per presynaptic neuron and a last row I for a list's unused entries:
    ev_post (padding at slot f: O + f, a dump column) and ev_k (the pair; padding at slot f: nnz + f, a dump
    slot). The pairs are sorted by (pre, post), so row i holds a run of k.

    Each slot has its own dump: with one, the padding's updates all hit one address, each waiting on the last
    (a scatter at N=16,384, 0.5 % firing, B=32: 1.59 ms with one dump, 0.62 with one per slot)."""
    dump = np.arange(L.push_width, dtype=np.int32)
    post = np.broadcast_to(L.O + dump, (L.I + 1, L.push_width)).copy()
    k = np.broadcast_to(L.nnz + dump, (L.I + 1, L.push_width)).copy()
    order = np.lexsort((L.post, L.pre))
    pre = L.pre[order]
    f = np.arange(L.nnz) - np.searchsorted(pre, pre)
    post[pre, f] = L.post[order]
    k[pre, f] = order
    return {"ev_post": post, "ev_k": k}

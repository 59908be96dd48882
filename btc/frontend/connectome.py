"""Connectomes: a wiring diagram with a strength and a sign per connection and a region per neuron,
read from the FlyWire Codex export, a plain edge list or a scipy.sparse matrix, or drawn with the
same statistics (`synthetic_connectome`) where the real file is not at hand.

`zoo.connectome_lif` turns one into a network (one recurrent group, an excitatory and an inhibitory
sparse projection, a fixed readout of region means).
"""
from __future__ import annotations

import csv
import gzip
import os
from dataclasses import dataclass

import numpy as np

from btc.errors import BtcError

__all__ = ["Connectome", "NT_SIGNS", "load_flywire", "load_edge_list", "from_scipy", "synthetic_connectome",
           "write_flywire"]

# FlyWire's predicted neurotransmitters: acetylcholine excites, GABA and glutamate inhibit in the fly
NT_SIGNS = {"ACH": 1, "GABA": -1, "GLUT": -1}
FLYWIRE_COLUMNS = ("pre_root_id", "post_root_id", "neuropil", "syn_count", "nt_type")


@dataclass(frozen=True, eq=False)
class Connectome:
    """`ids[i]`: neuron i's id (FlyWire root id); connections (pre[k], post[k]) sorted by (pre, post),
    each once, with `strength` > 0 (synapse count, or |weight|) and `sign` +1/-1; `region[i]` indexes
    `region_names`."""

    ids: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    strength: np.ndarray
    sign: np.ndarray
    region: np.ndarray
    region_names: tuple

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def num_connections(self) -> int:
        return int(self.pre.size)

    def region_sizes(self) -> np.ndarray:
        return np.bincount(self.region, minlength=len(self.region_names))

    def degrees(self) -> tuple[np.ndarray, np.ndarray]:
        """(in-degree, out-degree) per neuron, in connections."""
        return np.bincount(self.post, minlength=self.n), np.bincount(self.pre, minlength=self.n)

    def summary(self) -> str:
        fan_in, fan_out = self.degrees()
        exc = float(np.mean(self.sign > 0)) if self.num_connections else 0.0
        return (f"{self.n:,} neurons, {self.num_connections:,} connections ({exc:.0%} excitatory), "
                f"{len(self.region_names)} regions; in-degree mean {fan_in.mean():.1f} max {fan_in.max():,}, "
                f"out-degree mean {fan_out.mean():.1f} max {fan_out.max():,}")


def _build(ids, pre, post, strength, sign, region, region_names, min_strength: float = 0.0) -> Connectome:
    """Merge repeated pairs (strengths summed, the sign of the signed sum), drop weak ones, sort."""
    n = ids.size
    key = pre.astype(np.int64) * n + post.astype(np.int64)
    unique, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse, weights=strength, minlength=unique.size)
    signed = np.bincount(inverse, weights=strength * sign, minlength=unique.size)
    keep = total >= max(min_strength, np.finfo(np.float32).tiny)
    unique, total, signed = unique[keep], total[keep], signed[keep]
    return Connectome(ids=np.asarray(ids, np.int64), pre=(unique // n).astype(np.int32),
                      post=(unique % n).astype(np.int32), strength=total.astype(np.float32),
                      sign=np.where(signed < 0, -1, 1).astype(np.int8), region=np.asarray(region, np.int32),
                      region_names=tuple(str(r) for r in region_names))


# ---------------------------------------------------------------- reading files
def _rows(path: str, required: tuple, what: str):
    """(header index, the open file, its non-empty rows with line numbers) of a CSV (or .csv.gz) file."""
    if not os.path.isfile(path):
        raise BtcError(f"{what} {path!r}: no such file")
    raw = gzip.open(path, "rt", newline="") if path.endswith(".gz") else open(path, newline="")
    reader = csv.reader(raw)
    header = next(reader, None)
    if header is None:
        raw.close()
        raise BtcError(f"{what} {path!r} is empty; expected a header with columns {list(required)}")
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raw.close()
        raise BtcError(f"{what} {path!r} lacks column(s) {missing}; it has {header}, expected {list(required)}")
    col = {h: i for i, h in enumerate(header)}
    return col, raw, _filled(reader, path, len(col))


def _filled(reader, path: str, fields: int):
    """(line number, row) of every non-empty row, each with all its fields."""
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < fields:
            raise BtcError(f"{path} line {line}: {len(row)} fields, expected {fields}")
        yield line, row


def _int(value: str, path: str, line: int, column: str, minimum: int = 0) -> int:
    try:
        v = int(value)
    except ValueError:
        raise BtcError(f"{path} line {line}: {column} {value!r} is not a whole number") from None
    if v < minimum:
        raise BtcError(f"{path} line {line}: {column} {v} is negative; expected a count >= {minimum}")
    return v


def load_flywire(connections: str, neurons: str | None = None, *, min_syn_count: int = 1,
                 region_column: str | None = None, other_sign: int = 1) -> Connectome:
    """The FlyWire Codex `connections.csv[.gz]` (pre_root_id, post_root_id, neuropil, syn_count,
    nt_type; a pair's rows in several neuropils are summed, then pairs under `min_syn_count` synapses
    dropped). Signs from nt_type (NT_SIGNS; any other, or none: `other_sign`).

    Neurons: with a neuron table (`root_id` and `region_column`, default the first of region, group,
    super_class, class) its neurons in its order, every connection's ids must be in it, and regions
    are that column's values; without one, the ids the connections name, each in the neuropil where
    it receives most synapses (sends, if it receives none)."""
    if other_sign not in (1, -1):
        raise BtcError(f"other_sign must be +1 or -1, got {other_sign!r}")
    if isinstance(min_syn_count, bool) or not isinstance(min_syn_count, (int, np.integer)) or min_syn_count < 1:
        raise BtcError(f"min_syn_count must be a whole number >= 1, got {min_syn_count!r}")
    col, raw, rows = _rows(connections, FLYWIRE_COLUMNS, "connections file")
    pre_ids, post_ids, counts, signs, neuropils, lines = [], [], [], [], [], []
    names: dict[str, int] = {}
    with raw:
        for line, row in rows:
            pre_ids.append(_int(row[col["pre_root_id"]], connections, line, "pre_root_id"))
            post_ids.append(_int(row[col["post_root_id"]], connections, line, "post_root_id"))
            counts.append(_int(row[col["syn_count"]], connections, line, "syn_count"))
            signs.append(NT_SIGNS.get(row[col["nt_type"]].strip().upper(), other_sign))
            neuropils.append(names.setdefault(row[col["neuropil"]].strip() or "unknown", len(names)))
            lines.append(line)
    if not pre_ids:
        raise BtcError(f"connections file {connections!r} has a header but no connections")
    pre_ids, post_ids = np.array(pre_ids, np.int64), np.array(post_ids, np.int64)
    counts, signs, neuropils = np.array(counts, np.float64), np.array(signs, np.float64), np.array(neuropils)
    if neurons is not None:
        ids, region, region_names = _neuron_table(neurons, region_column)
        order = np.argsort(ids)
        for end, end_ids in (("pre_root_id", pre_ids), ("post_root_id", post_ids)):
            at = np.clip(np.searchsorted(ids, end_ids, sorter=order), 0, ids.size - 1)
            unknown = np.flatnonzero(ids[order[at]] != end_ids)
            if unknown.size:
                k = unknown[0]
                raise BtcError(f"{connections} line {lines[k]}: {end} {end_ids[k]} is not in the neuron table "
                               f"{neurons!r} ({unknown.size} rows name unknown neurons)")
        pre, post = order[np.searchsorted(ids, pre_ids, sorter=order)], order[np.searchsorted(ids, post_ids, sorter=order)]
    else:
        ids, index = np.unique(np.concatenate([pre_ids, post_ids]), return_inverse=True)
        pre, post = index[:pre_ids.size], index[pre_ids.size:]
        region = _majority_neuropil(ids.size, pre, post, neuropils, counts, len(names))
        region_names = list(names)
    return _build(ids, pre, post, counts, signs, region, region_names, min_strength=min_syn_count)


def _majority_neuropil(n: int, pre, post, neuropil, counts, k: int) -> np.ndarray:
    incoming = np.zeros((n, k))
    np.add.at(incoming, (post, neuropil), counts)
    outgoing = np.zeros((n, k))
    np.add.at(outgoing, (pre, neuropil), counts)
    return np.where(incoming.sum(1) > 0, incoming.argmax(1), outgoing.argmax(1))


def _neuron_table(path: str, region_column: str | None):
    col, raw, _ = _rows(path, ("root_id",), "neuron table")
    raw.close()
    header = list(col)
    if region_column is None:
        region_column = next((c for c in ("region", "group", "super_class", "class") if c in header), None)
        if region_column is None:
            raise BtcError(f"neuron table {path!r} has no region column (region, group, super_class or class); "
                           f"it has {header}: pass region_column=")
    col, raw, rows = _rows(path, ("root_id", region_column), "neuron table")
    ids, labels = [], []
    with raw:
        for line, row in rows:
            ids.append(_int(row[col["root_id"]], path, line, "root_id"))
            labels.append(row[col[region_column]].strip() or "unknown")
    ids = np.array(ids, np.int64)
    if ids.size == 0:
        raise BtcError(f"neuron table {path!r} lists no neurons")
    dup = np.flatnonzero(np.bincount(np.unique(ids, return_inverse=True)[1]) > 1)
    if dup.size:
        raise BtcError(f"neuron table {path!r} lists root_id {np.unique(ids)[dup[0]]} more than once")
    region_names, region = np.unique(np.array(labels), return_inverse=True)
    return ids, region, list(region_names)


def load_edge_list(path: str) -> Connectome:
    """A CSV edge list with columns pre, post, weight (ids any whole numbers; weight's sign is the
    connection's sign, its magnitude the strength; zero weights are no connection). One region."""
    col, raw, rows = _rows(path, ("pre", "post", "weight"), "edge list")
    pre_ids, post_ids, weights = [], [], []
    with raw:
        for line, row in rows:
            pre_ids.append(_int(row[col["pre"]], path, line, "pre"))
            post_ids.append(_int(row[col["post"]], path, line, "post"))
            try:
                w = float(row[col["weight"]])
            except ValueError:
                raise BtcError(f"{path} line {line}: weight {row[col['weight']]!r} is not a number") from None
            if not np.isfinite(w):
                raise BtcError(f"{path} line {line}: weight {w} is not finite")
            weights.append(w)
    if not pre_ids:
        raise BtcError(f"edge list {path!r} has a header but no edges")
    ids, index = np.unique(np.array(pre_ids + post_ids, np.int64), return_inverse=True)
    w = np.array(weights)
    return _build(ids, index[:len(pre_ids)], index[len(pre_ids):], np.abs(w), np.sign(w), np.zeros(ids.size),
                  ["all"])


def from_scipy(matrix, region=None, region_names=None) -> Connectome:
    """A square scipy.sparse matrix [pre, post] of signed weights; `region` per neuron (default one)."""
    if not hasattr(matrix, "tocoo") or matrix.shape[0] != matrix.shape[1]:
        raise BtcError(f"from_scipy needs a square scipy.sparse matrix, got {type(matrix).__name__} of shape "
                       f"{list(getattr(matrix, 'shape', []))}")
    n = matrix.shape[0]
    coo = matrix.tocoo()
    region = np.zeros(n, np.int32) if region is None else np.asarray(region)
    if region.shape != (n,) or region.dtype.kind not in "iu" or (n and region.min() < 0):
        raise BtcError(f"region must be {n} non-negative whole numbers (one per neuron), got shape {list(region.shape)}")
    names = region_names or [str(r) for r in range(int(region.max()) + 1 if n else 1)]
    w = np.asarray(coo.data, np.float64)
    return _build(np.arange(n), np.asarray(coo.row), np.asarray(coo.col), np.abs(w), np.sign(w), region, names)


def write_flywire(conn: Connectome, path: str) -> None:
    """Write `conn` as a FlyWire-format connections file (neuropil: the postsynaptic neuron's region;
    nt_type ACH or GABA by sign)."""
    with (gzip.open(path, "wt", newline="") if path.endswith(".gz") else open(path, "w", newline="")) as f:
        w = csv.writer(f)
        w.writerow(FLYWIRE_COLUMNS)
        names = np.array(conn.region_names, dtype=object)[conn.region[conn.post]]
        nts = np.where(conn.sign > 0, "ACH", "GABA")
        for row in zip(conn.ids[conn.pre], conn.ids[conn.post], names, conn.strength.astype(np.int64), nts):
            w.writerow(row)


# ---------------------------------------------------------------- a connectome of the fly's shape
def synthetic_connectome(neurons: int = 135_000, connections: int = 3_000_000, regions: int = 78,
                         seed: int = 0, local: float = 0.7) -> Connectome:
    """A connectome with the fly brain's statistics: region sizes spread log-normally, out-degrees
    log-normal (heavy tail) and in-degrees heavy-tailed through a log-normal attractiveness per
    neuron, a fraction `local` of connections within the region, synapse counts log-normal (>= 1),
    neurotransmitters per neuron ACH 55 %, GABA 20 %, GLUT 15 %, other 10 % (excitatory). Seeded."""
    if neurons < 2 * regions or regions < 1 or connections < neurons:
        raise BtcError(f"synthetic_connectome needs neurons >= 2*regions and connections >= neurons, got "
                       f"{neurons} neurons, {connections} connections, {regions} regions")
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(neurons - 2 * regions, rng.dirichlet(np.full(regions, 2.0))) + 2
    region = np.repeat(np.arange(regions), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    sigma = 1.0
    draws = int(connections * 1.08)  # repeats and self-pairs are merged away
    out_degree = rng.lognormal(np.log(draws / neurons) - sigma ** 2 / 2, sigma, neurons)
    out_degree = np.minimum(np.maximum(1, np.round(out_degree * draws / out_degree.sum())), neurons // 10)
    pre = np.repeat(np.arange(neurons), out_degree.astype(np.int64))
    target_region = np.where(rng.random(pre.size) < local, region[pre],
                             np.searchsorted(starts[1:], rng.integers(0, neurons, pre.size), side="right"))
    attract = np.cumsum(rng.lognormal(0.0, 1.2, neurons))
    lo = np.where(starts[target_region] > 0, attract[starts[target_region] - 1], 0.0)
    hi = attract[starts[target_region + 1] - 1]
    post = np.minimum(np.searchsorted(attract, lo + rng.random(pre.size) * (hi - lo), side="right"),
                      starts[target_region + 1] - 1)
    keep = pre != post
    pre, post = pre[keep], post[keep]
    nt = rng.choice(4, neurons, p=[0.55, 0.20, 0.15, 0.10])  # ACH, GABA, GLUT, other
    sign = np.where((nt == 1) | (nt == 2), -1.0, 1.0)[pre]
    count = np.maximum(1, np.round(rng.lognormal(1.0, 0.9, pre.size)))
    ids = 720575940600000000 + np.cumsum(rng.integers(1, 4096, neurons))
    return _build(ids, pre, post, count, sign, region, [f"R{r:02d}" for r in range(regions)])

"""Which (pre, post) pairs of a sparse projection are connected (only those weights exist), and the
initial weight distribution `Normal`.

`project(..., connectivity=...)` takes a connection probability (a float, or `FixedProbability`
with its own seed), explicit `(pre_index, post_index)` arrays, a boolean [pre, post] mask, a
scipy.sparse matrix (its stored entries), or a convolution (`Conv`, `Pool`: btc.frontend.convolution).
Every form becomes a `Connectivity`: the pairs sorted by (pre, post), the order of the projection's
weight vector `<name>.W` (scipy's CSR order); a convolution's pairs share the kernel's weights instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from btc.errors import BtcError

__all__ = ["Connectivity", "FixedProbability", "Normal", "connectivity_of", "initial_scale", "weights_at_pairs"]


@dataclass(frozen=True)
class FixedProbability:
    """Each (pre, post) pair connected independently with probability `p`. `seed` None draws from
    the network's seed and the projection's index; `self_connections=False` drops the pairs with
    pre index == post index (meant for a group's projection onto itself)."""

    p: float
    seed: int | None = None
    self_connections: bool = True

    def __post_init__(self):
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float, np.integer, np.floating)) \
                or not 0 < self.p <= 1:
            raise BtcError(f"FixedProbability: p must be a probability in (0, 1], got {self.p!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))
                                      or self.seed < 0):
            raise BtcError(f"FixedProbability: seed must be an integer >= 0 or None, got {self.seed!r}")


@dataclass(frozen=True, eq=False)
class Connectivity:
    """The connected pairs: `pre[k]`, `post[k]` (int32, sorted by (pre, post), no duplicates).
    Shared weights (a convolution): pair k applies `scale * W[tie[k]]`, W of `kernel_shape`
    flattened; a bias is one per `bias_block` consecutive postsynaptic neurons (an output channel)."""

    pre: np.ndarray
    post: np.ndarray
    shape: tuple[int, int]  # (pre size, post size)
    tie: np.ndarray | None = None
    kernel_shape: tuple[int, ...] | None = None
    scale: float = 1.0
    bias_block: int = 1
    geometry: dict | None = None  # the convolution's shapes, for the manifest and NIR export

    @property
    def nnz(self) -> int:
        return int(self.pre.size)

    @property
    def n_weights(self) -> int:
        """Entries of the weight vector: one per pair, or the kernel's."""
        return self.nnz if self.tie is None else math.prod(self.kernel_shape)

    @property
    def n_biases(self) -> int:
        return self.shape[1] // self.bias_block

    def fan_in(self) -> np.ndarray:
        return np.bincount(self.post, minlength=self.shape[1])

    def fan_out(self) -> np.ndarray:
        return np.bincount(self.pre, minlength=self.shape[0])

    def dense_mask(self) -> np.ndarray:
        mask = np.zeros(self.shape, bool)
        mask[self.pre, self.post] = True
        return mask


def connectivity_of(spec, shape: tuple[int, int], where: str, seed) -> Connectivity:
    """`spec` (any form `project` accepts) as a Connectivity of a [pre, post] = `shape` projection;
    `seed` (an int or a sequence of ints) draws a FixedProbability that has none of its own."""
    I, O = shape
    if hasattr(spec, "connectivity") and callable(spec.connectivity):  # Conv, Pool
        pre, post, tie, kernel_shape, scale, bias_block, geometry = spec.connectivity((I, O), where)
        if pre.size == 0:
            _bad(where, "connects no pair (the kernel never lands on the map)")
        order = np.lexsort((post, pre))
        return Connectivity(pre[order].astype(np.int32), post[order].astype(np.int32), (I, O),
                            tie[order].astype(np.int32), tuple(kernel_shape), float(scale), int(bias_block), geometry)
    if isinstance(spec, (float, int, np.integer, np.floating)) and not isinstance(spec, bool):
        spec = FixedProbability(float(spec)) if 0 < spec <= 1 else _bad(where, f"probability {spec!r} not in (0, 1]")
    if isinstance(spec, FixedProbability):
        rng = np.random.default_rng(seed if spec.seed is None else spec.seed)
        pre, post = _draw(rng, I, O, spec.p, spec.self_connections)
    elif hasattr(spec, "tocoo"):  # scipy.sparse: its stored entries (explicit zeros included)
        if tuple(spec.shape) != (I, O):
            _bad(where, f"the sparse matrix has shape {list(spec.shape)}, expected {[I, O]}")
        coo = spec.tocoo()
        pre, post = np.asarray(coo.row), np.asarray(coo.col)
    elif isinstance(spec, Connectivity) or isinstance(spec, tuple) and len(spec) == 2:
        if isinstance(spec, Connectivity):  # checked like index arrays: it may have been built by hand
            if tuple(spec.shape) != (I, O):
                _bad(where, f"has shape {list(spec.shape)}, expected {[I, O]}")
            if spec.tie is not None:  # a convolution's, reused: its pairs keep sharing the kernel
                return spec
            spec = (spec.pre, spec.post)
        pre, post = (np.asarray(a) for a in spec)
        for what, a, n in (("pre", pre, I), ("post", post, O)):
            if a.ndim != 1 or a.dtype.kind not in "iu":
                _bad(where, f"{what} indices must be a 1-D integer array, got {a.dtype} of shape {list(a.shape)}")
            if a.size and (a.min() < 0 or a.max() >= n):
                _bad(where, f"{what} index {int(a.min() if a.min() < 0 else a.max())} is out of range [0, {n})")
        if pre.size != post.size:
            _bad(where, f"pre and post index arrays differ in length ({pre.size} vs {post.size})")
    elif isinstance(spec, np.ndarray) and spec.dtype == bool:
        if spec.shape != (I, O):
            _bad(where, f"the mask has shape {list(spec.shape)}, expected {[I, O]}")
        pre, post = np.nonzero(spec)
    else:
        _bad(where, f"must be a probability, FixedProbability, (pre, post) index arrays, a boolean [pre, post] "
                    f"mask, a scipy.sparse matrix, a Conv, a Pool or a Connectivity; got {type(spec).__name__}")
    order = np.lexsort((post, pre))
    pre, post = pre[order].astype(np.int32), post[order].astype(np.int32)
    if pre.size == 0:
        _bad(where, "connects no pair; a projection needs at least one connection")
    dup = np.nonzero((pre[1:] == pre[:-1]) & (post[1:] == post[:-1]))[0]
    if dup.size:
        _bad(where, f"connects ({pre[dup[0]]}, {post[dup[0]]}) more than once")
    return Connectivity(pre, post, (I, O))


def _draw(rng: np.random.Generator, I: int, O: int, p: float, self_connections: bool):
    """Bernoulli(p) per pair, drawn row by row so that memory is O(nnz) for large projections."""
    pres, posts = [], []
    rows = max(1, (1 << 22) // O)
    for start in range(0, I, rows):
        n = min(rows, I - start)
        block = rng.random((n, O)) < p
        if not self_connections:
            diag = np.arange(start, start + n)
            ok = diag < O
            block[np.nonzero(ok)[0], diag[ok]] = False
        r, c = np.nonzero(block)
        pres.append(r + start)
        posts.append(c)
    return np.concatenate(pres), np.concatenate(posts)


def _bad(where: str, what: str):
    raise BtcError(f"{where}: connectivity {what}")


def initial_scale(conn: Connectivity) -> float:
    """1/sqrt(mean fan-in): Normal(scale)'s fan-in for a sparse projection; a convolution's is its
    kernel's (in channels x kernel positions, as PyTorch initialises)."""
    if conn.tie is not None:
        return 1.0 / math.sqrt(math.prod(conn.kernel_shape[1:]) if len(conn.kernel_shape) > 1 else 1)
    return 1.0 / math.sqrt(max(conn.nnz / conn.shape[1], 1.0))


def weights_at_pairs(where: str, weights, conn: Connectivity) -> np.ndarray:
    """Initial weights of a sparse projection, one per connection: a vector, or read at the pairs
    from a dense [pre, post] array or a scipy.sparse matrix; a convolution's: its kernel."""
    if conn.tie is not None:
        weights = np.asarray(weights)
        if weights.shape not in ((conn.n_weights,), conn.kernel_shape):
            raise BtcError(f"{where}: weights have shape {list(weights.shape)}, expected the kernel "
                           f"{list(conn.kernel_shape)} (or flattened, [{conn.n_weights}])")
        if weights.dtype.kind not in "iuf" or not np.all(np.isfinite(weights)):
            raise BtcError(f"{where}: weights must be finite numbers")
        return weights.reshape(-1)
    if hasattr(weights, "tocsr"):
        if tuple(weights.shape) != conn.shape:
            raise BtcError(f"{where}: weights have shape {list(weights.shape)}, expected {list(conn.shape)}")
        coo = weights.tocoo()
        stored = coo.row.astype(np.int64) * conn.shape[1] + coo.col
        outside = (coo.data != 0) & ~np.isin(stored, conn.pre.astype(np.int64) * conn.shape[1] + conn.post)
        if np.any(outside):
            k = int(np.argmax(outside))
            raise BtcError(f"{where}: weights has a non-zero entry at ({int(coo.row[k])}, {int(coo.col[k])}), "
                           "which the connectivity does not connect; only the connected pairs have weights")
        weights = np.asarray(weights.tocsr()[conn.pre, conn.post]).ravel()
    weights = np.asarray(weights)
    if weights.shape == conn.shape:
        off = weights.copy()
        off[conn.pre, conn.post] = 0
        if np.any(off):
            i, j = (int(v[0]) for v in np.nonzero(off))
            raise BtcError(f"{where}: weights has a non-zero entry at ({i}, {j}), which the connectivity "
                           "does not connect; only the connected pairs have weights")
        weights = weights[conn.pre, conn.post]
    if weights.shape != (conn.nnz,):
        raise BtcError(f"{where}: weights have shape {list(weights.shape)}, expected one per connection "
                       f"[{conn.nnz}] or the dense {list(conn.shape)}")
    if weights.dtype.kind not in "iuf" or not np.all(np.isfinite(weights)):
        raise BtcError(f"{where}: weights must be finite numbers")
    return weights


@dataclass(frozen=True)
class Normal:
    """Weights ~ N(0, (scale / sqrt(fan_in))^2), drawn from the network's seed."""

    scale: float = 1.0

    def __post_init__(self):
        if not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale) or self.scale < 0:
            raise BtcError(f"Normal: scale must be a finite number >= 0, got {self.scale!r}")

    def sample(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        return (rng.standard_normal(shape) * self.scale / math.sqrt(shape[0])).astype(np.float32)

    def sample_sparse(self, rng: np.random.Generator, conn: Connectivity) -> np.ndarray:
        """One weight per connection (a convolution: per kernel entry); the fan-in is the mean number
        of connections per target. A pool starts at 1: a fixed sum or mean."""
        if conn.geometry is not None and conn.geometry["kind"] == "pool":
            return np.ones(1, np.float32)
        return (rng.standard_normal(conn.n_weights) * self.scale * initial_scale(conn)).astype(np.float32)

"""A projection's three products, dense or sparse alike at the call site.
Reads W as a dense [I, O] SSA value or SparseWeights; produces x @ W, a @ W^T and x^T a at W's entries.
"""
from __future__ import annotations

from btc.passes.lowering.sparse import SparseWeights, outer_grad, propagate, pull_back
from btc.passes.lowering.text import Fn

__all__ = ["times_weights", "times_weights_t", "weight_outer"]


def times_weights(fn: Fn, W, x: str, B: int, I: int, O: int, acc: str | None = None) -> str:
    """acc + x[B, I] @ W, W dense ([I, O] SSA value) or SparseWeights."""
    return propagate(fn, W, x, B, acc) if isinstance(W, SparseWeights) else fn.matmul(x, W, B, I, O, acc=acc)


def times_weights_t(fn: Fn, W, a: str, B: int, I: int, O: int, acc: str | None = None) -> str:
    """acc + a[B, O] @ W^T."""
    return pull_back(fn, W, a, B, acc) if isinstance(W, SparseWeights) else fn.matmul_bt(a, W, B, I, O, acc=acc)


def weight_outer(fn: Fn, W, x: str, a: str, B: int, I: int, O: int, acc: str) -> str:
    """acc + x[B, I]^T a[B, O] at W's entries (all of them, or the pairs of a sparse W)."""
    return outer_grad(fn, W, x, a, B, acc) if isinstance(W, SparseWeights) else fn.matmul_at(x, a, B, I, O, acc)

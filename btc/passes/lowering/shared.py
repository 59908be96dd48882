"""Shared weights (convolutions): a sparse projection whose pair k applies scale * W[tie[k]].
Reads the kernel W, the tables `tie` [nnz] and `uses` [n_weights, U]; produces the per-pair weight
vector the sparse kernels take, and folds per-pair gradients back onto the kernel (the correlation
of pp-prop.md's presynaptic traces with the postsynaptic signal). A bias is one per channel: a
block of consecutive postsynaptic neurons, broadcast forward and summed back.
"""
from __future__ import annotations

import numpy as np

from btc.passes.lowering.text import Fn, tt

__all__ = ["shared_table", "pair_weights", "onto_weights", "channel_bias", "channel_sums", "bias_sums"]


def shared_table(tie: np.ndarray, n_weights: int, name: str) -> np.ndarray:
    """`tie`: each pair's weight; `uses` [n_weights, U]: the pairs that apply weight w (padding: nnz)."""
    if name == "tie":
        return tie.astype(np.int32)
    nnz = tie.size
    order = np.argsort(tie, kind="stable")
    count = np.bincount(tie, minlength=n_weights)
    uses = np.full((n_weights, max(int(count.max()), 1)), nnz, np.int32)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    uses[tie[order], np.arange(nnz) - start[tie[order]]] = order
    return uses


def pair_weights(fn: Fn, kernel: str, tie: str, n_weights: int, nnz: int, scale: float) -> str:
    """scale * kernel[tie[k]] for every pair k ([nnz])."""
    def body(v):
        i, val, out = fn.name("r"), fn.name("r"), fn.name("r")
        lines = [f"{i} = arith.index_cast {v[0]} : i32 to index",
                 f"{val} = tensor.extract {kernel}[{i}] : {tt(n_weights)}"]
        if scale == 1.0:
            return lines, [val]
        return lines + [f"{out} = arith.mulf {val}, {fn.const(scale)} : f32"], [out]

    m = "affine_map<(d0) -> (d0)>"
    return fn.generic([(tie, m, tt(nnz, dtype="i32"))], [(fn.empty((nnz,)), m, tt(nnz))], ["parallel"], body)[0]


def onto_weights(fn: Fn, layout, uses, per_pair, acc: str) -> str:
    """acc + the gradient `per_pair(acc0)` computes at the pairs, summed onto the weights they share:
    per_pair adds into acc directly where every pair has its own weight. `uses()` loads the table."""
    if layout.tie is None:
        return per_pair(acc)
    pairs, n, nnz = per_pair(fn.full((layout.nnz,), 0.0)), layout.n_weights, layout.nnz
    table = uses()
    U = int(layout.table("uses").shape[1])

    def body(v):
        i, last, c, val, ok, k, picked, scaled, out = (fn.name("r") for _ in range(9))
        return [f"{i} = arith.index_cast {v[0]} : i32 to index", f"{last} = arith.constant {nnz - 1} : index",
                f"{c} = arith.minui {i}, {last} : index", f"{val} = tensor.extract {pairs}[{c}] : {tt(nnz)}",
                f"{k} = arith.constant {nnz} : i32", f"{ok} = arith.cmpi slt, {v[0]}, {k} : i32",
                f"{picked} = arith.select {ok}, {val}, {fn.const(0.0)} : f32",
                f"{scaled} = arith.mulf {picked}, {fn.const(layout.scale)} : f32",
                f"{out} = arith.addf {v[1]}, {scaled} : f32"], [out]

    return fn.generic([(table, "affine_map<(d0, d1) -> (d0, d1)>", tt(n, U, dtype="i32"))],
                      [(acc, "affine_map<(d0, d1) -> (d0)>", tt(n))], ["parallel", "reduction"], body)[0]


def channel_bias(fn: Fn, b: str, channels: int, block: int) -> str:
    """b[c] for every neuron of channel c ([channels * block])."""
    wide = fn.generic([(b, "affine_map<(d0, d1) -> (d0)>", tt(channels))],
                      [(fn.empty((channels, block)), "affine_map<(d0, d1) -> (d0, d1)>", tt(channels, block))],
                      ["parallel", "parallel"], lambda v: ([], [v[0]]))[0]
    flat = fn.name("bf")
    fn.emit(f"{flat} = tensor.collapse_shape {wide} [[0, 1]] : {tt(channels, block)} into {tt(channels * block)}")
    return flat


def channel_sums(fn: Fn, a: str, B: int, channels: int, block: int, acc: str) -> str:
    """acc[c] + the sum of a[B, channels * block] over the batch and channel c's neurons."""
    wide = fn.name("sw")
    fn.emit(f"{wide} = tensor.expand_shape {a} [[0], [1, 2]] output_shape [{B}, {channels}, {block}] : "
            f"{tt(B, channels * block)} into {tt(B, channels, block)}")
    s = fn.name("s")
    return fn.generic([(wide, "affine_map<(d0, d1, d2) -> (d1, d0, d2)>", tt(B, channels, block))],
                      [(acc, "affine_map<(d0, d1, d2) -> (d0)>", tt(channels))],
                      ["parallel", "reduction", "reduction"],
                      lambda x: ([f"{s} = arith.addf {x[1]}, {x[0]} : f32"], [s]))[0]


def bias_sums(fn: Fn, p, a: str, B: int, N: int, acc: str) -> str:
    """acc + a[B, N] summed over the batch, per neuron, or per channel of a convolution's bias."""
    if p.bias_block == 1:
        return fn.sum_rows(a, B, N, acc)
    return channel_sums(fn, a, B, N // p.bias_block, p.bias_block, acc)

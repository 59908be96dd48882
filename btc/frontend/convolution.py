"""Convolutional projections: `project(pre, post, connectivity=Conv(...))` or `connectivity=Pool(...)`.

A convolution is a sparse projection whose pairs share weights: pair k (pre neuron, post neuron)
applies `scale * W[tie[k]]`, W the kernel flattened in [out_channels, in_channels, *kernel] order
(PyTorch's and NIR's). Feature maps are a group's neurons in C order over (channels, *positions),
so a convolution's output flattens the way NIR's Flatten does. Because the sharing is just an index
per pair, every algorithm that trains a sparse projection trains a convolution, and its weight
gradient is the correlation of the presynaptic traces with the postsynaptic signal: the per-pair
gradients summed over the pairs that share a weight. The bias, if any, is one per output channel.

`Conv(..., pool=Pool(2))` pools the presynaptic map first (non-overlapping windows, sum or average:
each input lies in one window at most), so that `pool -> conv` stays one projection whose
presynaptic traces live on the spikes themselves; a `Pool` alone is a projection with one weight.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from btc.errors import BtcError

__all__ = ["Conv", "Pool"]


def _tuple(value, d: int, what: str, minimum: int) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * d
    if len(values) != d or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum
                               for v in values):
        raise BtcError(f"{what} must be an integer >= {minimum} or {d} of them, got {value!r}")
    return tuple(int(v) for v in values)


def _shape(in_shape, what: str) -> tuple[int, ...]:
    if not isinstance(in_shape, (tuple, list)) or len(in_shape) not in (2, 3) or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in in_shape):
        raise BtcError(f"{what}: in_shape must be (channels, length) or (channels, height, width) of positive "
                       f"integers, got {in_shape!r}")
    return tuple(int(v) for v in in_shape)


@dataclass(frozen=True)
class Pool:
    """Sum (or, `average=True`, mean) over windows of `kernel` positions, `stride` apart (default:
    the kernel, the windows tiling the map). Channels stay apart. As a projection's connectivity it
    needs `in_shape`; its one weight (1 by default) scales every window."""

    kernel: int | tuple
    stride: int | tuple | None = None
    average: bool = False
    in_shape: tuple | None = None

    def _geometry(self, in_shape: tuple[int, ...], what: str):
        d = len(in_shape) - 1
        kernel = _tuple(self.kernel, d, f"{what}: pool kernel", 1)
        stride = kernel if self.stride is None else _tuple(self.stride, d, f"{what}: pool stride", 1)
        if any(s < k for s, k in zip(stride, kernel)):
            raise BtcError(f"{what}: pool windows overlap (kernel {list(kernel)}, stride {list(stride)}); btc pools "
                           "with windows that do not overlap")
        out = tuple((n - k) // s + 1 for n, k, s in zip(in_shape[1:], kernel, stride))
        if any(o < 1 for o in out):
            raise BtcError(f"{what}: pool kernel {list(kernel)} is larger than the map {list(in_shape[1:])}")
        return kernel, stride, out

    def out_shape(self, in_shape=None, what: str = "Pool") -> tuple[int, ...]:
        in_shape = _shape(in_shape or self.in_shape, what)
        return (in_shape[0],) + self._geometry(in_shape, what)[2]

    def scale(self, in_shape) -> float:
        kernel = self._geometry(_shape(in_shape, "Pool"), "Pool")[0]
        return 1.0 / math.prod(kernel) if self.average else 1.0

    def windows(self, in_shape: tuple[int, ...], what: str) -> tuple[np.ndarray, np.ndarray]:
        """(input position, pooled position) of every pair, flat over (channels, *positions)."""
        kernel, stride, out = self._geometry(in_shape, what)
        C = in_shape[0]
        grids = np.meshgrid(np.arange(C), *[np.arange(o) for o in out], *[np.arange(k) for k in kernel],
                            indexing="ij")
        flat = [g.ravel() for g in grids]
        c, pos, off = flat[0], flat[1:1 + len(out)], flat[1 + len(out):]
        src = np.ravel_multi_index((c, *[p * s + o for p, s, o in zip(pos, stride, off)]), in_shape)
        dst = np.ravel_multi_index((c, *pos), (C, *out))
        return src, dst

    def connectivity(self, shape: tuple[int, int], where: str):
        if self.in_shape is None:
            raise BtcError(f"{where}: a Pool used as a projection's connectivity needs in_shape=(channels, ...)")
        in_shape = _shape(self.in_shape, where)
        out = self.out_shape(in_shape, where)
        _sizes(where, shape, in_shape, out)
        pre, post = self.windows(in_shape, where)
        kernel, stride, _ = self._geometry(in_shape, where)
        desc = {"kind": "pool", "in_shape": list(in_shape), "out_shape": list(out), "kernel": list(kernel),
                "stride": list(stride), "average": bool(self.average)}
        return pre, post, np.zeros(pre.size, np.int64), (1,), self.scale(in_shape), math.prod(out[1:]), desc


@dataclass(frozen=True)
class Conv:
    """A 1-D (`in_shape` = (channels, length)) or 2-D ((channels, height, width)) convolution of the
    presynaptic map, `out_channels` maps of the output; PyTorch's geometry: zero `padding`,
    `stride`, `dilation`, `groups` (each output channel reads in_channels / groups of them). `pool`
    pools the presynaptic map first."""

    in_shape: tuple
    out_channels: int
    kernel: int | tuple
    stride: int | tuple = 1
    padding: int | tuple = 0
    dilation: int | tuple = 1
    pool: Pool | None = None
    groups: int = 1

    def _geometry(self, what: str):
        in_shape = _shape(self.in_shape, what)
        if isinstance(self.out_channels, bool) or not isinstance(self.out_channels, (int, np.integer)) \
                or self.out_channels < 1:
            raise BtcError(f"{what}: out_channels must be a positive integer, got {self.out_channels!r}")
        if self.pool is not None and not isinstance(self.pool, Pool):
            raise BtcError(f"{what}: pool must be a btc.frontend.Pool, got {type(self.pool).__name__}")
        mapped = self.pool.out_shape(in_shape, what) if self.pool is not None else in_shape
        g = self.groups
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1 or mapped[0] % g \
                or self.out_channels % g:
            raise BtcError(f"{what}: groups must be a positive integer dividing the {mapped[0]} input and "
                           f"{self.out_channels} output channels, got {g!r}")
        d = len(in_shape) - 1
        kernel = _tuple(self.kernel, d, f"{what}: kernel", 1)
        stride = _tuple(self.stride, d, f"{what}: stride", 1)
        padding = _tuple(self.padding, d, f"{what}: padding", 0)
        dilation = _tuple(self.dilation, d, f"{what}: dilation", 1)
        out = tuple((n + 2 * p - dl * (k - 1) - 1) // s + 1
                    for n, k, s, p, dl in zip(mapped[1:], kernel, stride, padding, dilation))
        if any(o < 1 for o in out):
            raise BtcError(f"{what}: kernel {list(kernel)} (dilation {list(dilation)}, padding {list(padding)}) does "
                           f"not fit the map {list(mapped[1:])}")
        return in_shape, mapped, kernel, stride, padding, dilation, out

    def out_shape(self) -> tuple[int, ...]:
        return (int(self.out_channels),) + self._geometry("Conv")[-1]

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        in_shape, mapped, kernel, *_ = self._geometry("Conv")
        return (int(self.out_channels), mapped[0] // self.groups) + kernel

    def connectivity(self, shape: tuple[int, int], where: str):
        in_shape, mapped, kernel, stride, padding, dilation, out = self._geometry(where)
        O, C = int(self.out_channels), mapped[0] // self.groups  # C: input channels each output reads
        out_shape = (O,) + out
        _sizes(where, shape, in_shape, out_shape)
        d = len(out)
        grids = np.meshgrid(np.arange(O), np.arange(C), *[np.arange(n) for n in out], *[np.arange(k) for k in kernel],
                            indexing="ij")
        o, c = grids[0].ravel(), grids[1].ravel()  # c: within the output's group of input channels
        pos = [g.ravel() for g in grids[2:2 + d]]
        off = [g.ravel() for g in grids[2 + d:]]
        src = [p * s + k * dl - pd for p, k, s, pd, dl in zip(pos, off, stride, padding, dilation)]
        inside = np.logical_and.reduce([(v >= 0) & (v < n) for v, n in zip(src, mapped[1:])])
        o, c, pos, off, src = o[inside], c[inside], [p[inside] for p in pos], [k[inside] for k in off], \
            [v[inside] for v in src]
        tie = np.ravel_multi_index((o, c, *off), (O, C) + kernel)
        post = np.ravel_multi_index((o, *pos), out_shape)
        pre = np.ravel_multi_index((o // (O // self.groups) * C + c, *src), mapped)
        scale = 1.0
        if self.pool is not None:  # each pooled position stands for its window of inputs
            win_src, win_dst = self.pool.windows(in_shape, where)
            order = np.argsort(win_dst, kind="stable")
            win_src, win_dst = win_src[order], win_dst[order]
            per = np.bincount(win_dst, minlength=math.prod(mapped))
            start = np.concatenate([[0], np.cumsum(per)[:-1]])
            repeat = per[pre]
            k = np.repeat(np.arange(pre.size), repeat)
            offset = np.arange(k.size) - np.repeat(np.cumsum(repeat) - repeat, repeat)
            pre, post, tie = win_src[start[pre[k]] + offset], post[k], tie[k]
            scale = self.pool.scale(in_shape)
        desc = {"kind": "conv", "in_shape": list(in_shape), "out_shape": list(out_shape), "mapped": list(mapped[1:]),
                "kernel_shape": [O, C] + list(kernel), "stride": list(stride), "padding": list(padding),
                "dilation": list(dilation), "groups": int(self.groups)}
        if self.pool is not None:
            pk, ps, _ = self.pool._geometry(in_shape, where)
            desc["pool"] = {"kernel": list(pk), "stride": list(ps), "average": bool(self.pool.average)}
        return pre, post, tie, (O, C) + kernel, scale, math.prod(out), desc


def _sizes(where: str, shape: tuple[int, int], in_shape: tuple, out_shape: tuple) -> None:
    if shape != (math.prod(in_shape), math.prod(out_shape)):
        raise BtcError(f"{where}: connectivity maps {list(in_shape)} ({math.prod(in_shape)} neurons) to "
                       f"{list(out_shape)} ({math.prod(out_shape)}), but the groups have {shape[0]} and {shape[1]}")

"""The linear map along one NIR path between two neuron (or input) nodes, as btc_import composes it.
Reads the edge nodes Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten in path
order; produces a dense [pre, post] matrix and bias, or a convolution (btc.frontend.convolution) with its
kernel and per-channel bias, which stays one projection with shared weights.

Composition rules: a pool must come first on the path (right after the spiking node: btc pools the
presynaptic spikes); a Conv may follow it; an Affine or Linear after a pool (and a Flatten) is a Conv
whose kernel covers the pooled map; a Scale after a convolution must be one value. Anything after a
Conv other than Flatten, Scale or Delay is refused: btc projects one linear map between two neuron
groups. Flatten changes no value (btc's maps are flat in C order, as NIR's Flatten reads them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from btc.errors import BtcError
from btc.frontend.convolution import Conv, Pool

__all__ = ["PathMap", "step"]

_CONV = ("Conv1d", "Conv2d")
_POOL = ("SumPool2d", "AvgPool2d")


@dataclass(frozen=True)
class PathMap:
    """The map from the start node's values (shape `start`) to the values here (shape `shape`):
    identity (all None), dense `W` [pre, post] and bias `b`, a pool of the start's map, or a Conv
    (`conv`, `kernel` in its kernel_shape, per-channel `bias` or None)."""

    start: tuple
    shape: tuple
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    pool: Pool | None = None
    conv: Conv | None = None
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None

    @property
    def width(self) -> int:
        return math.prod(self.shape)

    @property
    def structured(self) -> bool:
        return self.pool is not None or self.conv is not None


def _tuple(value, d: int, where: str = "", what: str = "") -> tuple:
    a = np.asarray(value).ravel()
    if a.size not in (1, d) or a.dtype.kind not in "iuf":
        raise BtcError(f"{where}: {what} must be one number or {d}, got {value!r}")
    return tuple(int(v) for v in np.broadcast_to(a, (d,)))


def _padding(name: str, node, kernel: tuple, dilation: tuple) -> tuple:
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0,) * len(kernel)
        if np.any(np.asarray(node.stride) != 1):
            raise BtcError(f"NIR node {name!r} ({type(node).__name__}): padding 'same' keeps the map's size, which a "
                           "stride above 1 cannot; give the padding as numbers")
        total = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise BtcError(f"NIR node {name!r} ({type(node).__name__}): padding 'same' with an even kernel pads one "
                           "side more than the other; btc pads both sides alike")
        return tuple(t // 2 for t in total)
    return _tuple(node.padding, len(kernel), f"NIR node {name!r} ({type(node).__name__})", "padding")


def step(map_: PathMap, name: str, node) -> PathMap:
    """The map after one more edge node."""
    kind = type(node).__name__
    where = f"NIR node {name!r} ({kind})"
    if kind == "Flatten":
        return replace(map_, shape=(map_.width,))
    if kind in _POOL:
        if map_.W is not None or map_.structured:
            raise BtcError(f"{where}: btc pools the spikes of a neuron node; this pool follows another linear node")
        if np.any(np.asarray(node.padding) != 0):
            raise BtcError(f"{where}: pooling with padding is not supported")
        if len(map_.shape) != 3:
            raise BtcError(f"{where}: expects a (channels, height, width) map, got shape {list(map_.shape)}")
        pool = Pool(_tuple(node.kernel_size, 2, where, "kernel_size"), _tuple(node.stride, 2, where, "stride"),
                    average=kind == "AvgPool2d")
        try:
            shape = pool.out_shape(map_.shape, where)
        except BtcError as e:
            raise BtcError(str(e)) from None
        return replace(map_, shape=shape, pool=pool)
    if kind in _CONV:
        if map_.W is not None or map_.conv is not None:
            raise BtcError(f"{where}: a convolution must read a neuron node's spikes (or their pool) directly")
        weight = np.asarray(node.weight, np.float64)
        d = 1 if kind == "Conv1d" else 2
        if weight.ndim != d + 2:
            raise BtcError(f"{where}: weight must be [out, in, {'length' if d == 1 else 'height, width'}], got "
                           f"{list(weight.shape)}")
        if len(map_.shape) != d + 1 or map_.shape[0] != weight.shape[1] * int(node.groups):
            raise BtcError(f"{where}: its weight {list(weight.shape)} (groups {node.groups}) does not fit its input "
                           f"of shape {list(map_.shape)}")
        kernel, dilation = tuple(weight.shape[2:]), _tuple(node.dilation, d, where, "dilation")
        declared = getattr(node, "input_shape", None)
        if declared is not None and tuple(int(v) for v in np.atleast_1d(declared)) != map_.shape[1:]:
            raise BtcError(f"{where}: input_shape {[int(v) for v in np.atleast_1d(declared)]} differs from the map it "
                           f"reads, {list(map_.shape[1:])}")
        pre_pool = map_.start if map_.pool is not None else map_.shape
        conv = Conv(pre_pool, weight.shape[0], kernel, _tuple(node.stride, d, where, "stride"),
                    _padding(name, node, kernel, dilation), dilation, map_.pool, int(node.groups))
        bias = np.asarray(node.bias, np.float64).ravel() if getattr(node, "bias", None) is not None else None
        if bias is not None and bias.size != weight.shape[0]:
            raise BtcError(f"{where}: bias must have {weight.shape[0]} values, one per output channel; got {bias.size}")
        try:
            shape = conv.out_shape()
        except BtcError as e:
            raise BtcError(f"{where}: {e}") from None
        gain = 1.0 if map_.kernel is None else float(map_.kernel[0])  # a Scale after the pool
        return replace(map_, shape=shape, conv=conv, kernel=weight * gain,
                       bias=bias if bias is not None and np.any(bias) else None, pool=None)
    if kind == "Scale":
        s = np.asarray(node.scale, np.float64).ravel()
        if s.size not in (1, map_.width):
            raise BtcError(f"{where}: {s.size} scales for {map_.width} values")
        if map_.structured:
            if np.any(s != s[0]):
                raise BtcError(f"{where}: after a convolution or pool btc takes one scale for every value")
            if map_.conv is None:  # a pool alone: the scale is its weight
                return replace(map_, kernel=np.asarray([s[0]]) if map_.kernel is None else map_.kernel * s[0])
            return replace(map_, kernel=map_.kernel * s[0], bias=None if map_.bias is None else map_.bias * s[0])
        s = np.broadcast_to(s, (map_.width,))
        return replace(map_, W=np.diag(s) if map_.W is None else map_.W * s, b=None if map_.b is None else map_.b * s)
    # Affine, Linear
    weight = np.asarray(node.weight, np.float64)
    if weight.ndim != 2 or weight.shape[1] != map_.width:
        raise BtcError(f"{where}: weight must be [out, {map_.width}] (its input has {map_.width} values), got "
                       f"{list(weight.shape)}")
    bias = None
    if kind == "Affine":
        bias = np.asarray(node.bias, np.float64).ravel()
        if bias.shape != (weight.shape[0],):
            raise BtcError(f"{where}: bias must have {weight.shape[0]} values, got {bias.size}")
    if map_.conv is not None:
        raise BtcError(f"{where}: follows a convolution (or a pool an Affine already read); btc projects one linear "
                       "map between two neuron nodes (put neurons between them)")
    if map_.pool is not None:  # pool, flatten, affine: a convolution whose kernel covers the pooled map
        pooled = map_.pool.out_shape(map_.start, where)
        gain = 1.0 if map_.kernel is None else float(map_.kernel[0])
        conv = Conv(map_.start, weight.shape[0], pooled[1:], pool=map_.pool)
        return replace(map_, shape=(weight.shape[0],), conv=conv, kernel=weight.reshape(conv.kernel_shape) * gain,
                       bias=bias if bias is not None and np.any(bias) else None, pool=None)
    W = weight.T if map_.W is None else map_.W @ weight.T
    b = None if map_.b is None else map_.b @ weight.T
    if bias is not None:
        b = bias + (0.0 if b is None else b)
    return replace(map_, shape=(weight.shape[0],), W=W, b=b)

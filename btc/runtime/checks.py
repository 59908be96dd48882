"""Checks of what a caller hands the runtime: arrays (shape, dtype, finite after the float32 cast), spike
trains (0/1) and learning rates; each failure is one BtcError naming the argument."""
from __future__ import annotations

import numpy as np

from btc.errors import BtcError

__all__ = ["checked_array", "check_spikes", "check_lr"]


def checked_array(a, shape: tuple, dtype, what: str) -> np.ndarray:
    """`a` as a contiguous `dtype` array of `shape`, finite once cast; else one BtcError naming `what`."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise BtcError(f"{what}: expected numbers, got dtype {a.dtype}")
    if a.shape != shape:
        raise BtcError(f"{what}: expected shape {list(shape)}, got {list(a.shape)}")
    with np.errstate(over="ignore"):  # overflow is what the check below reports
        out = np.ascontiguousarray(a, dtype=dtype)
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):  # after the cast: 1e300 is inf in float32
        beyond = a.dtype.kind == "f" and np.all(np.isfinite(a))
        raise BtcError(f"{what}: contains NaN or infinity"
                       + (f" (values beyond float32's range, {np.finfo(np.float32).max:.3g})" if beyond else ""))
    return out


def check_spikes(name: str, a: np.ndarray) -> None:
    """0/1 only, a block of steps at a time (no whole copy); NaN/inf are left to the float32 check."""
    for start in range(0, a.shape[0], 256):
        block = a[start:start + 256]
        off = (block != 0) & (block != 1) & np.isfinite(block)
        if off.any():
            raise BtcError(f"input {name!r} is declared binary (a spike train: event-driven work counts its "
                           f"non-zeros as ones) but holds {block[off].flat[0].item()!r}; pass 0/1 values or "
                           f"declare it net.input({name!r}, size, binary=False)")


def check_lr(lr) -> None:
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating))
                           or not np.isfinite(lr) or lr <= 0):
        raise BtcError(f"learning rate must be a positive number, got {lr!r}")

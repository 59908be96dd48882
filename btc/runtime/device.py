"""The IREE device configuration a loaded model runs on."""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["device_config", "keep_freed_memory"]

# Under mpirun, IREE's runtime sees the MPI world size in the environment and sets up its own MPI channel
# provider for collectives, loading libmpi.so by name: device creation fails unless that library is on
# LD_LIBRARY_PATH. btc's ranks exchange through mpi4py (btc.runtime.parallel), so the device is created
# with these hidden. (The rank variables stay: IREE picks a rank's CUDA device from them.)
MPI_WORLD_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


# glibc malloc parameters (mallopt) for IREE's CPU drivers, whose transient buffers (hundreds of MB per
# train_chunk call) are malloc'd and freed every call. By default glibc returns them to the kernel, and each
# call faults them in again, zeroed page by page. With one arena, no mmap below 1 GiB and a 256 MB pad kept
# at the heap's top when it is trimmed: recurrent_lif N=16,384 at 1 %, train_sequence 1340-1393 -> 1129-1198
# ms, apply_update 45 -> 31 ms, 2.25 M -> 0.41 M page faults over 5 sequences, peak RSS 944-1004 -> 1072 MiB
# (benchmarks/README.md; the pad is what keeps the memory: without it, no fewer faults). And no trim below
# 2 GiB free at the top: a call's transients past the pad (recurrent_lif N=8192, 0.5 %: a 268 MB gradient
# per loop iteration) were trimmed and faulted in again, train_chunk 1.45-1.72 -> 0.77-1.78 s, median 0.99
# (peak RSS not higher: what is kept was resident during the call; 3806 -> 2822 MiB there). Process-wide, set
# when btc.runtime is imported (btc.driver imports it too): threads that allocated before (JAX's) keep
# arenas of their own, which IREE's workers may then share. BTC_KEEP_FREED_MEMORY=0 leaves glibc's defaults.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8
KEPT_MEMORY = {_M_MMAP_THRESHOLD: 1 << 30, _M_TOP_PAD: 1 << 28, _M_TRIM_THRESHOLD: (1 << 31) - 1,
               _M_ARENA_MAX: 1}  # the arena limit last
_kept = False


def keep_freed_memory() -> bool:
    """Once per process, on glibc: have malloc keep freed memory for reuse (KEPT_MEMORY). Returns whether
    the parameters are in place; if glibc refuses one, the arena limit is not set (it pays only with the
    others)."""
    global _kept
    if _kept or os.environ.get("BTC_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return _kept
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for param, value in KEPT_MEMORY.items():
        assert ctypes.c_int(value).value == value, f"mallopt takes an int: {value}"
        if mallopt(param, value) != 1:
            return False
    _kept = True
    return _kept


def device_config(driver: str):
    import iree.runtime as rt

    if driver.startswith("local-"):
        keep_freed_memory()
    saved = {k: os.environ.pop(k) for k in MPI_WORLD_VARIABLES if k in os.environ}
    try:
        return rt.Config(driver)
    finally:
        os.environ.update(saved)

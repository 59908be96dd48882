"""IREE parameter archives (.irpa): the initial value of every mutable global of a btc module.

The lowering declares each mutable global as `#flow.parameter.named<"model"::"<global>">`, so a module
starts from whatever archive is provided under the scope "model" (the ABI's parameter_scope): btc's
runtime, or any IREE host
(`iree-run-module --parameters=model=params.irpa`). Parameters are stored as arrays; every other global
(gradients, states, traces, optimizer moments, counters) as a splat of its initial value, which costs no
bytes in the file.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from btc.errors import BtcError

__all__ = ["archive_entries", "write_archive", "check_archive_path", "read_archive", "parameter_module"]


def archive_entries(layout: list[dict], params: dict[str, np.ndarray],
                    optimizer: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray | float]:
    """global -> initial value: `params` by name for the "param" globals, the optimizer's state (as
    get_optimizer names it, "<role>.<name>") where given, the layout's own `init` for the rest."""
    entries = {}
    for e in layout:
        if e["role"] == "index":  # the index tables are module constants, not parameters
            continue
        key = f"{e['role']}.{e['name']}"
        if e["role"] == "param":
            value = params.get(e["name"])
            if value is None:
                raise BtcError(f"parameter archive: no value for parameter {e['name']!r}")
        elif optimizer is not None and key in optimizer:
            value = optimizer[key]
        else:
            entries[e["global"]] = float(e["init"])
            continue
        value = np.asarray(value, dtype=np.float32)
        if list(value.shape) != list(e["shape"]):
            raise BtcError(f"parameter archive: {key} has shape {list(value.shape)}, the module's global "
                           f"@{e['global']} has {e['shape']}")
        entries[e["global"]] = value
    return entries


def write_archive(path: str, layout: list[dict], entries: dict[str, np.ndarray | float]) -> None:
    """Write `entries` (global -> array, or a float splat over the global's shape) as an .irpa file,
    atomically: a temporary file in the same directory renamed over `path`."""
    import iree.runtime as rt

    shapes = {e["global"]: e["shape"] for e in layout}
    index = rt.ParameterIndex()
    for key, value in entries.items():
        if isinstance(value, float):
            n = int(np.prod(shapes[key], dtype=np.int64))
            index.add_splat(key, np.float32(value).tobytes(), 4 * n)
        else:
            rt.parameter_index_add_numpy_ndarray(index, key, np.ascontiguousarray(value, dtype=np.float32))
    bad = [k for k, v in entries.items() if not np.all(np.isfinite(v))]
    if bad:
        raise BtcError(f"refusing to write a parameter archive with NaN or infinite values in {bad} to {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".irpa-", suffix=".irpa", dir=directory)
        os.close(fd)
        index.create_archive_file(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, (OSError, RuntimeError, ValueError)):  # IREE reports a full disk as RuntimeError
            raise BtcError(f"could not write the parameter archive {path!r}: {e}") from None
        raise


def check_archive_path(path: str) -> None:
    """Where a user's archive may go: an existing directory, not inside an artifact, not over a file
    that is not a parameter archive."""
    from btc.runtime.checkpoint import inside_artifact

    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise BtcError(f"parameter archive path must be a file name, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise BtcError(f"parameter archive directory {directory!r} does not exist")
    if inside_artifact(directory):
        raise BtcError(f"refusing to write the parameter archive {path!r} inside the artifact directory {directory!r}")
    if os.path.lexists(path):
        try:
            _load_index(path)
        except BtcError:
            raise BtcError(f"refusing to overwrite {path!r}: it exists and is not a parameter archive") from None


def read_archive(source: str | bytes, layout: list[dict]) -> dict[str, np.ndarray]:
    """global -> its initial value as an array of the global's shape (splats expanded); `source` is
    the archive's path or its bytes."""
    import iree.runtime as rt

    index = _load_index(source)
    shapes = {e["global"]: e["shape"] for e in layout}
    out = {}
    for i in range(len(index)):
        entry = index[i]
        if entry.key not in shapes:
            raise BtcError(f"the parameter archive holds {entry.key!r}, which is no global of this module")
        if entry.is_splat:
            value = np.frombuffer(bytes(entry.splat_pattern), np.float32)[0]
            out[entry.key] = np.full(shapes[entry.key], value, np.float32)
        else:
            out[entry.key] = np.array(rt.parameter_index_entry_as_numpy_ndarray(entry)).reshape(shapes[entry.key])
    return out


def parameter_module(instance, source: str | bytes, scope: str):
    """The IREE io_parameters module serving the archive (its path, or its bytes, which it keeps a
    reference to) under `scope`, the ABI's parameter_scope."""
    import iree.runtime as rt

    return rt.create_io_parameters_module(instance, _load_index(source).create_provider(scope=scope))


def _load_index(source: str | bytes):
    import iree.runtime as rt

    index = rt.ParameterIndex()
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            index.load_from_file_handle(rt.FileHandle.wrap_memory(source, readable=True, writable=False), "irpa")
        elif not os.path.isfile(source):
            raise BtcError(f"parameter archive {source!r} does not exist")
        else:
            index.load(os.fspath(source), mmap=False)
    except (RuntimeError, ValueError) as e:
        what = "the bytes given" if isinstance(source, (bytes, bytearray, memoryview)) else repr(source)
        raise BtcError(f"{what} are not an IREE parameter archive (.irpa): {str(e).splitlines()[0][:200]}") from None
    return index

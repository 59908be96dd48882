"""Checkpoints: a model's parameters in one .npz, written atomically, never over anything that is
not a btc checkpoint, never inside an artifact, never with non-finite values."""
from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from btc.errors import BtcError

__all__ = ["save_checkpoint", "check_checkpoint_path", "read_checkpoint", "HASH_KEY", "MODEL_KEY", "OPTIMIZER_PREFIX"]

HASH_KEY = "__content_hash__"  # the artifact the parameters were trained with
MODEL_KEY = "__model_hash__"  # the model (btc.driver._model_hash), whatever it was compiled for
OPTIMIZER_PREFIX = "__optimizer__/"  # the optimizer's state: Adam moments and step count


def save_checkpoint(params: dict[str, np.ndarray], content_hash: str, path: str, model_hash: str = "",
                    optimizer: dict[str, np.ndarray] | None = None) -> None:
    """Write `params` (and the optimizer's state, its keys prefixed OPTIMIZER_PREFIX) to `path`
    atomically (a temporary file renamed over it); every check first."""
    bad = [n for n, a in {**params, **(optimizer or {})}.items() if not np.all(np.isfinite(a))]
    if bad:
        raise BtcError(f"refusing to save a checkpoint with NaN or infinite parameters {bad} to {path!r}; "
                       "training diverged (lower the learning rate)")
    target = check_checkpoint_path(path)
    directory = os.path.dirname(target)
    _remove_stale_temporaries(directory)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            extra = {OPTIMIZER_PREFIX + k: v for k, v in (optimizer or {}).items()}
            np.savez(f, **{HASH_KEY: np.array(content_hash), MODEL_KEY: np.array(model_hash)}, **params, **extra)
            f.flush()
            os.fsync(f.fileno())  # the rename must not publish a file whose data is still in flight
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a quota: the previous checkpoint stays as it was
            raise BtcError(f"could not write checkpoint {path!r}: {e.strerror or e}; the file is unchanged") from None
        raise


STALE_SECONDS = 3600  # a save takes seconds: an older temporary was left by a killed process


def _remove_stale_temporaries(directory: str) -> None:
    """Temporary files of saves that were killed (kill -9 leaves them), older than STALE_SECONDS."""
    import time

    now = time.time()
    for name in os.listdir(directory):
        if name.startswith(".ckpt-") and name.endswith(".npz"):
            path = os.path.join(directory, name)
            try:
                if now - os.path.getmtime(path) > STALE_SECONDS:
                    os.unlink(path)
            except OSError:
                pass


def check_checkpoint_path(path: str) -> str:
    """The absolute path a checkpoint may be written to; a BtcError saying why not (before training)."""
    if not isinstance(path, str) or not path:
        raise BtcError(f"checkpoint path must be a file name, got {path!r}")
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        raise BtcError(f"checkpoint path {path!r} is a directory; name a .npz file")
    if not os.path.isdir(directory):
        raise BtcError(f"checkpoint directory {directory!r} does not exist")
    if inside_artifact(directory):
        raise BtcError(f"refusing to write the checkpoint {path!r} inside the artifact directory {directory!r}")
    if os.path.lexists(target) and not _is_checkpoint(target):
        raise BtcError(f"refusing to overwrite {path!r}: it exists and is not a btc checkpoint")
    return target


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], str, str, dict[str, np.ndarray]]:
    """The parameters of a btc checkpoint, the content hash of the artifact that saved it, its model hash
    ("" if it has none) and the optimizer's state ({} if it has none)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise BtcError(f"checkpoint {path!r} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise BtcError(f"{path!r} is not a readable btc checkpoint ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy file holds one array
        raise BtcError(f"{path!r} is not a btc checkpoint (a single array, not a .npz of parameters)")
    try:
        with z:
            if HASH_KEY not in z.files:
                raise BtcError(f"{path!r} is not a btc checkpoint")
            model = str(z[MODEL_KEY]) if MODEL_KEY in z.files else ""
            params = {n: z[n] for n in z.files if n not in (HASH_KEY, MODEL_KEY) and not n.startswith(OPTIMIZER_PREFIX)}
            optimizer = {n[len(OPTIMIZER_PREFIX):]: z[n] for n in z.files if n.startswith(OPTIMIZER_PREFIX)}
            return params, str(z[HASH_KEY]), model, optimizer
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise BtcError(f"{path!r} is not a readable btc checkpoint ({e})") from None


def same_layout(saved: dict, mine: dict) -> bool:
    """Whether two sets of named arrays have the same names and shapes."""
    return saved.keys() == mine.keys() and all(np.shape(saved[k]) == np.shape(v) for k, v in mine.items())


def _is_checkpoint(path: str) -> bool:
    try:
        with np.load(path) as z:
            return hasattr(z, "files") and HASH_KEY in z.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def inside_artifact(directory: str) -> bool:
    """A btc artifact directory (or one below it): writing there would break its hashes."""
    d = os.path.realpath(directory)
    while True:
        if all(os.path.isfile(os.path.join(d, f)) for f in ("manifest.json", "model.vmfb")):
            return True
        parent = os.path.dirname(d)
        if parent == d:
            return False
        d = parent

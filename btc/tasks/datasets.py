"""Neuromorphic data sets from files, read in their published formats, and a task that trains on them.

  SHD / SSC (HDF5)  spikes/times (seconds, one array per sample), spikes/units, labels
  N-MNIST           a directory of label folders 0..9 of .bin files: 5 bytes per event, x (8 bits),
                    y (8 bits), polarity (1 bit), timestamp in microseconds (23 bits); 34 x 34 x 2 channels
                    (channel = polarity * 1156 + y * 34 + x)
  .npz              dense `x` [N, T, I] and `y` [N]; or events `times` (seconds), `units`, `sample` (the
                    sample of each event), `y` [N], optionally `input_size`

Events are binned to the model's time step: step = floor(time / dt); a channel that fires more than once
in a step counts once (spikes are 0/1); events after the last step are dropped. Nothing is downloaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from btc.errors import BtcError

__all__ = ["SpikeData", "read_data", "FileTask", "NMNIST_SIZE"]

NMNIST_SIDE = 34
NMNIST_SIZE = 2 * NMNIST_SIDE * NMNIST_SIDE


@dataclass
class SpikeData:
    """Samples as event lists (times in seconds, channels) or dense [N, T, I] arrays, with labels."""

    labels: np.ndarray
    input_size: int
    source: str
    times: list | None = None
    units: list | None = None
    dense: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def duration(self, dt: float) -> int:
        """Steps that hold every event (dense: its T)."""
        if self.dense is not None:
            return self.dense.shape[1]
        return max((int(_steps(t, dt).max()) for t in self.times if t.size), default=0) + 1

    def binned(self, index: np.ndarray, steps: int, dt: float, input_size: int) -> np.ndarray:
        """[steps, len(index), input_size] 0/1 spikes of the samples `index`."""
        x = np.zeros((steps, len(index), input_size), np.float32)
        for b, i in enumerate(index):
            if self.dense is not None:
                d = self.dense[i][:steps]
                x[:d.shape[0], b, :d.shape[1]] = d
                continue
            step = _steps(self.times[i], dt)
            keep = step < steps
            x[step[keep], b, self.units[i][keep]] = 1.0
        return x


def _steps(times: np.ndarray, dt: float) -> np.ndarray:
    """floor(time / dt), an event on a step's edge in that step (0.007 s / 0.001 s is 6.999... in floats)."""
    return np.floor(np.round(np.asarray(times, np.float64) / dt, 6)).astype(np.int64)


def read_data(path: str) -> SpikeData:
    """Read SHD/SSC (.h5, .hdf5), N-MNIST (a directory of label folders) or .npz."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.exists(path):
        raise BtcError(f"data {path!r} does not exist (expected an SHD/SSC .h5 file, an N-MNIST directory or .npz)")
    path = os.fspath(path)
    if os.path.isdir(path):
        return _read_nmnist(path)
    if path.endswith((".h5", ".hdf5")):
        return _read_shd(path)
    if path.endswith(".npz"):
        return _read_npz(path)
    raise BtcError(f"data {path!r}: unknown format; expected .h5/.hdf5 (SHD/SSC), .npz, or an N-MNIST directory")


def _checked(path: str, labels, times, units, input_size=None) -> SpikeData:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
        raise BtcError(f"data {path!r}: labels must be non-negative integers, one per sample")
    if len(times) != len(labels) or len(units) != len(labels):
        raise BtcError(f"data {path!r}: {len(labels)} labels but {len(times)} samples of times and {len(units)} of units")
    times = [np.asarray(t, np.float64) for t in times]
    units = [np.asarray(u) for u in units]
    for i, (t, u) in enumerate(zip(times, units)):
        if t.shape != u.shape or t.ndim != 1:
            raise BtcError(f"data {path!r}: sample {i} has {t.size} times but {u.size} units")
        if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
            raise BtcError(f"data {path!r}: sample {i} has negative or non-finite event times")
        if u.size and (u.dtype.kind not in "iu" or u.min() < 0):
            raise BtcError(f"data {path!r}: sample {i} has channels that are not non-negative integers")
    largest = max((int(u.max()) for u in units if u.size), default=-1) + 1
    if input_size is not None and largest > int(input_size):
        raise BtcError(f"data {path!r}: a channel {largest - 1} is not below input_size {int(input_size)}")
    return SpikeData(labels.astype(np.int32), int(input_size if input_size is not None else largest), path,
                     times, [u.astype(np.int64) for u in units])


def _read_shd(path: str) -> SpikeData:
    try:
        import h5py
    except ImportError:
        raise BtcError("reading SHD/SSC needs h5py (pip install h5py)") from None
    try:
        with h5py.File(path, "r") as f:
            if "spikes" not in f or "times" not in f["spikes"] or "units" not in f["spikes"] or "labels" not in f:
                raise BtcError(f"data {path!r} is not in the SHD/SSC layout (spikes/times, spikes/units, labels)")
            return _checked(path, f["labels"][()], list(f["spikes"]["times"][()]), list(f["spikes"]["units"][()]))
    except BtcError:
        raise
    except OSError as e:
        raise BtcError(f"data {path!r} is not a readable HDF5 file ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise BtcError(f"data {path!r} is not in the SHD/SSC layout ({type(e).__name__}: {e})") from None


def _read_nmnist(path: str) -> SpikeData:
    labels, times, units = [], [], []
    folders = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if not folders or not all(d.isdigit() for d in folders):
        raise BtcError(f"data {path!r}: an N-MNIST directory holds label folders 0..9 of .bin files, found {folders}")
    for label in folders:
        for name in sorted(os.listdir(os.path.join(path, label))):
            if not name.endswith(".bin"):
                continue
            with open(os.path.join(path, label, name), "rb") as f:
                raw = np.frombuffer(f.read(), np.uint8)
            if raw.size % 5:
                raise BtcError(f"data {os.path.join(path, label, name)!r}: {raw.size} bytes is not a whole number "
                               "of 5-byte N-MNIST events")
            ev = raw.reshape(-1, 5).astype(np.int64)
            x, y, polarity = ev[:, 0], ev[:, 1], ev[:, 2] >> 7
            stamp = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
            if ev.size and (x.max() >= NMNIST_SIDE or y.max() >= NMNIST_SIDE):
                raise BtcError(f"data {os.path.join(path, label, name)!r}: an event lies outside the 34 x 34 sensor")
            labels.append(int(label))
            times.append(stamp * 1e-6)
            units.append(polarity * NMNIST_SIDE * NMNIST_SIDE + y * NMNIST_SIDE + x)
    if not labels:
        raise BtcError(f"data {path!r}: no .bin files in its label folders")
    return _checked(path, np.array(labels), times, units, NMNIST_SIZE)


def _read_npz(path: str) -> SpikeData:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise BtcError(f"data {path!r} is not a readable .npz file ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise BtcError(f"data {path!r} holds one array (.npy), not an .npz of named arrays")
    try:
        return _npz_contents(path, z)
    except ValueError as e:  # object arrays need pickles, which are refused
        raise BtcError(f"data {path!r}: {e}") from None
    finally:
        z.close()


def _npz_contents(path: str, z) -> SpikeData:
    """Dense `x` and `y`, or events `times`, `units`, `sample` and `y` (and `input_size`)."""
    if "y" not in z.files:
        raise BtcError(f"data {path!r}: an .npz data set needs labels `y` [N]")
    y = z["y"]
    if "x" in z.files:
        x = z["x"]
        if x.ndim != 3 or x.shape[0] != len(y):
            raise BtcError(f"data {path!r}: dense `x` must be [N, T, I] with N = {len(y)} labels, got {list(x.shape)}")
        if not np.all((x == 0) | (x == 1)):
            raise BtcError(f"data {path!r}: dense `x` must hold spikes, 0 or 1")
        data = _checked(path, y, [np.zeros(0)] * len(y), [np.zeros(0, np.int64)] * len(y), x.shape[2])
        data.dense = x.astype(np.float32)
        return data
    if not {"times", "units", "sample"} <= set(z.files):
        raise BtcError(f"data {path!r}: an .npz data set holds dense `x` [N, T, I], or events `times`, `units` "
                       f"and `sample`; it has {sorted(z.files)}")
    sample = z["sample"].astype(np.int64)
    if sample.size and (sample.min() < 0 or sample.max() >= len(y)):
        raise BtcError(f"data {path!r}: `sample` must index the {len(y)} labels")
    if not z["times"].shape == z["units"].shape == sample.shape or sample.ndim != 1:
        raise BtcError(f"data {path!r}: `times`, `units` and `sample` must be equal-length lists of events, got "
                       f"{[list(z[k].shape) for k in ('times', 'units', 'sample')]}")
    if "input_size" in z.files and z["input_size"].size != 1:
        raise BtcError(f"data {path!r}: `input_size` must be one number")
    order = np.argsort(sample, kind="stable")
    bounds = np.searchsorted(sample[order], np.arange(len(y) + 1))
    times, units = z["times"][order], z["units"][order]
    return _checked(path, y, [times[a:b] for a, b in zip(bounds, bounds[1:])],
                    [units[a:b] for a, b in zip(bounds, bounds[1:])],
                    int(z["input_size"]) if "input_size" in z.files else None)


class FileTask:
    """Classification of a data set: the readout summed over every step (each weighted 1/steps) gives
    the class. Splits: "train"; "validation", a fraction of the training samples held out (a fixed
    draw) when `validation` > 0; "test", the test set, or without one the held-out samples (20 % of
    them unless `validation` says otherwise)."""

    def __init__(self, train: str, test: str | None = None, dt: float = 1e-3, steps: int | None = None,
                 validation: float = 0.0, seed: int = 0, input_size: int | None = None,
                 num_classes: int | None = None):
        """`input_size`, `num_classes`: the model's, when larger than the data's (SHD has 700 channels, and
        a small file may not use the last ones)."""
        if not (isinstance(dt, (int, float)) and dt > 0):
            raise BtcError(f"dt must be a positive number of seconds, got {dt!r}")
        self.train_data = read_data(train)
        self.test_data = read_data(test) if test else None
        self.dt = float(dt)
        sets = [self.train_data] + ([self.test_data] if self.test_data else [])
        channels = max(d.input_size for d in sets)
        classes = max(int(d.labels.max(initial=0)) for d in sets) + 1
        if input_size is not None and input_size < channels or num_classes is not None and num_classes < classes:
            raise BtcError(f"the data have {channels} channels and {classes} classes; the model takes "
                           f"{input_size} inputs and {num_classes} classes")
        self.input_size, self.num_classes = input_size or channels, num_classes or classes
        self.steps = int(steps) if steps else self.train_data.duration(self.dt)
        if not isinstance(validation, (int, float)) or not 0.0 <= validation < 1.0:
            raise BtcError(f"validation must be a fraction in [0, 1), got {validation!r}")
        order = np.random.default_rng(seed).permutation(len(self.train_data))
        fraction = validation or (0.0 if self.test_data else 0.2)
        held = int(round(fraction * len(order)))
        if fraction and not 0 < held < len(order):
            raise BtcError(f"holding out {fraction:.0%} of {len(order)} training samples leaves no split non-empty")
        train_index = order[held:]
        self.splits = {"train": (self.train_data, train_index)}
        if held:
            self.splits["validation"] = (self.train_data, np.sort(order[:held]))
        self.splits["test"] = ((self.test_data, np.arange(len(self.test_data))) if self.test_data
                               else self.splits["validation"])
        self.train_y = self.train_data.labels[train_index]

    def mask(self) -> np.ndarray:
        return np.full(self.steps, 1.0 / self.steps, np.float32)

    def batches(self, split: str, batch: int, rng: np.random.Generator, shuffle: bool):
        """Yield (x [T, B, I], labels [B], valid rows); a short last batch is zero-padded."""
        if split not in self.splits:
            raise BtcError(f"no {split!r} split; this data set has {sorted(self.splits)}")
        data, index = self.splits[split]
        order = rng.permutation(index) if shuffle else index
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            x = np.zeros((self.steps, batch, self.input_size), np.float32)
            x[:, :len(idx)] = data.binned(idx, self.steps, self.dt, self.input_size)
            labels = np.zeros(batch, np.int32)
            labels[:len(idx)] = data.labels[idx]
            yield x, labels, len(idx)

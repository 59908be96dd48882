"""scikit-learn's bundled 8x8 digits (1,797 images), Poisson rate-coded over T steps.

Fixed split: a seed-0 permutation, the first 1,437 images train and the last 360 test. Each pixel
(0..16) fires with probability `max_rate * pixel / 16` per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from btc.errors import BtcError

__all__ = ["DigitsTask"]


@dataclass
class DigitsTask:
    steps: int = 40
    max_rate: float = 0.5
    n_train: int = 1437
    input_size = 64
    num_classes = 10

    def __post_init__(self):
        try:
            from sklearn.datasets import load_digits
        except ImportError:  # a runtime-only install (requirements-runtime.txt) has no scikit-learn
            raise BtcError("the digits task reads scikit-learn's bundled digits: pip install scikit-learn "
                           "(the cue and dms tasks and --data need only numpy)") from None

        data = load_digits()
        order = np.random.default_rng(0).permutation(len(data.target))
        images = (data.images.reshape(len(data.target), -1) / 16.0).astype(np.float32)[order]
        labels = data.target.astype(np.int32)[order]
        self.train_x, self.train_y = images[:self.n_train], labels[:self.n_train]
        self.test_x, self.test_y = images[self.n_train:], labels[self.n_train:]

    def mask(self) -> np.ndarray:
        """The loss counts on the second half of the steps, averaged over them."""
        m = np.zeros(self.steps, np.float32)
        m[self.steps // 2:] = 1.0 / (self.steps - self.steps // 2)
        return m

    def encode(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[B, 64] intensities -> [T, B, 64] spikes."""
        p = images[None] * self.max_rate
        return (rng.random((self.steps,) + images.shape) < p).astype(np.float32)

    def batches(self, split: str, batch: int, rng: np.random.Generator, shuffle: bool):
        """Yield (x [T,B,64], labels [B], valid rows); a short last batch is zero-padded."""
        xs, ys = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        order = rng.permutation(len(ys)) if shuffle else np.arange(len(ys))
        for start in range(0, len(ys), batch):
            idx = order[start:start + batch]
            n = len(idx)
            images = np.zeros((batch, xs.shape[1]), np.float32)
            labels = np.zeros(batch, np.int32)
            images[:n], labels[:n] = xs[idx], ys[idx]
            yield self.encode(images, rng), labels, n

"""Evidence accumulation ("cue accumulation"), generated, never downloaded.

The task of Morcos & Harvey (2016) in the spiking form used by e-prop (Bellec et al. 2020) and
braintrace: the network sees a train of left/right cues, waits through a long delay, and when the
recall population fires it must say which side had more cues.

Timeline of one trial (all durations in ms, each rounded to whole steps of `dt` ms)::

    | lead | cue 1 | gap | cue 2 | gap | ... | cue N | delay | recall |
       0     100    50    100    50           100     1000    150        (defaults, lead 0)

    steps = round(lead/dt) + N*round(cue/dt) + (N-1)*round(gap/dt) + round(delay/dt) + round(recall/dt)

With the defaults (N = 7 cues of 100 ms, 50 ms gaps, 1000 ms delay, 150 ms recall, dt = 1 ms) a
trial is 700 + 300 + 1000 + 150 = 2150 steps. This follows the spec literally: the 50 ms separate
the cues, nothing precedes the first one. e-prop's own generator instead puts 50 ms of silence
*before* every cue (cue k spans [50 + 150k, 150 + 150k) ms), lets the delay run to 1050 ms and
ends at 2250 ms; `lead=50, delay=1050` reproduces that layout step for step.

Input channels: 4 populations of `population` (25) channels, in this order:

    [0, P)    left cue    fires at `rate` (40 Hz) during each left cue, silent otherwise
    [P, 2P)   right cue   fires at `rate` during each right cue, silent otherwise
    [2P, 3P)  recall      fires at `rate` during the recall window, silent otherwise
    [3P, 4P)  noise       fires at `noise_rate` (10 Hz) throughout

so `input_size = 4 * population` (100). Each channel spikes independently (Bernoulli per step) with
probability rate * dt / 1000.

Each cue goes left or right at random; the label is the side with more cues (0: left, 1: right;
`num_cues` is odd, so there are no ties); `num_classes = 2`. `bias` (default 0.5: every cue a fair
coin) makes trials lopsided as e-prop does: each trial picks a favoured side at random and each cue
falls on it with probability `bias` (e-prop's `p_group=0.3` is `bias=0.7`).

Datasets: the cue sequences of a fixed training set (`n_train`) and a fixed test set (`n_test`) are
drawn once from generators seeded by `seed`, so equal task objects hold identical trials; the
spikes are sampled in `batches` from the generator passed in, as for the digits task. The loss
counts only in the recall window (`mask()`: 1/recall_steps on each of its steps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from btc.errors import BtcError

__all__ = ["CueAccumulationTask"]


# Shared by the generated tasks (dms.py imports these).

def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check_int(owner: str, name: str, value, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise BtcError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_dt(owner: str, dt) -> None:
    if not _is_number(dt) or dt <= 0:
        raise BtcError(f"{owner}: dt must be a positive number of ms per step, got {dt!r}")


def _duration_steps(owner: str, name: str, ms, dt: float, positive: bool) -> int:
    """A duration in ms -> whole steps of dt ms (rounded); `positive` durations need >= 1 step."""
    if not _is_number(ms) or ms < 0 or (positive and ms == 0):
        expected = "a positive number of ms" if positive else "a number of ms >= 0"
        raise BtcError(f"{owner}: {name} must be {expected}, got {ms!r}")
    steps = int(round(ms / dt))
    if positive and steps < 1:
        raise BtcError(f"{owner}: {name}={ms} ms is shorter than one step of dt={dt} ms; "
                       f"expected at least {dt / 2} ms or a smaller dt")
    return steps


def _spike_probability(owner: str, name: str, hz, dt: float) -> float:
    """A firing rate in Hz -> spike probability per step of dt ms."""
    if not _is_number(hz) or hz < 0:
        raise BtcError(f"{owner}: {name} must be a firing rate in Hz >= 0, got {hz!r}")
    p = hz * dt / 1000.0
    if p > 1.0:
        raise BtcError(f"{owner}: {name}={hz} Hz at dt={dt} ms is {p:g} spikes per step; "
                       f"expected at most 1 (a rate <= {1000.0 / dt:g} Hz or a smaller dt)")
    return p


def _recall_mask(steps: int, start: int) -> np.ndarray:
    m = np.zeros(steps, np.float32)
    m[start:] = 1.0 / (steps - start)
    return m


def _batches(task, split: str, batch: int, rng: np.random.Generator, shuffle: bool):
    """Yield (x [T,B,I], labels [B], valid rows) over a split's trials; the rows past the valid ones
    of a short last batch are all zero (no spikes, label 0)."""
    if split not in ("train", "test"):
        raise BtcError(f"{type(task).__name__}: split must be 'train' or 'test', got {split!r}")
    _check_int(type(task).__name__, "batch", batch, 1)
    trials, labels = (task.train_trials, task.train_y) if split == "train" else (task.test_trials, task.test_y)
    order = rng.permutation(len(labels)) if shuffle else np.arange(len(labels))
    for start in range(0, len(labels), batch):
        idx = order[start:start + batch]
        n = len(idx)
        x = np.zeros((task.steps, batch, task.input_size), np.float32)
        x[:, :n] = task.encode(trials[idx], rng)
        y = np.zeros(batch, np.int32)
        y[:n] = labels[idx]
        yield x, y, n


@dataclass
class CueAccumulationTask:
    """Evidence accumulation over `num_cues` left/right cues (see the module docstring).

    Durations in ms: `cue` (100), `gap` between cues (50), `lead` before the first cue (0),
    `delay` after the last cue (1000), `recall` window (150); `dt` ms per step (1.0). Rates in Hz:
    `rate` (40) for cues and recall, `noise_rate` (10). After construction `steps`, `input_size`,
    `train_trials`/`test_trials` ([n, num_cues] int8, 0 left / 1 right) and `train_y`/`test_y`
    ([n] int32, the majority side) are attributes.
    """
    num_cues: int = 7
    cue: float = 100.0
    gap: float = 50.0
    delay: float = 1000.0
    recall: float = 150.0
    lead: float = 0.0
    dt: float = 1.0
    rate: float = 40.0
    noise_rate: float = 10.0
    population: int = 25
    bias: float = 0.5
    n_train: int = 1024
    n_test: int = 256
    seed: int = 0
    steps: int = field(init=False)
    input_size: int = field(init=False)
    num_classes = 2

    def __post_init__(self):
        me = type(self).__name__
        _check_int(me, "num_cues", self.num_cues, 1)
        if self.num_cues % 2 == 0:
            raise BtcError(f"{me}: num_cues must be odd (the majority side is the label), got {self.num_cues}")
        _check_dt(me, self.dt)
        self.lead_steps = _duration_steps(me, "lead", self.lead, self.dt, positive=False)
        self.cue_steps = _duration_steps(me, "cue", self.cue, self.dt, positive=True)
        self.gap_steps = _duration_steps(me, "gap", self.gap, self.dt, positive=False)
        self.delay_steps = _duration_steps(me, "delay", self.delay, self.dt, positive=False)
        self.recall_steps = _duration_steps(me, "recall", self.recall, self.dt, positive=True)
        self.p_cue = _spike_probability(me, "rate", self.rate, self.dt)
        self.p_noise = _spike_probability(me, "noise_rate", self.noise_rate, self.dt)
        _check_int(me, "population", self.population, 1)
        if not _is_number(self.bias) or not 0.0 <= self.bias <= 1.0:
            raise BtcError(f"{me}: bias must be a probability in [0, 1], got {self.bias!r}")
        _check_int(me, "n_train", self.n_train, 1)
        _check_int(me, "n_test", self.n_test, 1)
        _check_int(me, "seed", self.seed, 0)

        self.steps = (self.lead_steps + self.num_cues * self.cue_steps + (self.num_cues - 1) * self.gap_steps
                      + self.delay_steps + self.recall_steps)
        self.input_size = 4 * self.population
        self.train_trials, self.train_y = self.draw_trials(self.n_train, np.random.default_rng([self.seed, 0]))
        self.test_trials, self.test_y = self.draw_trials(self.n_test, np.random.default_rng([self.seed, 1]))

    # -- layout -------------------------------------------------------------------------------

    def channels(self, name: str) -> slice:
        """The input channels of a population: 'left', 'right', 'recall' or 'noise'."""
        k = ("left", "right", "recall", "noise").index(name)
        return slice(k * self.population, (k + 1) * self.population)

    def cue_windows(self) -> list[tuple[int, int]]:
        """[start, stop) steps of each cue, in order."""
        period = self.cue_steps + self.gap_steps
        return [(self.lead_steps + k * period, self.lead_steps + k * period + self.cue_steps)
                for k in range(self.num_cues)]

    def recall_window(self) -> tuple[int, int]:
        """[start, stop) steps of the recall window: the last `recall` ms."""
        return self.steps - self.recall_steps, self.steps

    def mask(self) -> np.ndarray:
        """[T] loss weight: 1/recall_steps in the recall window, 0 before; sums to 1."""
        return _recall_mask(self.steps, self.recall_window()[0])

    # -- data ---------------------------------------------------------------------------------

    def draw_trials(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n trials -> (cue sides [n, num_cues] int8, 0 left / 1 right; labels [n] int32, the majority)."""
        favoured = rng.integers(0, 2, size=(n, 1))
        on_favoured = rng.random((n, self.num_cues)) < self.bias
        sides = np.where(on_favoured, favoured, 1 - favoured).astype(np.int8)
        labels = (2 * sides.sum(1) > self.num_cues).astype(np.int32)
        return sides, labels

    def probabilities(self, sides: np.ndarray) -> np.ndarray:
        """Cue sides [B, num_cues] -> per-step spike probabilities [T, B, input_size] float32."""
        sides = np.asarray(sides)
        p = np.zeros((self.steps, len(sides), self.input_size), np.float32)
        for k, (start, stop) in enumerate(self.cue_windows()):
            for side, name in enumerate(("left", "right")):
                p[start:stop, sides[:, k] == side, self.channels(name)] = self.p_cue
        start, stop = self.recall_window()
        p[start:stop, :, self.channels("recall")] = self.p_cue
        p[:, :, self.channels("noise")] = self.p_noise
        return p

    def encode(self, sides: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Cue sides [B, num_cues] -> spikes [T, B, input_size] float32 (0/1)."""
        p = self.probabilities(sides)
        return (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)

    def batches(self, split: str, batch: int, rng: np.random.Generator, shuffle: bool):
        """Yield (x [T,B,input_size] spikes, labels [B] int32, valid rows) over the 'train' or 'test'
        trials; the spikes are sampled from `rng`; a short last batch is zero-padded."""
        return _batches(self, split, batch, rng, shuffle)

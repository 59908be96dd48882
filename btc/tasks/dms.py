"""Delayed match-to-sample, generated, never downloaded.

Two stimuli, each one of `num_stimuli` patterns, are shown with a long delay between them; when the
recall population fires the network must say whether the second stimulus was the same pattern as
the first (label 1: match, 0: non-match; `num_classes = 2`).

Timeline of one trial (all durations in ms, each rounded to whole steps of `dt` ms)::

    | lead | stimulus 1 | delay | stimulus 2 | recall |
       0       150        500       150        150        (defaults)

    steps = round(lead/dt) + 2*round(stimulus/dt) + round(delay/dt) + round(recall/dt)

so a default trial (dt = 1 ms) is 950 steps. The response (recall) window follows the second
stimulus at once.

Input channels: `num_stimuli + 2` populations of `population` (25) channels, in this order:

    [kP, (k+1)P)  pattern k (k < num_stimuli)  fires at `rate` (40 Hz) while a stimulus shows pattern k
    next P        recall                       fires at `rate` during the recall window
    last P        noise                        fires at `noise_rate` (10 Hz) throughout

so `input_size = (num_stimuli + 2) * population` (100 for the default two patterns). Each channel
spikes independently (Bernoulli per step) with probability rate * dt / 1000.

Trials are balanced: half of each set match (the two halves differ by at most one trial when the
set size is odd), in random order; the first stimulus is uniform over the patterns, and a
non-matching second one is uniform over the other patterns.

Datasets: the stimulus pairs of a fixed training set (`n_train`) and a fixed test set (`n_test`)
are drawn once from generators seeded by `seed`, so equal task objects hold identical trials; the
spikes are sampled in `batches` from the generator passed in. The loss counts only in the recall
window (`mask()`: 1/recall_steps on each of its steps).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from btc.errors import BtcError
from btc.tasks.cue import (_batches, _check_dt, _check_int, _duration_steps, _recall_mask,
                           _spike_probability)

__all__ = ["DelayedMatchTask"]


@dataclass
class DelayedMatchTask:
    """Delayed match-to-sample over `num_stimuli` patterns (see the module docstring).

    Durations in ms: `stimulus` (150), `delay` between the stimuli (500), `recall` window (150),
    `lead` before the first stimulus (0); `dt` ms per step (1.0). Rates in Hz: `rate` (40) for the
    stimuli and recall, `noise_rate` (10). After construction `steps`, `input_size`,
    `train_trials`/`test_trials` ([n, 2] int32: the two patterns) and `train_y`/`test_y` ([n] int32,
    1 where they match) are attributes.
    """
    num_stimuli: int = 2
    stimulus: float = 150.0
    delay: float = 500.0
    recall: float = 150.0
    lead: float = 0.0
    dt: float = 1.0
    rate: float = 40.0
    noise_rate: float = 10.0
    population: int = 25
    n_train: int = 1024
    n_test: int = 256
    seed: int = 0
    steps: int = field(init=False)
    input_size: int = field(init=False)
    num_classes = 2

    def __post_init__(self):
        me = type(self).__name__
        _check_int(me, "num_stimuli", self.num_stimuli, 2)
        _check_dt(me, self.dt)
        self.lead_steps = _duration_steps(me, "lead", self.lead, self.dt, positive=False)
        self.stimulus_steps = _duration_steps(me, "stimulus", self.stimulus, self.dt, positive=True)
        self.delay_steps = _duration_steps(me, "delay", self.delay, self.dt, positive=False)
        self.recall_steps = _duration_steps(me, "recall", self.recall, self.dt, positive=True)
        self.p_stimulus = _spike_probability(me, "rate", self.rate, self.dt)
        self.p_noise = _spike_probability(me, "noise_rate", self.noise_rate, self.dt)
        _check_int(me, "population", self.population, 1)
        _check_int(me, "n_train", self.n_train, 1)
        _check_int(me, "n_test", self.n_test, 1)
        _check_int(me, "seed", self.seed, 0)

        self.steps = self.lead_steps + 2 * self.stimulus_steps + self.delay_steps + self.recall_steps
        self.input_size = (self.num_stimuli + 2) * self.population
        self.train_trials, self.train_y = self.draw_trials(self.n_train, np.random.default_rng([self.seed, 0]))
        self.test_trials, self.test_y = self.draw_trials(self.n_test, np.random.default_rng([self.seed, 1]))

    # -- layout -------------------------------------------------------------------------------

    def channels(self, name) -> slice:
        """The input channels of a population: a pattern index (0..num_stimuli-1), 'recall' or 'noise'."""
        if name == "recall":
            k = self.num_stimuli
        elif name == "noise":
            k = self.num_stimuli + 1
        elif isinstance(name, (int, np.integer)) and 0 <= name < self.num_stimuli:
            k = int(name)
        else:
            raise BtcError(f"{type(self).__name__}: unknown population {name!r}; expected a pattern "
                           f"index 0..{self.num_stimuli - 1}, 'recall' or 'noise'")
        return slice(k * self.population, (k + 1) * self.population)

    def stimulus_windows(self) -> list[tuple[int, int]]:
        """[start, stop) steps of the first and the second stimulus."""
        first = self.lead_steps
        second = first + self.stimulus_steps + self.delay_steps
        return [(first, first + self.stimulus_steps), (second, second + self.stimulus_steps)]

    def recall_window(self) -> tuple[int, int]:
        """[start, stop) steps of the recall (response) window: the last `recall` ms."""
        return self.steps - self.recall_steps, self.steps

    def mask(self) -> np.ndarray:
        """[T] loss weight: 1/recall_steps in the recall window, 0 before; sums to 1."""
        return _recall_mask(self.steps, self.recall_window()[0])

    # -- data ---------------------------------------------------------------------------------

    def draw_trials(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n trials -> (patterns [n, 2] int32; labels [n] int32, 1 where the two match), half matching."""
        labels = rng.permutation(np.arange(n) % 2).astype(np.int32)
        first = rng.integers(0, self.num_stimuli, size=n)
        other = (first + rng.integers(1, self.num_stimuli, size=n)) % self.num_stimuli
        second = np.where(labels == 1, first, other)
        return np.stack([first, second], 1).astype(np.int32), labels

    def probabilities(self, patterns: np.ndarray) -> np.ndarray:
        """Patterns [B, 2] -> per-step spike probabilities [T, B, input_size] float32."""
        patterns = np.asarray(patterns)
        p = np.zeros((self.steps, len(patterns), self.input_size), np.float32)
        for j, (start, stop) in enumerate(self.stimulus_windows()):
            for k in range(self.num_stimuli):
                p[start:stop, patterns[:, j] == k, self.channels(k)] = self.p_stimulus
        start, stop = self.recall_window()
        p[start:stop, :, self.channels("recall")] = self.p_stimulus
        p[:, :, self.channels("noise")] = self.p_noise
        return p

    def encode(self, patterns: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Patterns [B, 2] -> spikes [T, B, input_size] float32 (0/1)."""
        p = self.probabilities(patterns)
        return (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)

    def batches(self, split: str, batch: int, rng: np.random.Generator, shuffle: bool):
        """Yield (x [T,B,input_size] spikes, labels [B] int32, valid rows) over the 'train' or 'test'
        trials; the spikes are sampled from `rng`; a short last batch is zero-padded."""
        return _batches(self, split, batch, rng, shuffle)

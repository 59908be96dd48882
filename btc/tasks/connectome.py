"""The connectome fitting task: a student network learns, online, to reproduce a teacher's
region-averaged activity. Both have the same wiring (an artifact compiled from
`btc.frontend.zoo.connectome_lif`); the teacher's per-neuron parameters and its weight scale per
presynaptic region and sign are hidden, drawn around the student's initial values.

Runtime only (numpy): the artifact plays both roles, the teacher's parameters set while it records.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from btc.errors import BtcError

__all__ = ["ConnectomeTask", "train_connectome"]

REQUIRED = {"inputs": ["stim"], "groups": ["brain", "regions"], "projections": ["stim_to_brain", "region_means"]}


class ConnectomeTask:
    """Stimulus streams, the hidden teacher and its recordings for one artifact.

    `spread`: the teacher's per-neuron parameters are the student's times exp(N(0, spread^2)) and its
    weights times a factor per (presynaptic region, sign) of exp(N(0, spread^2)); `rate`: the
    stimulus channels' mean spike probability per step, modulated by slow sinusoids."""

    def __init__(self, model, seed: int = 0, spread: float = 0.3, rate: float = 0.2, warmup: int = 50):
        self._check(model)
        self.model, self.rate, self.warmup = model, rate, warmup
        self.student = model.params
        rng = np.random.default_rng([seed, 7])
        readout_pre, self.region = model.connectivity["region_means"]  # neuron -> its region (fixed readout)
        if not np.array_equal(readout_pre, np.arange(readout_pre.size)):
            raise BtcError("connectome task: the readout projection 'region_means' must take each neuron once (to its region)")
        self.teacher = dict(self.student)
        for name in model.abi["params"]:
            key = name["name"]
            if key.startswith("brain.") and name["trainable"]:
                self.teacher[key] = self.student[key] * np.exp(rng.normal(0, spread, self.student[key].shape)).astype(
                    np.float32)
        n_regions = int(self.region.max()) + 1
        for proj in ("exc", "inh"):
            if f"{proj}.W" in self.student:
                pre, _ = model.connectivity[proj]
                factor = np.exp(rng.normal(0, spread, n_regions)).astype(np.float32)
                self.teacher[f"{proj}.W"] = self.student[f"{proj}.W"] * factor[self.region[pre]]
        self.channels = next(i["size"] for i in model.abi["inputs"] if i["name"] == "stim")

    @staticmethod
    def _check(model) -> None:
        abi = model.abi
        have = {"inputs": [i["name"] for i in abi["inputs"]], "groups": [g["name"] for g in abi["groups"]],
                "projections": [p["name"] for p in abi["projections"]]}
        missing = [f"{kind[:-1]} {n!r}" for kind, names in REQUIRED.items() for n in names if n not in have[kind]]
        if missing or abi["loss"] != "mse" or len(abi["inputs"]) != 1:
            raise BtcError(f"the connectome task needs an artifact of btc.frontend.zoo.connectome_lif (one input "
                           f"'stim', a group 'brain', a fixed readout 'regions', MSE); this one lacks "
                           f"{missing or 'an MSE loss on one input'}")

    def stimulus(self, steps: int, rng: np.random.Generator) -> np.ndarray:
        """[steps, B, channels] spikes: each channel's probability rate*(1 + sin(2 pi t / period + phase)),
        periods 100-1000 steps."""
        B = self.model.batch
        t = np.arange(steps)[:, None, None]
        period = rng.uniform(100, 1000, (1, B, self.channels))
        phase = rng.uniform(0, 2 * np.pi, (1, B, self.channels))
        p = self.rate * (1 + np.sin(2 * np.pi * t / period + phase))
        return (rng.random((steps, B, self.channels)) < p).astype(np.float32)

    def record(self, x: np.ndarray) -> np.ndarray:
        """The teacher's region signals for stimulus x ([T, B, regions]); the student's parameters are
        put back afterwards."""
        current = self.model.params
        try:
            self.model.set_params(self.teacher)
            return self.model.infer_sequence(x)["readout"]
        finally:
            self.model.set_params(current)

    def mask(self, steps: int) -> np.ndarray:
        """The warm-up steps do not count; the rest weigh 1/counted steps each."""
        m = np.zeros(steps, np.float32)
        m[self.warmup:] = 1.0 / max(1, steps - self.warmup)
        return m

    def error(self, x: np.ndarray, target: np.ndarray) -> float:
        """The student's mean squared error on the region signals after the warm-up (forward only)."""
        r = self.model.infer_sequence(x)["readout"]
        return float(np.mean((r[self.warmup:] - target[self.warmup:]) ** 2))


def train_connectome(model, epochs: int, lr: float, steps: int = 1000, window: int | None = None, seed: int = 0,
                     task: ConnectomeTask | None = None,
                     progress: Callable[[int, dict], None] | None = None) -> dict:
    """Each epoch: a new stimulus of `steps` steps, the teacher's recording of it, and the student
    trained online along it, `window` steps per update, its state carried across windows. The
    held-out error (a fixed stimulus the student never trains on) before training and after each
    epoch measures the fit. `window` (default: the chunk's multiple nearest 100) must be a multiple
    of the artifact's chunk: the state runs on across windows, which a zero-padded chunk would break."""
    window = window or model.chunk * max(1, round(100 / model.chunk))
    if epochs <= 0 or window <= 0 or window % model.chunk:
        raise BtcError(f"epochs must be positive and window a positive multiple of the artifact's chunk "
                       f"({model.chunk}), got epochs={epochs}, window={window}")
    task = task or ConnectomeTask(model, seed=seed)
    if steps <= task.warmup:
        raise BtcError(f"steps ({steps}) must exceed the task's warm-up ({task.warmup} steps), which is not counted")
    rng = np.random.default_rng(seed)
    held_x = task.stimulus(steps, np.random.default_rng([seed, 1]))
    held_target = task.record(held_x)
    history = [{"epoch": 0, "heldout_mse": task.error(held_x, held_target)}]
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        x = task.stimulus(steps, rng)
        target = task.record(x)
        mask = task.mask(steps) * (steps - task.warmup) / window  # each window's counted steps average
        losses = []
        for t0 in range(0, steps, window):
            sl = slice(t0, min(steps, t0 + window))
            out = model.train_sequence(x[sl], target[sl], mask[sl], lr=lr, reset=t0 == 0)
            losses.append(out["loss"])
            if progress:
                progress(epoch, {"loss": out["loss"]})
        history.append({"epoch": epoch, "train_loss": float(np.sum(losses) * window / steps),
                        "heldout_mse": task.error(held_x, held_target)})
    return {"epochs": history, "train_seconds": time.perf_counter() - start,
            "initial_mse": history[0]["heldout_mse"], "final_mse": history[-1]["heldout_mse"]}

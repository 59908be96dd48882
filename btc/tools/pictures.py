"""The pictures `btc plot` and `btc raster` draw (matplotlib, without a display)."""
from __future__ import annotations

import json
import os

import numpy as np

from btc.errors import BtcError

__all__ = ["read_metrics", "plot_metrics", "plot_raster"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BtcError("btc plot and btc raster draw with matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(path: str) -> list[dict]:
    """The epoch records of `btc train --metrics` (one JSON object per line)."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise BtcError(f"{path}:{n} is not a JSON line ({e.msg}); expected the output of btc train --metrics")
            if not isinstance(record, dict) or "epoch" not in record:
                raise BtcError(f"{path}:{n} has no 'epoch'; expected the output of btc train --metrics")
            records.append(record)
    if not records:
        raise BtcError(f"{path} holds no epochs")
    return records


def _save(fig, plt, output: str) -> None:
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        plt.close(fig)
        raise BtcError(f"cannot write {output!r}: {directory} is not a directory")
    try:
        fig.savefig(output, dpi=120)
    except (OSError, ValueError) as e:
        raise BtcError(f"cannot write {output!r}: {e}") from None
    finally:
        plt.close(fig)


def plot_metrics(path: str, output: str) -> None:
    """Loss (left) and accuracy (right) per epoch: training, and the held-out split where evaluated."""
    records = read_metrics(path)
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, ax in (("loss", loss_ax), ("acc", acc_ax)):
        for split in ("train", "validation", "test"):
            points = [(r["epoch"], r[f"{split}_{kind}"]) for r in records if f"{split}_{kind}" in r]
            if points:
                ax.plot(*zip(*points), marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy" if kind == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_ylim(0, 1.02)
    fig.suptitle(f"{records[0].get('task', '')}: online training, {len(records)} epochs")
    fig.tight_layout()
    _save(fig, plt, output)


def plot_raster(record: dict, x: np.ndarray, label: int, sample: int, title: str, output: str,
                traces: int = 4) -> None:
    """The input spikes, each spiking group's raster with the membrane (first state) of a few of its
    neurons, and the readout over time, for one sample of `infer_sequence(record=True)`."""
    groups = [k[len("spikes."):] for k in record if k.startswith("spikes.")]
    plt = _pyplot()
    rows = 2 + 2 * len(groups)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 1.6 * rows + 1), sharex=True)
    T = x.shape[0]

    def raster(ax, spikes, name):
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, s=2, c="k", marker="|")
        ax.set_ylabel(f"{name}\nneuron")
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
        ax.set_title(f"{name}: {int(spikes.sum())} spikes", fontsize=9, loc="left")

    raster(axes[0], x[:, sample], "input")
    for i, g in enumerate(groups):
        raster(axes[1 + 2 * i], record[f"spikes.{g}"][:, sample], g)
        state = next((k for k in record if k.startswith(f"state.{g}.")), None)
        ax = axes[2 + 2 * i]
        if state is not None:
            for n in range(min(traces, record[state].shape[2])):
                ax.plot(np.arange(T), record[state][:, sample, n], lw=0.8)
            ax.set_ylabel(state[len("state."):])
    readout = record["readout"][:, sample]
    for c in range(readout.shape[1]):
        axes[-1].plot(np.arange(T), readout[:, c], lw=1.2 if c == label else 0.6,
                      label=f"class {c}" + (" (label)" if c == label else ""))
    axes[-1].set_ylabel("readout")
    axes[-1].set_xlabel("time step")
    axes[-1].legend(fontsize=7, ncol=min(5, readout.shape[1]), loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, plt, output)

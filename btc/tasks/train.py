"""Online training of a loaded artifact on a task: one sequence per batch, an update after each."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from btc.errors import BtcError
from btc.tasks.cue import CueAccumulationTask
from btc.tasks.digits import DigitsTask
from btc.tasks.dms import DelayedMatchTask

__all__ = ["TASKS", "get_task", "train", "evaluate"]

TASKS = {"digits": DigitsTask, "cue": CueAccumulationTask, "dms": DelayedMatchTask}


def get_task(name: str, **kwargs):
    if name not in TASKS:
        raise BtcError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name](**kwargs)


def _check_model(model, task) -> None:
    inputs = model.inputs
    if len(inputs) != 1 or next(iter(inputs.values()))["size"] != task.input_size:
        raise BtcError(f"task needs one input of {task.input_size} channels; the artifact has "
                       f"{ {k: v['size'] for k, v in inputs.items()} }")
    if model.num_classes != task.num_classes or model.abi["loss"] != "cross_entropy":
        raise BtcError(f"task needs a cross-entropy readout of {task.num_classes} classes; the artifact has "
                       f"{model.num_classes} ({model.abi['loss']})")


def evaluate(model, task, seed: int = 1, split: str = "test") -> dict:
    """Accuracy and loss on a split: the class is the argmax of the readout summed over the masked
    (counted) steps; the loss is the training loss, sum_t mask_t * mean_b cross-entropy(r_t, label)."""
    rng = np.random.default_rng(seed)
    weight = task.mask()
    correct = total = 0
    loss = 0.0
    for x, labels, n in task.batches(split, model.batch, rng, shuffle=False):
        readout = model.infer_sequence(x)["readout"][:, :n].astype(np.float64)
        pred = np.argmax(np.einsum("t,tbc->bc", weight, readout), -1)
        correct += int(np.sum(pred == labels[:n]))
        shifted = readout - readout.max(-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        loss -= float(np.einsum("t,tb->", weight, np.take_along_axis(logp, labels[None, :n, None], -1)[..., 0]))
        total += n
    if not total:
        raise BtcError(f"the {split!r} split has no samples to evaluate")
    return {"acc": correct / total, "loss": loss / total}


def train(model, task, epochs: int, lr: float, seed: int = 0,
          progress: Callable[[int, dict], None] | None = None, eval_every: int = 0,
          on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train online (pp-prop: K-step chunks through the module; BPTT: whole sequence), one
    optimizer step per batch; full batches only (the short last one is skipped). Every `eval_every`
    epochs the validation split (the test split if the task has none) is evaluated; `on_epoch` gets
    each epoch's record as soon as it is done."""
    _check_model(model, task)
    if model.batch > len(task.train_y):
        raise BtcError(f"the artifact's batch ({model.batch}) is larger than the task's training set "
                       f"({len(task.train_y)} samples); recompile with a smaller --batch")
    if epochs <= 0:
        raise BtcError(f"epochs must be a positive integer, got {epochs}")
    held_out = "validation" if "validation" in getattr(task, "splits", {}) else "test"
    rng = np.random.default_rng(seed)
    mask = task.mask()
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        losses, correct, seen = [], 0, 0
        for x, labels, n in task.batches("train", model.batch, rng, shuffle=True):
            if n < model.batch:
                continue
            out = model.train_sequence(x, labels, mask, lr=lr)
            losses.append(out["loss"])
            pred = np.argmax(out["readout_sum"], -1)
            correct += int(np.sum(pred == labels))
            seen += n
            if progress:
                progress(epoch, {"loss": out["loss"]})
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "train_acc": correct / seen}
        if eval_every and (epoch + 1) % eval_every == 0:
            scores = evaluate(model, task, split=held_out)
            record.update({f"{held_out}_loss": scores["loss"], f"{held_out}_acc": scores["acc"]})
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        if on_epoch:
            on_epoch(record)
    seconds = time.perf_counter() - start
    return {"epochs": history, "train_seconds": seconds, "test_acc": evaluate(model, task)["acc"]}

"""The `btc` commands around online training: train, eval, plot, raster. They use only the runtime and
the tasks (no compiler, no JAX); plot and raster draw with matplotlib."""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys

import click
import numpy as np

from btc.errors import BtcError
from btc.tasks.train import TASKS

__all__ = ["train_cmd", "eval_cmd", "plot_cmd", "raster_cmd", "fail"]


def fail(e: Exception):
    """A BtcError as the CLI's one-line error (every command's)."""
    raise click.ClickException(str(e))


def _data_options(f):
    """--task or --data (with --test-data, --validation, --dt, --steps, --seed): where samples come from."""
    for option in reversed([
        click.option("--task", type=click.Choice(sorted(TASKS) + ["connectome"]), default="digits", show_default=True,
                     help="digits: --steps per sample; cue, dms: length set by the task's timing; connectome: fit a "
                          "hidden teacher's region signals (an artifact of examples/fly_connectome.py), --steps per epoch"),
        click.option("--data", type=click.Path(exists=True), default=None,
                     help="a data set instead of --task: SHD/SSC .h5, an N-MNIST directory or .npz (btc.tasks.datasets)"),
        click.option("--test-data", type=click.Path(exists=True), default=None,
                     help="its test set (default: 20 % of --data held out)"),
        click.option("--validation", type=click.FloatRange(0, 1, max_open=True), default=0.0,
                     help="hold out this fraction of --data's training samples, evaluated by --eval-every"),
        click.option("--dt", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
                     help="seconds per time step when binning --data events"),
        click.option("--steps", type=click.IntRange(1), default=None,
                     help="time steps per sample (digits: 40; --data: its longest sample) or per epoch (connectome: 1000)"),
        click.option("--seed", type=int, default=0, show_default=True, help="shuffling, spike encoding, held-out draw"),
    ]):
        f = option(f)
    return f


def _source(model, task, data, test_data, validation, dt, steps, seed):
    """(task object, its name) for a batched task or a data set."""
    from btc.tasks import get_task

    if data:
        from btc.tasks.datasets import FileTask

        size = next(iter(model.inputs.values()))["size"] if len(model.inputs) == 1 else None
        # the held-out draw is fixed (seed 0), whatever --seed shuffles: btc eval must score the same samples
        return (FileTask(data, test_data, dt=dt, steps=steps, validation=validation, seed=0, input_size=size,
                         num_classes=model.num_classes), os.path.basename(os.path.normpath(data)))
    if task == "connectome":
        raise BtcError("the connectome task has its own loop: btc train ARTIFACT --task connectome")
    return get_task(task, steps=steps or 40) if task == "digits" else get_task(task), task


def _load(artifact, checkpoint, partitioned_ok: bool = False):
    from btc.runtime import load
    from btc.runtime.partitioned import PLAN_FILE, Partitioned

    # a partitioned build (btc compile --partition K): this rank's part, under mpirun -n K
    if os.path.isfile(os.path.join(artifact, PLAN_FILE)):
        if not partitioned_ok:
            raise BtcError(f"{artifact} is a partitioned build, which only btc train runs (under mpirun); its "
                           "checkpoints hold the whole network: compile the model without --partition and pass "
                           "the checkpoint to that artifact")
        model = Partitioned(artifact)
    else:
        model = load(artifact)
    if checkpoint:
        model.load_checkpoint(checkpoint)
    return model


@click.command("train")
@click.argument("artifact", type=click.Path())
@_data_options
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--eval-every", type=click.IntRange(0), default=0,
              help="evaluate the validation split (else the test split) every N epochs (0: only at the end)")
@click.option("--metrics", type=click.Path(dir_okay=False), default=None,
              help="write one JSON line per epoch here, as it ends (for btc plot)")
@click.option("--resume", type=click.Path(dir_okay=False, exists=True), default=None,
              help="start from this checkpoint: parameters and optimizer state")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None, help="save the trained parameters here")
@click.option("--data-parallel", is_flag=True,
              help="under mpirun -n K: each rank trains on its share of every batch (the artifact's batch per rank), "
                   "gradients averaged before each update; rank 0 reports and writes the checkpoint")
def train_cmd(artifact, task, data, test_data, validation, dt, steps, seed, epochs, lr, eval_every, metrics, resume,
              checkpoint, data_parallel):
    """Train an artifact online on a task or a data set, then report test accuracy (connectome: held-out error)."""
    from btc.runtime.checkpoint import check_checkpoint_path

    try:
        if checkpoint:
            check_checkpoint_path(checkpoint)  # before training: a bad path must not cost a run
        model = _load(artifact, resume, partitioned_ok=True)
        quiet = contextlib.ExitStack()
        if hasattr(model, "plan") and data_parallel:
            raise BtcError(f"{artifact} is a partitioned network (its ranks split the neurons, not the batch); "
                           "train it with mpirun -n K btc train, without --data-parallel")
        if data_parallel:
            from btc.runtime.parallel import DataParallel

            if task == "connectome" and not data:
                raise BtcError("--data-parallel trains the batched tasks and data sets; the connectome task "
                               "streams one sample")
            model = DataParallel(model)
        if getattr(model, "rank", 0):  # one report, from rank 0
            quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
            quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
        with quiet:
            if task == "connectome" and not data:
                if metrics or eval_every:
                    raise BtcError("--metrics and --eval-every record the batched tasks and data sets; the connectome "
                                   "task reports its held-out error every epoch")
                _train_connectome(model, epochs, lr, steps or 1000, seed)
            else:
                source, name = _source(model, task, data, test_data, validation, dt, steps, seed)
                log = _MetricsLog(metrics) if metrics and getattr(model, "rank", 0) == 0 else None
                try:
                    _train_task(model, source, name, epochs, lr, seed, eval_every, log)
                finally:
                    if log and log.file:
                        log.file.close()
            if checkpoint:
                model.save_checkpoint(checkpoint)
    except BtcError as e:
        fail(e)


class _MetricsLog:
    """JSON lines, one per epoch as it ends; the file is replaced only once the first epoch is done (a run
    that fails before that leaves the previous run's records)."""

    def __init__(self, path: str):
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory) or os.path.isdir(path):
            raise BtcError(f"cannot write metrics to {path!r}: {directory} is not a directory, or it is one")
        self.path, self.file = path, None

    def write(self, line: str) -> None:
        try:
            if self.file is None:
                self.file = open(self.path, "w")
            self.file.write(line)
            self.file.flush()
        except OSError as e:
            raise BtcError(f"cannot write metrics to {self.path!r}: {e.strerror or e}") from None


def _train_task(model, source, name, epochs, lr, seed, eval_every, log) -> None:
    from btc.tasks import train as run_training

    def on_epoch(record: dict) -> None:
        click.echo(f"epoch {record['epoch']}: " + " ".join(
            f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds")) + f" ({record['seconds']:.1f} s)")
        if log:
            log.write(json.dumps({"task": name, **record}) + "\n")

    per_epoch = len(source.train_y) // model.batch
    with click.progressbar(length=epochs * per_epoch, label=f"training ({model.algorithm})", file=sys.stderr) as bar:
        result = run_training(model, source, epochs, lr, seed, progress=lambda epoch, info: bar.update(1),
                              eval_every=eval_every, on_epoch=on_epoch)
    click.echo(f"final: algorithm={model.algorithm} task={name} epochs={epochs} "
               f"train_acc={result['epochs'][-1]['train_acc']:.4f} test_acc={result['test_acc']:.4f} "
               f"train_seconds={result['train_seconds']:.1f}")


def _train_connectome(model, epochs, lr, steps, seed) -> None:
    from btc.tasks.connectome import train_connectome

    window = model.chunk * max(1, round(100 / model.chunk))
    with click.progressbar(length=epochs * -(-steps // window), label=f"training ({model.algorithm})",
                           file=sys.stderr) as bar:
        result = train_connectome(model, epochs, lr, steps=steps, window=window, seed=seed,
                                  progress=lambda epoch, info: bar.update(1))
    for h in result["epochs"]:
        train = f" train_loss={h['train_loss']:.4f}" if "train_loss" in h else ""
        click.echo(f"epoch {h['epoch']}:{train} heldout_mse={h['heldout_mse']:.4f}")
    click.echo(f"final: algorithm={model.algorithm} task=connectome epochs={epochs} steps={steps} "
               f"initial_mse={result['initial_mse']:.4f} final_mse={result['final_mse']:.4f} "
               f"ratio={result['final_mse'] / max(result['initial_mse'], 1e-30):.3f} train_seconds={result['train_seconds']:.1f}")


@click.command("eval")
@click.argument("artifact", type=click.Path())
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True), default=None,
              help="the trained parameters (default: the artifact's initial ones)")
@_data_options
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default="test", show_default=True)
def eval_cmd(artifact, checkpoint, task, data, test_data, validation, dt, steps, seed, split):
    """Accuracy and loss of an artifact (with a checkpoint) on a task's or a data set's split."""
    from btc.tasks.train import _check_model, evaluate

    try:
        model = _load(artifact, checkpoint)
        source, name = _source(model, task, data, test_data, validation, dt, steps, seed)
        _check_model(model, source)
        scores = evaluate(model, source, split=split)
    except BtcError as e:
        fail(e)
    click.echo(f"{name} {split}: acc={scores['acc']:.4f} loss={scores['loss']:.4f}")


@click.command("plot")
@click.argument("metrics", type=click.Path(dir_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the picture (.png, .pdf, .svg)")
def plot_cmd(metrics, output):
    """Loss and accuracy per epoch from `btc train --metrics` JSON lines."""
    from btc.tools.pictures import plot_metrics

    try:
        plot_metrics(metrics, output)
    except BtcError as e:
        fail(e)
    click.echo(f"wrote {output}")


@click.command("raster")
@click.argument("artifact", type=click.Path())
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True), default=None)
@_data_options
@click.option("--sample", type=click.IntRange(0), default=0, show_default=True, help="which sample of the first test batch")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the picture (.png, .pdf, .svg)")
def raster_cmd(artifact, checkpoint, task, data, test_data, validation, dt, steps, seed, sample, output):
    """Spike raster of every spiking group, membrane traces and the readout, for one test sample."""
    from btc.tools.pictures import plot_raster

    try:
        model = _load(artifact, checkpoint)
        source, name = _source(model, task, data, test_data, validation, dt, steps, seed)
        if sample >= model.batch:
            raise BtcError(f"--sample {sample}: the artifact's batch holds samples 0..{model.batch - 1}")
        x, labels, n = next(source.batches("test", model.batch, np.random.default_rng(seed), shuffle=False))
        if sample >= n:
            raise BtcError(f"--sample {sample}: the test split has {n} samples")
        record = model.infer_sequence(x, record=True)
        plot_raster(record, x, int(labels[sample]), sample, f"{name}, sample {sample}", output)
    except BtcError as e:
        fail(e)
    click.echo(f"wrote {output}")

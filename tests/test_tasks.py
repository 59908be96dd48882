"""The generated tasks (evidence accumulation, delayed match-to-sample): the data itself, checked from
the spike trains; no training, no compilation."""
import math

import numpy as np
import pytest
from click.testing import CliRunner

import btc.runtime
import btc.tasks
from btc.errors import BtcError
from btc.tasks import TASKS, CueAccumulationTask, DelayedMatchTask, get_task
from btc.tools.cli import main


def first_batch(task, split="test", batch=64, seed=0, shuffle=False):
    return next(task.batches(split, batch, np.random.default_rng(seed), shuffle))


def rate_hz(x, dt):
    """Mean firing rate in Hz of a [steps, batch, channels] block (nan if empty)."""
    return x.mean() * 1000.0 / dt if x.size else float("nan")


# -- evidence accumulation ------------------------------------------------------------------------

def test_cue_defaults_layout():
    task = CueAccumulationTask()
    assert task.steps == 7 * 100 + 6 * 50 + 1000 + 150 == 2150
    assert (task.input_size, task.num_classes) == (100, 2)
    assert task.cue_windows() == [(150 * k, 150 * k + 100) for k in range(7)]
    assert task.recall_window() == (2000, 2150)
    assert [task.channels(n) for n in ("left", "right", "recall", "noise")] == \
        [slice(0, 25), slice(25, 50), slice(50, 75), slice(75, 100)]
    assert (len(task.train_y), len(task.test_y)) == (1024, 256)
    assert task.train_trials.shape == (1024, 7)


def test_cue_eprop_layout_and_dt():
    """lead=50, delay=1050 is e-prop's generator: cue k over [50+150k, 150+150k) ms, 2250 ms in all."""
    task = CueAccumulationTask(lead=50, delay=1050)
    assert task.steps == 2250
    assert task.cue_windows() == [(50 + 150 * k, 150 + 150 * k) for k in range(7)]
    coarse = CueAccumulationTask(dt=2.0)
    assert coarse.steps == 1075 and coarse.cue_windows()[1] == (75, 125) and coarse.recall_window() == (1000, 1075)
    assert coarse.p_cue == pytest.approx(0.08) and coarse.p_noise == pytest.approx(0.02)
    assert CueAccumulationTask(num_cues=3, delay=200).steps == 300 + 100 + 200 + 150


def test_cue_batches_shapes_dtypes_and_padding():
    task = CueAccumulationTask(delay=100, n_train=10, n_test=6)
    got = list(task.batches("train", 4, np.random.default_rng(0), shuffle=True))
    assert [n for _, _, n in got] == [4, 4, 2]
    for x, y, n in got:
        assert x.shape == (task.steps, 4, 100) and x.dtype == np.float32
        assert y.shape == (4,) and y.dtype == np.int32
        assert set(np.unique(x)) <= {0.0, 1.0}
    x, y, n = got[-1]
    assert not x[:, n:].any() and not y[n:].any()  # padded rows: no spikes, label 0
    seen = np.concatenate([y[:n] for _, y, n in got])
    assert sorted(seen) == sorted(task.train_y)  # every training trial once per epoch


def test_cue_determinism():
    a, b = CueAccumulationTask(), CueAccumulationTask()
    assert np.array_equal(a.train_trials, b.train_trials) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(a.train_trials[:len(a.test_trials)], a.test_trials)  # different sets
    assert not np.array_equal(a.train_trials, CueAccumulationTask(seed=1).train_trials)
    xa, ya, _ = first_batch(a, "train", 32, seed=5, shuffle=True)
    xb, yb, _ = first_batch(b, "train", 32, seed=5, shuffle=True)
    assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    xc, _, _ = first_batch(a, "train", 32, seed=6, shuffle=True)
    assert not np.array_equal(xa, xc)
    # a shorter delay keeps the trials (drawn from the seed alone), only the timing changes
    assert np.array_equal(CueAccumulationTask(delay=100).train_trials, a.train_trials)


def test_cue_labels_recovered_from_spikes():
    """Decode every cue from the spike counts of the left/right populations in its window; the
    majority of the decoded sides is the label, and the decoded sides are the trial's cues."""
    task = CueAccumulationTask()
    x, y, n = first_batch(task, "test", 128)
    left, right = x[:, :, task.channels("left")], x[:, :, task.channels("right")]
    decoded = np.stack([(right[a:b].sum((0, 2)) > left[a:b].sum((0, 2))).astype(np.int8)
                        for a, b in task.cue_windows()], 1)
    assert np.array_equal(decoded, task.test_trials[:128])
    assert np.array_equal((decoded.sum(1) >= 4).astype(np.int32), y)
    assert np.array_equal(y, task.test_y[:128])


def test_cue_labels_are_the_majority_and_balanced():
    task = CueAccumulationTask()
    for trials, labels in ((task.train_trials, task.train_y), (task.test_trials, task.test_y)):
        assert set(np.unique(trials)) == {0, 1}
        assert np.array_equal(labels, (trials.sum(1) > 3).astype(np.int32))
        assert 0.4 < labels.mean() < 0.6
    assert 0.45 < task.train_trials.mean() < 0.55  # each cue a fair coin


def test_cue_bias_makes_trials_lopsided():
    """The majority's share of the cues matches E[max(K, 7-K)]/7 for K ~ Binomial(7, bias)."""
    for bias in (0.5, 0.7):
        task = CueAccumulationTask(bias=bias, n_train=4096)
        right = task.train_trials.sum(1)
        k = np.arange(8)
        expected = np.sum([math.comb(7, i) * bias ** i * (1 - bias) ** (7 - i) for i in k] * np.maximum(k, 7 - k)) / 7
        assert np.maximum(right, 7 - right).mean() / 7 == pytest.approx(expected, abs=0.01)  # 0.656 / 0.727
        assert 0.45 < task.train_y.mean() < 0.55
    assert np.all(CueAccumulationTask(bias=1.0).train_trials.sum(1) % 7 == 0)  # all cues on one side


@pytest.mark.parametrize("dt", [1.0, 2.0])
def test_cue_firing_rates(dt):
    task = CueAccumulationTask(dt=dt)
    x, _, n = first_batch(task, "test", 64)
    sides = task.test_trials[:64]
    on = {0: np.zeros((task.steps, 64), bool), 1: np.zeros((task.steps, 64), bool)}
    for k, (a, b) in enumerate(task.cue_windows()):
        for side in (0, 1):
            on[side][a:b, sides[:, k] == side] = True
    for side, name in enumerate(("left", "right")):
        block = x[:, :, task.channels(name)]
        assert rate_hz(block[on[side]], dt) == pytest.approx(40.0, rel=0.05)
        assert block[~on[side]].sum() == 0  # silent outside its own cues
    a, b = task.recall_window()
    recall = x[:, :, task.channels("recall")]
    assert rate_hz(recall[a:b], dt) == pytest.approx(40.0, rel=0.05)
    assert recall[:a].sum() == 0
    noise = x[:, :, task.channels("noise")]
    assert rate_hz(noise, dt) == pytest.approx(10.0, rel=0.05)
    assert rate_hz(noise[a:b], dt) == pytest.approx(10.0, rel=0.2)  # throughout, the recall window too
    assert rate_hz(noise[:task.cue_windows()[-1][1]], dt) == pytest.approx(10.0, rel=0.1)


def test_cue_mask_is_the_recall_window():
    for task in (CueAccumulationTask(), CueAccumulationTask(dt=2.0, delay=300)):
        m = task.mask()
        assert m.shape == (task.steps,) and m.dtype == np.float32
        a, b = task.recall_window()
        assert np.flatnonzero(m).tolist() == list(range(a, b))
        assert np.allclose(m[a:b], 1.0 / (b - a))
        assert m.sum() == pytest.approx(1.0)


# -- delayed match-to-sample ----------------------------------------------------------------------

def test_dms_defaults_layout():
    task = DelayedMatchTask()
    assert task.steps == 150 + 500 + 150 + 150 == 950
    assert (task.input_size, task.num_classes) == (100, 2)
    assert task.stimulus_windows() == [(0, 150), (650, 800)]
    assert task.recall_window() == (800, 950)
    assert [task.channels(k) for k in (0, 1, "recall", "noise")] == \
        [slice(0, 25), slice(25, 50), slice(50, 75), slice(75, 100)]
    four = DelayedMatchTask(num_stimuli=4, population=10, dt=0.5, delay=100)
    assert (four.input_size, four.steps) == (60, 2 * (150 + 150 + 100 + 150))


def test_dms_labels_balanced_and_consistent():
    for task in (DelayedMatchTask(), DelayedMatchTask(num_stimuli=4, n_train=101)):
        for trials, labels in ((task.train_trials, task.train_y), (task.test_trials, task.test_y)):
            assert abs(2 * labels.sum() - len(labels)) <= 1  # half match
            assert np.array_equal(labels, (trials[:, 0] == trials[:, 1]).astype(np.int32))
            assert set(np.unique(trials)) == set(range(task.num_stimuli))
    four = DelayedMatchTask(num_stimuli=4, n_train=4000)
    counts = np.bincount(four.train_trials[four.train_y == 0, 1], minlength=4)
    assert counts.min() > 0.2 * counts.sum()  # non-matching second stimuli spread over the patterns


@pytest.mark.parametrize("num_stimuli", [2, 4])
def test_dms_labels_recovered_from_spikes(num_stimuli):
    task = DelayedMatchTask(num_stimuli=num_stimuli)
    x, y, n = first_batch(task, "test", 128)
    shown = np.stack([np.argmax([x[a:b, :, task.channels(k)].sum((0, 2)) for k in range(num_stimuli)], 0)
                      for a, b in task.stimulus_windows()], 1)
    assert np.array_equal(shown, task.test_trials[:128])
    assert np.array_equal((shown[:, 0] == shown[:, 1]).astype(np.int32), y)


def test_dms_firing_rates_and_mask():
    task = DelayedMatchTask()
    x, _, _ = first_batch(task, "train", 64, shuffle=False)
    patterns = task.train_trials[:64]
    for k in range(2):
        on = np.zeros((task.steps, 64), bool)
        for j, (a, b) in enumerate(task.stimulus_windows()):
            on[a:b, patterns[:, j] == k] = True
        block = x[:, :, task.channels(k)]
        assert rate_hz(block[on], 1.0) == pytest.approx(40.0, rel=0.05)
        assert block[~on].sum() == 0
    a, b = task.recall_window()
    assert rate_hz(x[a:b, :, task.channels("recall")], 1.0) == pytest.approx(40.0, rel=0.05)
    assert x[:a, :, task.channels("recall")].sum() == 0
    assert rate_hz(x[:, :, task.channels("noise")], 1.0) == pytest.approx(10.0, rel=0.05)
    m = task.mask()
    assert np.flatnonzero(m).tolist() == list(range(a, b)) and m.sum() == pytest.approx(1.0)


def test_dms_determinism():
    a, b = DelayedMatchTask(), DelayedMatchTask()
    assert np.array_equal(a.train_trials, b.train_trials) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(a.train_trials, DelayedMatchTask(seed=3).train_trials)
    assert np.array_equal(first_batch(a, seed=2)[0], first_batch(b, seed=2)[0])


# -- bad arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"delay": -1}, r"CueAccumulationTask: delay must be a number of ms >= 0, got -1"),
    ({"dt": 0}, r"CueAccumulationTask: dt must be a positive number of ms per step, got 0"),
    ({"dt": -1.0}, r"dt must be a positive number of ms per step, got -1.0"),
    ({"num_cues": 4}, r"num_cues must be odd \(the majority side is the label\), got 4"),
    ({"num_cues": 0}, r"num_cues must be an integer >= 1, got 0"),
    ({"cue": 0}, r"cue must be a positive number of ms, got 0"),
    ({"recall": 0.2}, r"recall=0.2 ms is shorter than one step of dt=1.0 ms"),
    ({"gap": float("nan")}, r"gap must be a number of ms >= 0, got nan"),
    ({"rate": 2000}, r"rate=2000 Hz at dt=1.0 ms is 2 spikes per step; expected at most 1"),
    ({"noise_rate": -5}, r"noise_rate must be a firing rate in Hz >= 0, got -5"),
    ({"population": 0}, r"population must be an integer >= 1, got 0"),
    ({"bias": 1.5}, r"bias must be a probability in \[0, 1\], got 1.5"),
    ({"n_train": 0}, r"n_train must be an integer >= 1, got 0"),
    ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
])
def test_cue_bad_arguments(kwargs, message):
    with pytest.raises(BtcError, match=message):
        CueAccumulationTask(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"delay": -5}, r"DelayedMatchTask: delay must be a number of ms >= 0, got -5"),
    ({"dt": 0}, r"DelayedMatchTask: dt must be a positive number of ms per step, got 0"),
    ({"num_stimuli": 1}, r"num_stimuli must be an integer >= 2, got 1"),
    ({"stimulus": -150}, r"stimulus must be a positive number of ms, got -150"),
    ({"rate": 400, "dt": 5}, r"rate=400 Hz at dt=5 ms is 2 spikes per step"),
    ({"n_test": 2.5}, r"n_test must be an integer >= 1, got 2.5"),
])
def test_dms_bad_arguments(kwargs, message):
    with pytest.raises(BtcError, match=message):
        DelayedMatchTask(**kwargs)


def test_bad_batches_arguments():
    for task in (CueAccumulationTask(delay=0), DelayedMatchTask()):
        name = type(task).__name__
        with pytest.raises(BtcError, match=rf"{name}: split must be 'train' or 'test', got 'val'"):
            first_batch(task, "val")
        with pytest.raises(BtcError, match=rf"{name}: batch must be an integer >= 1, got 0"):
            first_batch(task, "train", 0)
    with pytest.raises(BtcError, match=r"unknown population 2; expected a pattern index 0..1, 'recall' or 'noise'"):
        DelayedMatchTask().channels(2)


# -- registration ---------------------------------------------------------------------------------

def test_registered_and_built_by_name():
    assert TASKS["cue"] is CueAccumulationTask and TASKS["dms"] is DelayedMatchTask
    assert get_task("cue", delay=200).steps == 700 + 300 + 200 + 150
    assert get_task("dms", num_stimuli=4).input_size == 150
    with pytest.raises(BtcError, match=r"unknown task 'xor'; known tasks: \['cue', 'digits', 'dms'\]"):
        get_task("xor")


@pytest.mark.parametrize("task, kwargs", [("cue", {}), ("dms", {}), ("digits", {"steps": 12})])
def test_cli_train_builds_each_task(monkeypatch, tmp_path, task, kwargs):
    """`btc train --task NAME` builds the task (steps= for digits only) and hands it to training;
    the artifact loader and the training loop are stand-ins here."""
    class FakeModel:
        batch, algorithm = 16, "pp-prop"

    built = []

    def spy_get_task(name, **kw):
        built.append((name, kw))
        return get_task(name, **kw)

    def fake_train(model, data, epochs, lr, seed, progress=None, eval_every=0, on_epoch=None):
        built.append(data)
        record = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.5, "seconds": 0.0}
        on_epoch(record)
        return {"epochs": [record], "train_seconds": 0.0, "test_acc": 0.5}

    monkeypatch.setattr(btc.runtime, "load", lambda path: FakeModel())
    monkeypatch.setattr(btc.tasks, "get_task", spy_get_task)
    monkeypatch.setattr(btc.tasks, "train", fake_train)
    result = CliRunner().invoke(main, ["train", str(tmp_path / "a"), "--task", task, "--epochs", "1",
                                       "--steps", "12"])
    assert result.exit_code == 0, result.output
    assert built[0] == (task, kwargs) and isinstance(built[1], TASKS[task])
    assert f"task={task}" in result.output and "epoch 1: train_loss=0.5000" in result.output

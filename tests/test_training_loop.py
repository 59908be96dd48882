"""The training loop people expect: epoch lines and JSON metrics as they happen, a validation split,
--resume, btc eval, btc plot and btc raster (pictures written), and a readable Model."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from btc.runtime import load
from btc.tasks.datasets import FileTask
from btc.tasks.train import evaluate
from btc.tools.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A two-class .npz data set of events and an artifact for it."""
    from btc.driver import CompileOptions, compile_network
    from btc.frontend.zoo import recurrent_lif

    tmp = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(0)
    times, units, sample, y = [], [], [], []
    for i in range(80):
        k = rng.poisson(60)
        times.append(rng.uniform(0, 0.03, k))
        units.append(rng.integers(8 * (i % 2), 8 * (i % 2) + 8, k))
        sample.append(np.full(k, i))
        y.append(i % 2)
    np.savez(tmp / "events.npz", times=np.concatenate(times), units=np.concatenate(units),
             sample=np.concatenate(sample), y=np.array(y), input_size=np.array(16))
    compile_network(recurrent_lif(inputs=16, hidden=16, classes=2), CompileOptions(batch=8, chunk=10),
                    str(tmp / "art"))
    return tmp


def run(*args):
    done = CliRunner().invoke(main, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done.output


def test_train_reports_each_epoch_and_resumes(setup, tmp_path):
    out = run("train", setup / "art", "--data", setup / "events.npz", "--validation", "0.25", "--eval-every", "1",
              "--epochs", "2", "--lr", "0.01", "--metrics", tmp_path / "m.jsonl", "--checkpoint", tmp_path / "c.npz")
    assert out.count("validation_acc=") == 2 and "final:" in out
    records = [json.loads(line) for line in open(tmp_path / "m.jsonl")]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"train_loss", "train_acc", "validation_loss", "validation_acc", "seconds", "task"} <= set(records[0])
    task = FileTask(str(setup / "events.npz"), validation=0.25, input_size=16, num_classes=2)
    assert len(task.splits["validation"][1]) == 20 and len(task.train_y) == 60  # 60 train: 7 updates per epoch
    model = load(str(setup / "art"))
    model.load_checkpoint(str(tmp_path / "c.npz"))
    assert float(model.optimizer_state["optimizer.step"]) == 14
    np.testing.assert_allclose(evaluate(model, task, split="validation")["acc"], records[-1]["validation_acc"])
    run("train", setup / "art", "--data", setup / "events.npz", "--validation", "0.25", "--epochs", "1",
        "--resume", tmp_path / "c.npz", "--checkpoint", tmp_path / "c2.npz")
    model.load_checkpoint(str(tmp_path / "c2.npz"))
    assert float(model.optimizer_state["optimizer.step"]) == 21  # Adam's step count went on from 14
    out = run("eval", setup / "art", "--checkpoint", tmp_path / "c2.npz", "--data", setup / "events.npz",
              "--validation", "0.25", "--split", "validation")
    scores = evaluate(model, task, split="validation")
    assert f"acc={scores['acc']:.4f} loss={scores['loss']:.4f}" in out


def test_plot_and_raster_draw_pictures(setup, tmp_path):
    run("train", setup / "art", "--data", setup / "events.npz", "--epochs", "2", "--eval-every", "1",
        "--metrics", tmp_path / "m.jsonl", "--checkpoint", tmp_path / "c.npz")
    run("plot", tmp_path / "m.jsonl", "-o", tmp_path / "curves.png")
    run("raster", setup / "art", "--checkpoint", tmp_path / "c.npz", "--data", setup / "events.npz", "--sample", "1",
        "-o", tmp_path / "raster.png")
    for name in ("curves.png", "raster.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    (tmp_path / "bad.jsonl").write_text('{"epoch": 1}\nnot json\n')
    done = CliRunner().invoke(main, ["plot", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "x.png")])
    assert done.exit_code != 0 and "bad.jsonl:2 is not a JSON line" in done.output
    # a run that fails before its first epoch leaves the previous run's metrics as they were
    before = (tmp_path / "m.jsonl").read_text()
    (tmp_path / "empty.npz").write_bytes(b"")
    done = CliRunner().invoke(main, ["train", str(setup / "art"), "--data", str(tmp_path / "empty.npz"),
                                     "--metrics", str(tmp_path / "m.jsonl")])
    assert done.exit_code != 0 and "not a readable .npz" in done.output
    assert (tmp_path / "m.jsonl").read_text() == before


def test_a_model_reads_well(setup):
    text = repr(load(str(setup / "art")))
    assert text.startswith("<btc Model") and "pp-prop" in text and "batch 8" in text and "x[16]" in text
    assert "lif[16]" in text and "parameters" in text

"""Data sets read from files in their published formats (SHD/SSC HDF5, N-MNIST binary, .npz), binned to
the time step, and `btc train --data` learning from them."""
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from btc.errors import BtcError
from btc.tasks.datasets import NMNIST_SIZE, FileTask, read_data
from btc.tools.cli import main

DT = 1e-3


def write_shd(path, times, units, labels):
    """The SHD layout: variable-length float times (s) and uint16 units per sample, uint8 labels."""
    def ragged(rows, dtype):
        out = np.empty(len(rows), dtype=object)
        out[:] = [np.asarray(r, dtype) for r in rows]
        return out

    with h5py.File(path, "w") as f:
        spikes = f.create_group("spikes")
        spikes.create_dataset("times", data=ragged(times, np.float32), dtype=h5py.vlen_dtype(np.float32))
        spikes.create_dataset("units", data=ragged(units, np.uint16), dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset("labels", data=np.asarray(labels, np.uint8))


def write_nmnist_file(path, x, y, polarity, microseconds):
    """N-MNIST's 40-bit events: x, y, then polarity in the top bit over a 23-bit timestamp."""
    stamp = np.asarray(microseconds, np.int64)
    raw = np.stack([np.asarray(x), np.asarray(y), (np.asarray(polarity) << 7) | (stamp >> 16),
                    (stamp >> 8) & 0xFF, stamp & 0xFF], axis=1).astype(np.uint8)
    with open(path, "wb") as f:
        f.write(raw.tobytes())


def npy_bytes(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def toy_events(n, rng, duration=0.04):
    """Two classes: class c fires channels [10c, 10c + 10) at 200 Hz over `duration` seconds."""
    times, units, labels = [], [], []
    for i in range(n):
        c = i % 2
        k = rng.poisson(200 * duration * 10)
        times.append(np.sort(rng.uniform(0, duration, k)))
        units.append(rng.integers(10 * c, 10 * c + 10, k))
        labels.append(c)
    return times, units, labels


def test_shd_events_are_binned_exactly(tmp_path):
    write_shd(tmp_path / "shd.h5", [[0.0004, 0.0011, 0.0012, 0.0049], [0.002]], [[3, 0, 0, 5], [699]], [4, 19])
    data = read_data(str(tmp_path / "shd.h5"))
    assert data.input_size == 700 and list(data.labels) == [4, 19] and data.duration(DT) == 5
    x = data.binned(np.array([0, 1]), 5, DT, 700)
    want = np.zeros((5, 2, 700), np.float32)
    want[0, 0, 3] = want[1, 0, 0] = want[4, 0, 5] = want[2, 1, 699] = 1  # two events in one bin count once
    np.testing.assert_array_equal(x, want)
    np.testing.assert_array_equal(data.binned(np.array([0]), 2, DT, 700)[:, 0], want[:2, 0])  # later ones dropped


def test_events_on_a_step_edge_fall_in_that_step(tmp_path):
    """7 ms at dt = 1 ms is step 7, though 0.007 / 0.001 is 6.999... in floating point."""
    (tmp_path / "Train" / "1").mkdir(parents=True)
    stamps = np.arange(0, 100_000, 1000)  # whole milliseconds, in microseconds
    write_nmnist_file(tmp_path / "Train" / "1" / "a.bin", np.zeros(100, int), np.zeros(100, int), np.zeros(100, int),
                      stamps)
    data = read_data(str(tmp_path / "Train"))
    x = data.binned(np.array([0]), 100, DT, NMNIST_SIZE)
    np.testing.assert_array_equal(np.nonzero(x[:, 0, 0])[0], np.arange(100))


def test_nmnist_binary_events_decode(tmp_path):
    for label in ("0", "7"):
        (tmp_path / "Test" / label).mkdir(parents=True)
    write_nmnist_file(tmp_path / "Test" / "0" / "00001.bin", [0, 33, 5], [0, 33, 2], [0, 1, 1], [0, 8_388_607, 1500])
    write_nmnist_file(tmp_path / "Test" / "7" / "00002.bin", [1], [1], [0], [999])
    data = read_data(str(tmp_path / "Test"))
    assert data.input_size == NMNIST_SIZE == 2312 and list(data.labels) == [0, 7]
    np.testing.assert_array_equal(data.units[0], [0, 1156 + 33 * 34 + 33, 1156 + 2 * 34 + 5])
    np.testing.assert_allclose(data.times[0], [0, 8.388607, 0.0015])
    x = data.binned(np.array([0, 1]), 3, DT, NMNIST_SIZE)
    assert x[0, 0, 0] == 1 and x[1, 0, 1156 + 73] == 1 and x[0, 1, 35] == 1 and x.sum() == 3


def test_npz_dense_and_events(tmp_path):
    dense = (np.random.default_rng(0).random((3, 6, 4)) < 0.3).astype(np.float32)
    np.savez(tmp_path / "dense.npz", x=dense, y=np.array([0, 1, 2]))
    data = read_data(str(tmp_path / "dense.npz"))
    np.testing.assert_array_equal(data.binned(np.array([2, 0]), 6, DT, 4), dense[[2, 0]].transpose(1, 0, 2))
    np.savez(tmp_path / "events.npz", times=np.array([0.0, 0.0025, 0.001]), units=np.array([1, 2, 3]),
             sample=np.array([1, 0, 1]), y=np.array([5, 6]), input_size=np.array(8))
    events = read_data(str(tmp_path / "events.npz"))
    x = events.binned(np.array([0, 1]), 3, DT, 8)
    assert events.input_size == 8 and x[2, 0, 2] == 1 and x[0, 1, 1] == 1 and x[1, 1, 3] == 1 and x.sum() == 3


@pytest.mark.parametrize("writer,message", [
    (lambda p: h5py.File(p / "d.h5", "w").close(), "not in the SHD/SSC layout"),
    (lambda p: (p / "d.h5").write_bytes(b"not hdf5"), "not a readable HDF5"),
    (lambda p: write_shd(p / "d.h5", [[0.1, -0.2]], [[1, 2]], [0]), "negative or non-finite"),
    (lambda p: write_shd(p / "d.h5", [[0.1, 0.2]], [[1]], [0]), "2 times but 1 units"),
    (lambda p: np.savez(p / "d.npz", x=np.ones((2, 3, 4)), y=np.zeros(3, int)), "N = 3 labels"),
    (lambda p: np.savez(p / "d.npz", x=np.full((1, 3, 4), 0.5), y=np.zeros(1, int)), "0 or 1"),
    (lambda p: np.savez(p / "d.npz", y=np.zeros(1, int)), "dense `x`"),
    (lambda p: np.savez(p / "d.npz", times=[0.1], units=[9], sample=[0], y=[0], input_size=4), "not below input_size"),
    (lambda p: np.savez(p / "d.npz", times=[0.1], units=[1], sample=[3], y=[0]), "must index the 1 labels"),
    (lambda p: np.savez(p / "d.npz", times=[0.1], units=[1, 2], sample=[0, 0], y=[0]), "equal-length lists"),
    (lambda p: (p / "d.npz").write_bytes(npy_bytes(np.zeros(3))), "one array"),
    (lambda p: (p / "d.txt").write_text("x"), "unknown format"),
])
def test_bad_data_files_get_one_clear_error(tmp_path, writer, message):
    writer(tmp_path)
    (name,) = [n for n in os.listdir(tmp_path)]
    with pytest.raises(BtcError, match=message):
        read_data(str(tmp_path / name))


def test_bad_nmnist_directories(tmp_path):
    (tmp_path / "a" / "labels").mkdir(parents=True)
    with pytest.raises(BtcError, match="label folders"):
        read_data(str(tmp_path / "a"))
    (tmp_path / "b" / "3").mkdir(parents=True)
    (tmp_path / "b" / "3" / "x.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(BtcError, match="5-byte"):
        read_data(str(tmp_path / "b"))


def test_btc_train_learns_from_shd_files(tmp_path):
    from btc.driver import CompileOptions, compile_network
    from btc.frontend.zoo import recurrent_lif

    rng = np.random.default_rng(0)
    write_shd(tmp_path / "train.h5", *toy_events(96, rng))
    write_shd(tmp_path / "test.h5", *toy_events(32, rng))
    compile_network(recurrent_lif(inputs=20, hidden=24, classes=2), CompileOptions(batch=8, chunk=10),
                    str(tmp_path / "art"))
    task = FileTask(str(tmp_path / "train.h5"), str(tmp_path / "test.h5"), input_size=20, num_classes=2)
    assert task.steps == 40 and task.mask().sum() == pytest.approx(1.0)
    done = CliRunner().invoke(main, ["train", str(tmp_path / "art"), "--data", str(tmp_path / "train.h5"),
                                     "--test-data", str(tmp_path / "test.h5"), "--epochs", "3", "--lr", "0.01"])
    assert done.exit_code == 0, done.output
    final = next(line for line in done.output.splitlines() if line.startswith("final:"))
    assert "task=train.h5" in final
    assert float(final.split("test_acc=")[1].split()[0]) >= 0.9, done.output
    held_out = CliRunner().invoke(main, ["train", str(tmp_path / "art"), "--data", str(tmp_path / "test.h5"),
                                         "--epochs", "1"], catch_exceptions=False)
    assert held_out.exit_code == 0, held_out.output  # a test set alone trains too, 20 % of it held out
    alone = FileTask(str(tmp_path / "test.h5"), input_size=20, num_classes=2)
    assert len(alone.splits["test"][1]) == 6 and len(alone.train_y) == 26  # 32 samples: 6 held out

"""Data-parallel training over MPI: 2 ranks (mpiexec, MPICH's wheel), each on half of every batch, end with
the parameters of one process training on the whole batch; the CLI reports and checkpoints once."""
import os
import subprocess
import sys

import numpy as np
import pytest

from btc.driver import CompileOptions, compile_network
from btc.runtime import load
from data import sequence
from nets import NETWORKS

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
RANK_SCRIPT = """
import sys, numpy as np
from mpi4py import MPI
from btc.runtime import load
from btc.runtime.parallel import DataParallel
class Counting:  # the communicator, counting the bytes of the arrays this rank puts into collectives
    def __init__(self, comm):
        self.comm, self.bytes = comm, 0
    def Allreduce(self, send, receive, op):
        self.bytes += receive.nbytes
        return self.comm.Allreduce(send, receive, op=op)
    def allgather(self, value):
        self.bytes += value.nbytes if isinstance(value, np.ndarray) else 0
        return self.comm.allgather(value)
model = DataParallel(load(sys.argv[1]))
model.comm = Counting(model.comm)
data = np.load(sys.argv[2])
losses = []
for s in range(3):
    model.comm.bytes = 0
    losses.append(model.train_sequence(data[f"x{s}"], data[f"t{s}"], data[f"m{s}"], lr=0.01)["loss"])
    assert model.comm.bytes == model.bytes_per_update, (model.comm.bytes, model.bytes_per_update)
model.comm = model.comm.comm
readout = model.infer_sequence(data["x0"])["readout"]
params = model.params
mine = np.concatenate([p.ravel() for p in params.values()])
assert all(np.array_equal(mine, other) for other in MPI.COMM_WORLD.allgather(mine)), "ranks drifted apart"
if model.rank == 0:
    np.savez(sys.argv[3], losses=losses, readout=readout, bytes=model.bytes_per_update, **params)
"""


def _mpirun(args: list, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([MPIEXEC, "-n", "2", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("name,algorithm", [("recurrent_expon", "pp-prop"), ("cuba_dale_delays", "pp-prop"),
                                            ("shared_input_mse", "pp-prop"), ("one_layer_delta", "bptt")])
def test_two_ranks_equal_one_process_on_the_whole_batch(tmp_path, name, algorithm):
    net = NETWORKS[name]()
    for batch in (2, 4):
        compile_network(net, CompileOptions(algorithm=algorithm, batch=batch, chunk=5), str(tmp_path / f"b{batch}"))
    data = {}
    for s in range(3):
        data[f"x{s}"], data[f"t{s}"], data[f"m{s}"] = sequence(net, 4, 10, seed=s)
    np.savez(tmp_path / "data.npz", **data)
    whole = load(str(tmp_path / "b4"))
    want = [whole.train_sequence(data[f"x{s}"], data[f"t{s}"], data[f"m{s}"], lr=0.01)["loss"] for s in range(3)]
    readout = whole.infer_sequence(data["x0"])["readout"]
    done = _mpirun([sys.executable, "-c", RANK_SCRIPT, str(tmp_path / "b2"), str(tmp_path / "data.npz"),
                    str(tmp_path / "out.npz")], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with np.load(tmp_path / "out.npz") as got:
        np.testing.assert_allclose(got["losses"], want, rtol=1e-5)
        np.testing.assert_allclose(got["readout"], readout, rtol=1e-5, atol=1e-6)
        for key, value in whole.params.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
        n_params = sum(v.size for v in whole.params.values())
        assert int(got["bytes"]) == 8 * (n_params + 1) + 4 * 2 * whole.num_classes  # 2 samples per rank


def test_the_cli_trains_on_two_ranks_and_refuses_in_module_updates(tmp_path):
    from btc.frontend.zoo import recurrent_lif

    compile_network(recurrent_lif(inputs=100, hidden=16, classes=2), CompileOptions(batch=8, chunk=10),
                    str(tmp_path / "cue"))
    done = _mpirun([os.path.join(os.path.dirname(sys.executable), "btc"), "train", str(tmp_path / "cue"), "--task",
                    "cue", "--epochs", "1", "--data-parallel", "--checkpoint", str(tmp_path / "cue.npz")], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("final:") == 1, done.stdout  # rank 0 reports
    trained = load(str(tmp_path / "cue"))
    trained.load_checkpoint(str(tmp_path / "cue.npz"))
    assert any(np.any(trained.params[k] != v) for k, v in load(str(tmp_path / "cue")).params.items())
    assert [p for p in os.listdir(tmp_path) if p.startswith(".ckpt-")] == []
    compile_network(NETWORKS["recurrent_expon"](), CompileOptions(batch=2, chunk=5, update_every=5),
                    str(tmp_path / "continual"))
    refused = _mpirun([os.path.join(os.path.dirname(sys.executable), "btc"), "train", str(tmp_path / "continual"),
                       "--task", "cue", "--data-parallel"], tmp_path)
    assert refused.returncode != 0 and "update_every" in refused.stderr and "Traceback" not in refused.stderr


def test_a_failing_rank_stops_every_rank_and_no_gradient_remains(tmp_path):
    """Rank 1 gets a NaN input: both ranks raise the same error (none hangs), and both zero the sequence's
    gradients; a rank of another artifact is refused on every rank."""
    net = NETWORKS["recurrent_expon"]()
    compile_network(net, CompileOptions(batch=2, chunk=5), str(tmp_path / "b2"))
    compile_network(net, CompileOptions(batch=3, chunk=5), str(tmp_path / "b3"))
    x, t, m = sequence(net, 4, 10)
    x[3, 3, 0] = np.nan  # sample 3: rank 1's
    np.savez(tmp_path / "data.npz", x=x, t=t, m=m)
    script = """
import sys, numpy as np
from btc.errors import BtcError
from btc.runtime import load
from btc.runtime.parallel import DataParallel
model = DataParallel(load(sys.argv[1]))
data = np.load(sys.argv[2])
try:
    model.train_sequence(data["x"], data["t"], data["m"], lr=0.01)
except BtcError as e:
    assert all(np.all(g == 0) for g in model.model.grad_sums())
    print(f"rank {model.rank}: refused: {e}")
try:
    DataParallel(load(sys.argv[1] if model.rank == 0 else sys.argv[3]))
except BtcError as e:
    print(f"rank {model.rank}: mixed: {e}")
"""
    done = _mpirun([sys.executable, "-c", script, str(tmp_path / "b2"), str(tmp_path / "data.npz"),
                    str(tmp_path / "b3")], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for rank in (0, 1):
        assert f"rank {rank}: refused:" in done.stdout and "NaN" in done.stdout, done.stdout
        assert f"rank {rank}: mixed: data-parallel ranks must load the same artifact" in done.stdout, done.stdout

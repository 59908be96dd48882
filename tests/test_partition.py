"""A network cut by neuron across 2 MPI ranks (btc.partitioned, btc.runtime.partitioned) computes what one
process computes: the same spikes, readouts, losses and gradients, and the same parameters after training;
the spike events exchanged are exactly the spikes of neurons with a ghost on the other rank."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend import LIF, Conv, Expon, Network, Surrogate
from btc.frontend.connectivity import FixedProbability
from btc.frontend.partition import partition
from btc.partitioned import compile_partitioned
from btc.runtime import load
from btc.runtime.partitioned import PartitionPlan
from data import sequence
from nets import NETWORKS

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
STEPS, SEQUENCES = 12, 3
RANK_SCRIPT = """
import sys, numpy as np
from btc.runtime.partitioned import Partitioned
model = Partitioned(sys.argv[1])
data = np.load(sys.argv[2])
out = {}
model.bytes_sent = 0
record = model.infer_sequence(data["x0"], record=True)
out["infer_bytes"] = model.comm.allreduce(model.bytes_sent)
first = model.train_sequence(data["x0"], data["t0"], data["m0"])
grads = model.grads
model.model.zero_grads()
losses = [model.train_sequence(data[f"x{s}"], data[f"t{s}"], data[f"m{s}"], lr=0.01)["loss"] for s in range(3)]
params = model.params
model.save_checkpoint(sys.argv[4])
model.model.zero_grads()
halves = [model.train_sequence(data["x1"][:4], data["t1"][:4], data["m1"][:4])["loss"],
          model.train_sequence(data["x1"][4:], data["t1"][4:], data["m1"][4:], reset=False)["loss"]]
out["halves"] = halves
grads_halves = model.grads
if model.rank == 0:
    np.savez(sys.argv[3], losses=losses, first=first["loss"], rsum=first["readout_sum"], **out,
             **{"grad_halves." + k: v for k, v in grads_halves.items()},
             **{"record." + k: v for k, v in record.items()}, **{"grad." + k: v for k, v in grads.items()},
             **{"param." + k: v for k, v in params.items()})
"""


def sparse_ei():
    """E/I under Dale's law, sparse recurrent wiring in every direction, a delay, a learned time constant,
    two readout projections (one sparse), each with its bias."""
    net = Network(dt=1.0, seed=41)
    net.input("x", 6)
    net.group("E", 12, LIF(tau=10.0, synapse=Expon(4.0), surrogate=Surrogate("sigmoid", 4.0)), dale="exc",
              trainable=("tau",))
    net.group("I", 6, LIF(tau=8.0, synapse=Expon(3.0), surrogate=Surrogate("sigmoid", 4.0)), dale="inh")
    net.project("x", "E", init=4.0)
    net.project("x", "I", connectivity=0.5, init=3.0)
    net.project("E", "E", recurrent=True, connectivity=FixedProbability(0.3, self_connections=False), init=1.0,
                delay=1)
    net.project("E", "I", recurrent=True, connectivity=0.4, init=2.0)
    net.project("I", "E", recurrent=True, connectivity=0.5, init=2.0)
    net.readout("out", 3, tau=8.0)
    net.project("E", "out")
    net.project("I", "out", connectivity=0.5)
    net.set_loss("cross_entropy", "out")
    return net


def delayed_feed_forward():
    """A delayed feed-forward projection crossing ranks (with a bias), a refractory group, a sparse readout
    projection, an input -> readout projection, an MSE loss."""
    net = Network(dt=1.0, seed=42)
    net.input("x", 5)
    net.group("A", 8, LIF(tau=10.0, synapse=Expon(4.0), refractory=2.0, surrogate=Surrogate("sigmoid", 4.0)))
    net.group("B", 6, LIF(tau=8.0, synapse=Expon(3.0), surrogate=Surrogate("arctan", 2.0)))
    net.project("x", "A", init=8.0)
    net.project("A", "B", delay=2, connectivity=0.5, init=25.0, bias=True)
    net.project("B", "A", recurrent=True, init=1.0)
    net.readout("out", 3, tau=5.0)
    net.project("A", "out", connectivity=0.6)
    net.project("B", "out")
    net.project("x", "out")
    net.set_loss("mse", "out")
    return net


def _mpirun(args: list, cwd, ranks: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run([MPIEXEC, "-n", str(ranks), *args], capture_output=True, text=True, cwd=cwd, timeout=600)


CASES = {  # network, owner, algorithm, ranks
    "sparse_ei": (sparse_ei, {"E": np.arange(12) % 3, "I": np.array([2, 0, 1, 1, 0, 2])}, "pp-prop", 3),
    # interleaved ownership (neurons 0, 2, 4... on rank 0)
    "delayed_feed_forward": (delayed_feed_forward, {"A": np.arange(8) % 2, "B": np.arange(6) % 2}, "d-rtrl", 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ranks_equal_one_process(tmp_path, case):
    build, owner, algorithm, ranks = CASES[case]
    net = build()
    options = CompileOptions(algorithm=algorithm, batch=3, chunk=4)
    compile_network(net, options, str(tmp_path / "whole"))
    compile_partitioned(net, owner, options, str(tmp_path / "split"))
    data = {}
    for s in range(SEQUENCES):
        data[f"x{s}"], data[f"t{s}"], data[f"m{s}"] = sequence(net, 3, STEPS, seed=s)
    np.savez(tmp_path / "data.npz", **data)
    whole = load(str(tmp_path / "whole"))
    record = whole.infer_sequence(data["x0"], record=True)
    first = whole.train_sequence(data["x0"], data["t0"], data["m0"])
    grads = whole.grads
    whole.zero_grads()
    losses = [whole.train_sequence(data[f"x{s}"], data[f"t{s}"], data[f"m{s}"], lr=0.01)["loss"]
              for s in range(SEQUENCES)]
    trained, moments = whole.params, whole.optimizer_state
    whole.zero_grads()
    halves = [whole.train_sequence(data["x1"][:4], data["t1"][:4], data["m1"][:4])["loss"],
              whole.train_sequence(data["x1"][4:], data["t1"][4:], data["m1"][4:], reset=False)["loss"]]
    done = _mpirun([sys.executable, "-c", RANK_SCRIPT, str(tmp_path / "split"), str(tmp_path / "data.npz"),
                    str(tmp_path / "out.npz"), str(tmp_path / "ckpt.npz")], tmp_path, ranks)
    assert done.returncode == 0, done.stdout + done.stderr
    spiking = [g for g in net.groups if f"spikes.{g}" in record]
    with np.load(tmp_path / "out.npz") as got:
        for g in spiking:
            assert record[f"spikes.{g}"].any(), g  # the comparison means something
            np.testing.assert_array_equal(got[f"record.spikes.{g}"], record[f"spikes.{g}"], err_msg=g)
        np.testing.assert_allclose(got["record.readout"], record["readout"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["first"], first["loss"], rtol=1e-5)
        np.testing.assert_allclose(got["rsum"], first["readout_sum"], rtol=1e-5, atol=1e-6)
        for k, v in grads.items():
            assert np.any(v != 0) or k.endswith(".b"), k
            np.testing.assert_allclose(got[f"grad.{k}"], v, rtol=1e-5, atol=1e-7, err_msg=k)
        np.testing.assert_allclose(got["losses"], losses, rtol=1e-5)
        for k, v in trained.items():
            np.testing.assert_allclose(got[f"param.{k}"], v, rtol=1e-5, atol=1e-6, err_msg=k)
        # a sequence in two calls, the state carried across (reset=False)
        np.testing.assert_allclose(got["halves"], halves, rtol=1e-5)
        for k, v in whole.grads.items():
            np.testing.assert_allclose(got[f"grad_halves.{k}"], v, rtol=1e-5, atol=1e-7, err_msg=k)
        # what crossed: 4 bytes per spike of a neuron per rank holding a ghost of it, and each rank's readout
        plan = PartitionPlan(str(tmp_path / "split" / "partition.npz"))
        events = sum(int(record[f"spikes.{g}"][:, :, ids].sum())
                     for ghosts in plan.ghosts for g, ids in ghosts.values())
        assert int(got["infer_bytes"]) == 4 * events + ranks * STEPS * 4 * 3 * whole.num_classes
    # the partitioned run's checkpoint is the whole network's: one process of it loads the parameters and Adam state
    fresh = load(str(tmp_path / "whole"))
    fresh.load_checkpoint(str(tmp_path / "ckpt.npz"))
    for k, v in trained.items():
        np.testing.assert_allclose(fresh.params[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    for k, v in moments.items():
        np.testing.assert_allclose(fresh.optimizer_state[k], v, rtol=1e-4, atol=1e-9, err_msg=k)


def test_the_cut_covers_every_parameter_once_and_keeps_the_initial_values():
    net = sparse_ei()
    ranks = partition(net, {"E": np.arange(12) % 3, "I": np.array([2, 1, 0, 0, 1, 2])})
    assert len(ranks) == 3
    full = net.init_params()
    seen = {n: np.zeros(a.size, int) for n, a in full.items()}
    for rn in ranks:
        mine = rn.net.init_params()
        assert sorted(mine) == sorted(rn.params)
        for n, (whole, k) in rn.params.items():
            np.testing.assert_array_equal(mine[n].ravel(), full[whole].ravel()[k], err_msg=n)
            np.add.at(seen[whole], k, 1)
    for n, count in seen.items():
        if n.endswith(".b"):  # a readout's bias lives on rank 0
            assert np.all(count == 1), n
        else:
            np.testing.assert_array_equal(count, 1, err_msg=n)
    # a ghost relays exactly the remote neurons that project into the rank
    E_to_E = net.projections["E_to_E"].connectivity
    for rn in ranks:
        into = np.isin(E_to_E.post, rn.owned["E"]) & ~np.isin(E_to_E.pre, rn.owned["E"])
        into_I = np.isin(net.projections["E_to_I"].connectivity.post, rn.owned["I"])
        remote = np.union1d(E_to_E.pre[into], net.projections["E_to_I"].connectivity.pre[into_I])
        np.testing.assert_array_equal(rn.ghosts["E_ghost"][1], np.setdiff1d(remote, rn.owned["E"]))


def test_what_cannot_be_cut_is_refused_by_name(tmp_path):
    ff = NETWORKS["three_layers"]()  # h1 -> h2 within a step
    with pytest.raises(BtcError, match=r"projection 'h1_to_h2' .* within a step; only projections reading"):
        partition(ff, 2)
    with pytest.raises(BtcError, match="rank 1 owns no neuron of group 'h'"):
        partition(NETWORKS["recurrent_expon"](), {"h": np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 2])})
    with pytest.raises(BtcError, match=r"owner\['h'\] must be 10 ranks"):
        partition(NETWORKS["recurrent_expon"](), {"h": np.zeros(9, int)})
    lonely = Network(seed=2)  # every A -> B pair crosses ranks: a rank's A reaches the loss only through the other
    lonely.input("x", 4)
    lonely.group("A", 4)
    lonely.group("B", 4)
    lonely.project("x", "A")
    lonely.project("x", "B")
    lonely.project("A", "B", recurrent=True, connectivity=(np.arange(4), np.array([2, 3, 0, 1])))
    lonely.readout("out", 2)
    lonely.project("B", "out")
    lonely.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match="rank 0's part of the network is not a network of its own: group 'A' has no path"):
        partition(lonely, 2)
    with pytest.raises(BtcError, match="AlignPre synapse"):
        partition(NETWORKS["align_pre"](), 2)
    conv = Network(seed=1)
    conv.input("x", 16)
    conv.group("h", 2 * 4 * 4)
    conv.project("x", "h", connectivity=Conv((1, 4, 4), 2, 3, padding=1))
    conv.project("h", "h", recurrent=True)
    conv.readout("out", 2)
    conv.project("h", "out")
    conv.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match="'x_to_h' is a convolution"):
        partition(conv, 2)
    with pytest.raises(BtcError, match="it needs no update_every"):
        CompileOptions(partitioned=True, chunk=1, update_every=3).check()
    with pytest.raises(BtcError, match="online algorithm"):
        CompileOptions(partitioned=True, chunk=1, algorithm="bptt").check()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(BtcError, match="not empty and holds no partitioned build"):
        compile_partitioned(sparse_ei(), 2, CompileOptions(batch=2), str(tmp_path / "busy"))
    with pytest.raises(BtcError, match="owns no neuron"):
        compile_partitioned(sparse_ei(), {"E": np.zeros(12, int), "I": np.arange(6) % 2}, CompileOptions(batch=2),
                            str(tmp_path / "bad"))
    assert sorted(os.listdir(tmp_path)) == ["busy"]  # nothing half-written


def test_the_cli_compiles_and_trains_a_partitioned_connectome_like_one_process(tmp_path):
    """btc compile --partition 2, then mpirun -n 2 btc train --task connectome (the teacher's parameters set
    whole, the state carried across windows): the same report and checkpoint as one process."""
    btc = os.path.join(os.path.dirname(sys.executable), "btc")
    (tmp_path / "fly.py").write_text(
        "from btc.frontend.connectome import synthetic_connectome\nfrom btc.frontend.zoo import connectome_lif\n"
        "def build():\n    return connectome_lif(synthetic_connectome(300, 5000, regions=4, seed=0), weight_scale=0.06)\n")
    for out, extra in (("split", ["--partition", "2"]), ("whole", ["--chunk", "10"])):
        done = subprocess.run([btc, "compile", "fly.py", "--batch", "2", *extra, "-o", out], capture_output=True,
                              text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    train = ["train", "--task", "connectome", "--epochs", "2", "--steps", "120", "--checkpoint"]
    two = _mpirun([btc, train[0], "split", *train[1:], "two.npz"], tmp_path)
    assert two.returncode == 0, two.stdout + two.stderr
    one = subprocess.run([btc, train[0], "whole", *train[1:], "one.npz"], capture_output=True, text=True, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    report = lambda out: [line.split(" train_seconds")[0] for line in out.splitlines() if "mse" in line]  # noqa: E731
    assert two.stdout.count("final:") == 1 and report(two.stdout) == report(one.stdout), (two.stdout, one.stdout)
    with np.load(tmp_path / "two.npz") as a, np.load(tmp_path / "one.npz") as b:
        for k in b.files:
            if b[k].dtype.kind == "f":
                np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-7, err_msg=k)
    refused = _mpirun([btc, "train", "split", "--task", "connectome", "--data-parallel"], tmp_path)
    assert refused.returncode != 0 and "partitioned network" in refused.stderr and "Traceback" not in refused.stderr
    # a rank that cannot load its part: every rank raises the same error, none waits in a collective
    shutil.copytree(tmp_path / "split", tmp_path / "broken")
    os.remove(tmp_path / "broken" / "rank1" / "model.vmfb")
    script = ("from btc.errors import BtcError\nfrom btc.runtime.partitioned import Partitioned\ntry:\n"
              "    Partitioned('broken')\nexcept BtcError as e:\n    print('refused:', e)\n")
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.stdout.count("refused:") == 2 and "model.vmfb" in done.stdout, done.stdout + done.stderr
    refused = subprocess.run([btc, "eval", "split", "--checkpoint", "two.npz"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert refused.returncode != 0 and "partitioned build, which only btc train runs" in refused.stderr

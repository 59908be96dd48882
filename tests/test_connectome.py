"""Connectomes: the FlyWire and edge-list loaders on small files written here in those formats, the
synthetic connectome's statistics, and the fitting task end to end (compile, teacher, online
training of a 3,000-neuron network whose held-out error must fall by half)."""
import gzip
import os

import numpy as np
import pytest
import scipy.sparse
from click.testing import CliRunner

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend.connectome import (from_scipy, load_edge_list, load_flywire, synthetic_connectome,
                                     write_flywire)
from btc.runtime import load
from btc.tasks.connectome import ConnectomeTask, train_connectome
from btc.tools.cli import main

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "fly_connectome.py")
HEADER = "pre_root_id,post_root_id,neuropil,syn_count,nt_type\n"
ROWS = ["720575940600000001,720575940600000002,AL_L,4,ACH",
        "720575940600000001,720575940600000002,LH_L,3,ACH",  # the same pair in another neuropil: summed
        "720575940600000002,720575940600000003,LH_L,9,GABA",
        "720575940600000003,720575940600000001,AL_L,6,GLUT",
        "720575940600000003,720575940600000002,LH_L,5,DA",  # neither excitatory nor inhibitory: other_sign
        "720575940600000002,720575940600000001,AL_L,2,ACH"]  # under min_syn_count=5 when asked


def _write(path, text, gz=False):
    with (gzip.open(path, "wt") if gz else open(path, "w")) as f:
        f.write(text)
    return str(path)


@pytest.mark.parametrize("gz", [False, True])
def test_flywire_connections_are_summed_signed_and_thresholded(tmp_path, gz):
    path = _write(tmp_path / ("c.csv.gz" if gz else "c.csv"), HEADER + "\n".join(ROWS) + "\n", gz)
    c = load_flywire(path)
    assert c.n == 3 and c.num_connections == 5
    pairs = {(int(c.ids[a]) % 10, int(c.ids[b]) % 10): (float(s), int(g))
             for a, b, s, g in zip(c.pre, c.post, c.strength, c.sign)}
    assert pairs == {(1, 2): (7.0, 1), (2, 3): (9.0, -1), (3, 1): (6.0, -1), (3, 2): (5.0, 1), (2, 1): (2.0, 1)}
    # without a neuron table: each neuron in the neuropil where it receives most synapses
    regions = {int(i) % 10: c.region_names[r] for i, r in zip(c.ids, c.region)}
    assert regions == {1: "AL_L", 2: "LH_L", 3: "LH_L"}
    strong = load_flywire(path, min_syn_count=5, other_sign=-1)
    assert strong.num_connections == 4
    assert {(int(strong.ids[a]) % 10, int(strong.ids[b]) % 10): int(g)
            for a, b, g in zip(strong.pre, strong.post, strong.sign)}[(3, 2)] == -1


def test_flywire_neuron_table_sets_neurons_and_regions(tmp_path):
    path = _write(tmp_path / "c.csv", HEADER + "\n".join(ROWS) + "\n")
    neurons = _write(tmp_path / "n.csv", "root_id,super_class,group\n720575940600000004,optic,OL\n"
                     "720575940600000003,central,CX\n720575940600000002,central,CX\n720575940600000001,sensory,AL\n")
    c = load_flywire(path, neurons)
    assert c.n == 4 and list(c.ids % 10) == [4, 3, 2, 1]  # the table's neurons in its order, unconnected too
    assert [c.region_names[r] for r in c.region] == ["OL", "CX", "CX", "AL"]  # `group` before `super_class`
    by_class = load_flywire(path, neurons, region_column="super_class")
    assert [by_class.region_names[r] for r in by_class.region] == ["optic", "central", "central", "sensory"]


@pytest.mark.parametrize("text, neurons, message", [
    ("pre_root_id,post_root_id,syn_count,nt_type\n1,2,3,ACH\n", None, r"lacks column\(s\) \['neuropil'\]"),
    (HEADER + "1,2,AL,-3,ACH\n", None, "line 2: syn_count -3 is negative"),
    (HEADER + "1,2,AL,3,ACH\n1,x,AL,3,ACH\n", None, "line 3: post_root_id 'x' is not a whole number"),
    (HEADER + "1,2,AL,3,ACH\n2,9,AL,3,ACH\n", "root_id,region\n1,A\n2,B\n", "line 3: post_root_id 9 is not in the neuron table"),
    (HEADER + "1,2,AL,3,ACH\n", "root_id,cell_type\n1,A\n2,B\n", "no region column"),
    (HEADER, None, "has a header but no connections"),
    ("", None, "is empty"),
    (HEADER + "1,2,AL\n", None, "line 2: 3 fields, expected 5"),
])
def test_bad_flywire_files_are_one_clear_error(tmp_path, text, neurons, message):
    path = _write(tmp_path / "c.csv", text)
    table = _write(tmp_path / "n.csv", neurons) if neurons else None
    with pytest.raises(BtcError, match=message):
        load_flywire(path, table)


def test_edge_list_and_scipy(tmp_path):
    path = _write(tmp_path / "e.csv", "pre,post,weight\n10,20,0.5\n20,10,-2\n10,20,0.25\n30,10,0\n")
    c = load_edge_list(path)
    assert list(c.ids) == [10, 20, 30] and c.num_connections == 2  # a zero weight is no connection
    assert list(zip(c.pre, c.post, c.strength, c.sign)) == [(0, 1, 0.75, 1), (1, 0, 2.0, -1)]
    with pytest.raises(BtcError, match="line 2: weight 'heavy' is not a number"):
        load_edge_list(_write(tmp_path / "bad.csv", "pre,post,weight\n1,2,heavy\n"))
    m = scipy.sparse.csr_matrix(np.array([[0, 1.5, 0], [-1, 0, 0], [0, 2, 0]]))
    s = from_scipy(m, region=np.array([0, 1, 1]))
    assert list(zip(s.pre, s.post, s.strength, s.sign)) == [(0, 1, 1.5, 1), (1, 0, 1.0, -1), (2, 1, 2.0, 1)]
    assert s.region_names == ("0", "1")


def test_synthetic_connectome_has_the_flys_statistics(tmp_path):
    a = synthetic_connectome(20_000, 450_000, regions=30, seed=3)
    assert a.n == 20_000 and 0.9 < a.num_connections / 450_000 < 1.1
    fan_in, fan_out = a.degrees()
    assert fan_in.max() > 10 * fan_in.mean() and fan_out.max() > 10 * fan_out.mean()  # heavy tails
    assert np.mean(a.region[a.pre] == a.region[a.post]) > 0.6  # mostly within a region
    assert 0.55 < np.mean(a.sign > 0) < 0.75 and len(a.region_names) == 30 and a.region_sizes().min() > 0
    again, other = synthetic_connectome(20_000, 450_000, regions=30, seed=3), synthetic_connectome(20_000, 450_000,
                                                                                                     regions=30, seed=4)
    assert np.array_equal(again.pre, a.pre) and np.array_equal(again.strength, a.strength)
    assert not np.array_equal(other.post[:1000], a.post[:1000])
    write_flywire(a, str(tmp_path / "c.csv.gz"))  # and back, through the FlyWire format
    b = load_flywire(str(tmp_path / "c.csv.gz"))
    assert np.array_equal(b.pre, a.pre) and np.array_equal(b.post, a.post)
    assert np.array_equal(b.strength, a.strength) and np.array_equal(b.sign, a.sign)


@pytest.fixture(scope="module")
def fly(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fly") / "artifact")
    result = CliRunner().invoke(main, ["compile", f"{EXAMPLE}:small", "--batch", "1", "--chunk", "25", "-o", out])
    assert result.exit_code == 0, result.output
    return out


def test_connectome_network_compiles_sparse_and_frozen(fly):
    model = load(fly)
    projections = {p["name"]: p for p in model.abi["projections"]}
    assert projections["exc"]["connectivity"]["layout"] == "pull-sliced-ell"  # hubs: rows bucketed
    assert projections["exc"]["sign"] == 1 and projections["inh"]["sign"] == -1
    assert not projections["region_means"]["trainable"] and not projections["stim_to_brain"]["trainable"]
    assert {p["name"] for p in model.abi["params"] if p["trainable"]} == {"exc.W", "inh.W", "brain.tau", "brain.theta"}
    params = {e["name"] for e in model.abi["layout"] if e["role"] == "param"}
    assert {"exc.W", "region_means.W"} <= params  # globals written at load, not constants of the module


def test_student_learns_the_teachers_region_signals(fly):
    """Online pp-prop on the sparse weights and per-neuron parameters halves the held-out error."""
    model = load(fly)
    task = ConnectomeTask(model, seed=0)
    result = train_connectome(model, epochs=5, lr=0.005, steps=1000, window=100, task=task)
    assert result["final_mse"] < 0.5 * result["initial_mse"], result["epochs"]
    fixed = [p["name"] for p in model.abi["params"] if not p["trainable"]]
    for name in fixed:
        assert np.array_equal(model.params[name], task.student[name]), name


def test_connectome_training_refuses_bad_lengths(fly):
    model = load(fly)
    with pytest.raises(BtcError, match=r"steps \(40\) must exceed the task's warm-up"):
        train_connectome(model, 1, 0.01, steps=40)
    with pytest.raises(BtcError, match=r"window a positive multiple of the artifact's chunk \(25\)"):
        train_connectome(model, 1, 0.01, steps=200, window=30)


def test_btc_train_task_connectome(fly, tmp_path):
    result = CliRunner().invoke(main, ["train", fly, "--task", "connectome", "--epochs", "1", "--steps", "300",
                                       "--checkpoint", str(tmp_path / "c.npz")])
    assert result.exit_code == 0, result.output
    assert "epoch 0: heldout_mse=" in result.output and "final: algorithm=pp-prop task=connectome" in result.output
    assert os.path.exists(tmp_path / "c.npz")


def test_connectome_task_refuses_another_artifact(compiled):
    with pytest.raises(BtcError, match="needs an artifact of btc.frontend.zoo.connectome_lif"):
        ConnectomeTask(compiled("shared_input_mse", "pp-prop", 5))

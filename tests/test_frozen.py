"""Frozen projections (`project(..., trainable=False)`): weights that never learn.

Oracle: the same network with every projection learning. Freezing changes no forward value and no
other parameter's gradient (pp-prop's traces are shared per signal and per group, D-RTRL's are per
projection, BPTT's adjoints flow through frozen weights alike), so those gradients must be equal;
a frozen parameter's gradient is zero and no update moves it.
"""
import dataclasses

import numpy as np
import pytest

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.runtime import load
from data import sequence
from nets import NETWORKS
from sparse_nets import sparse_variant

STEPS, BATCH = 13, 3
FROZEN = {"three_layers": ("h1_to_h2", "h3_to_out"), "shared_input_mse": ("x_to_a", "b_to_out")}


def _frozen(net, names):
    for n in names:
        net.projections[n] = dataclasses.replace(net.projections[n], frozen=True)
    return net


@pytest.mark.parametrize("algorithm", ["pp-prop", "d-rtrl", "bptt"])
@pytest.mark.parametrize("name", sorted(FROZEN))
def test_frozen_weights_keep_every_other_gradient(compiled, tmp_path, name, algorithm):
    net = _frozen(NETWORKS[name](), FROZEN[name])
    x, target, mask = sequence(net, BATCH, STEPS)
    compile_network(net, CompileOptions(algorithm=algorithm, batch=BATCH, chunk=5, decay=0.8), str(tmp_path / "a"))
    frozen, learning = load(str(tmp_path / "a")), compiled(name, algorithm, 5, BATCH, decay=0.8)
    learning.set_params(net.init_params())
    for model in (frozen, learning):
        model.zero_grads()
        model.train_sequence(x, target, mask)
    fixed = {f"{p}.{k}" for p in FROZEN[name] for k in ("W", "b")}
    assert {p["name"] for p in frozen.abi["params"] if not p["trainable"]} == fixed & set(frozen.params)
    g_frozen, g_learning = frozen.grads, learning.grads
    for key, want in g_learning.items():
        if key in fixed:
            assert not np.any(g_frozen[key]), key
        else:
            np.testing.assert_allclose(g_frozen[key], want, rtol=1e-5, atol=1e-6 * np.max(np.abs(want)), err_msg=key)
    before = frozen.params
    frozen.apply_update(0.05)
    after = frozen.params
    for key in before:
        assert np.array_equal(after[key], before[key]) == (key in fixed), key
    if algorithm != "bptt":  # no trace serves only a frozen projection
        of = {t["of"] for t in frozen.abi["trace_plan"]["traces"] if t["kind"] == "dense"}
        assert not of & set(FROZEN[name])


def test_frozen_sparse_readout_of_region_means(tmp_path):
    """A fixed sparse readout (each neuron to its region, weight 1/size): the readout is the region
    mean of the filtered spikes, and only the recurrent weights learn."""
    net = sparse_variant(NETWORKS["recurrent_expon"](), density=0.5, seed=2)
    hidden = net.size("h")
    C = net.size("out")
    region = np.arange(hidden) % C
    sizes = np.bincount(region)
    net.projections.pop("h_to_out")
    net.project("h", "out", connectivity=(np.arange(hidden), region), weights=1.0 / sizes[region],
                trainable=False, name="regions")
    compile_network(net, CompileOptions(batch=BATCH, chunk=5), str(tmp_path / "a"))
    model = load(str(tmp_path / "a"))
    x, target, mask = sequence(net, BATCH, STEPS)
    model.zero_grads()
    model.train_sequence(x, target, mask)
    assert not np.any(model.grads["regions.W"]) and np.any(model.grads["h_to_h.W"])
    rec = model.infer_sequence(x, record=True)
    assert rec["readout"].shape == (STEPS, BATCH, C)


def test_trainable_must_be_a_bool():
    net = NETWORKS["three_layers"]()
    with pytest.raises(BtcError, match="trainable must be True or False"):
        net.project("x", "h2", trainable="no", name="extra")


def test_frozen_weights_escape_weight_decay(tmp_path):
    """Decoupled weight decay moves every learned weight, even with a zero gradient; a frozen one never."""
    net = _frozen(NETWORKS["three_layers"](), FROZEN["three_layers"])
    compile_network(net, CompileOptions(batch=BATCH, chunk=5, weight_decay=0.5), str(tmp_path / "a"))
    model = load(str(tmp_path / "a"))
    before = model.params
    model.apply_update(0.1)
    after = model.params
    for key in before:
        assert np.array_equal(after[key], before[key]) == (key.split(".")[0] in FROZEN["three_layers"]
                                                            or not key.endswith(".W")), key

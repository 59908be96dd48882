"""Sparse projections (`project(..., connectivity=...)`): weights only at the connected pairs.

Oracles: the same network with dense weights that are zero off the pairs computes the same thing,
so its spikes must be identical and its gradients, read at the pairs, equal (1e-5 relative) under
pp-prop on nets.KERNEL_NETWORKS (every kind of projection; BTC_ALL_NETWORKS=1: every network of
nets.py), and under D-RTRL and BPTT on networks with delays, Dale's
law, AlignPre synapses and multi-state neurons; BPTT also against jax.grad of the simulator, which
scatters the weight vector into its matrix itself. Sequences are 13 steps in chunks of 5.
"""
import re

import numpy as np
import pytest
import scipy.sparse

import oracles
from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend import LIF, Expon, FixedProbability, Network
from btc.frontend.connectivity import connectivity_of
from btc.runtime import load
from data import sequence
from nets import KERNEL_NETWORKS, NETWORKS
from sparse_nets import at_pairs, masked_twin, sparse_variant

STEPS, BATCH = 13, 3


def _rel_err(got: dict, want: dict) -> dict:
    return {k: float(np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-12)) for k in want}


def _compile(net, tmp_path, tag, batch=BATCH, **options):
    out = str(tmp_path / tag)
    compile_network(net, CompileOptions(batch=batch, chunk=5, decay=0.8, **options), out)
    return load(out)


def _run(model, x, target, mask):
    model.zero_grads()
    model.train_sequence(x, target, mask)
    return model.grads, model.infer_sequence(x, record=True)


def _assert_same(sparse_net, sparse, dense, x, target, mask, name):
    g_sparse, rec_sparse = _run(sparse, x, target, mask)
    g_dense, rec_dense = _run(dense, x, target, mask)
    for key in rec_dense:
        if key.startswith("spikes."):
            np.testing.assert_array_equal(rec_sparse[key], rec_dense[key], err_msg=key)
        else:
            scale = max(1.0, float(np.max(np.abs(rec_dense[key]))))
            np.testing.assert_allclose(rec_sparse[key], rec_dense[key], rtol=1e-4, atol=1e-4 * scale, err_msg=key)
    want = at_pairs(sparse_net, g_dense)
    assert {k: v.shape for k, v in g_sparse.items()} == {k: v.shape for k, v in want.items()}
    errors = _rel_err(g_sparse, want)
    # Izhikevich's 0.04 v^2 at v ~ 100 mV carries another summation order's rounding to ~5e-5
    assert max(errors.values()) < (1e-4 if "izhikevich" in name else 1e-5), errors


def _dense_twin(compiled, name, sparse_net, algorithm="pp-prop"):
    """The dense module of network `name` (the session's cached compile: weights are run-time
    parameters) with the twin's weights, zero off the sparse network's pairs."""
    dense = compiled(name, algorithm, 5, BATCH, decay=0.8)
    dense.set_params(masked_twin(sparse_net, NETWORKS[name]()).init_params())
    return dense


@pytest.mark.parametrize("name", sorted(KERNEL_NETWORKS))
def test_sparse_equals_masked_dense_under_pp_prop(compiled, tmp_path, name):
    sparse_net = sparse_variant(NETWORKS[name]())
    x, target, mask = sequence(sparse_net, BATCH, STEPS)
    sparse = _compile(sparse_net, tmp_path, "sparse")
    dense = _dense_twin(compiled, name, sparse_net)
    assert all(p["propagation"] == "sparse" and p["connectivity"]["layout"] == "pull-ell"
               for p in sparse.abi["projections"])
    _assert_same(sparse_net, sparse, dense, x, target, mask, name)


@pytest.mark.parametrize("algorithm", ["d-rtrl", "bptt"])
@pytest.mark.parametrize("name", ["cuba_dale_delays", "align_pre", "exact_alif"])
def test_sparse_equals_masked_dense_under_d_rtrl_and_bptt(compiled, tmp_path, name, algorithm):
    sparse_net = sparse_variant(NETWORKS[name]())
    x, target, mask = sequence(sparse_net, BATCH, STEPS)
    sparse = _compile(sparse_net, tmp_path, "sparse", algorithm=algorithm)
    dense = _dense_twin(compiled, name, sparse_net, algorithm)
    if algorithm == "d-rtrl":  # one trace per pull slot: [B, largest fan-in, post]
        traces = {t["of"]: t["shape"] for t in sparse.abi["trace_plan"]["traces"] if t["kind"] == "dense"}
        for p in sparse.abi["projections"]:
            post = next(g["size"] for g in sparse.abi["groups"] if g["name"] == p["post"])
            assert traces[p["name"]][1:] == [BATCH, p["connectivity"]["fan_in_max"], post]
    _assert_same(sparse_net, sparse, dense, x, target, mask, name)


def test_sparse_bptt_against_jax_grad(tmp_path):
    """The simulator scatters each weight vector into its matrix; jax.grad differentiates that."""
    net = sparse_variant(NETWORKS["recurrent_expon"](), density=0.3, seed=3)
    x, target, mask = sequence(net, BATCH, STEPS)
    model = _compile(net, tmp_path, "bptt", algorithm="bptt")
    got, _ = _run(model, x, target, mask)
    want = oracles.bptt_grads(net, net.init_params(), x, target, mask)
    errors = _rel_err(got, want)
    assert max(errors.values()) < 1e-5, errors


def _small_net(connectivity, weights=None, sign=None, **kw):
    net = Network(seed=5)
    net.input("x", 12)
    net.group("h", 9)
    net.readout("out", 3)
    net.project("x", "h", connectivity=connectivity, weights=weights, sign=sign, **kw)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net


def test_every_connectivity_form_gives_the_same_pairs():
    rng = np.random.default_rng(0)
    mask = rng.random((12, 9)) < 0.3
    pre, post = np.nonzero(mask)
    order = rng.permutation(pre.size)  # any order in, (pre, post) order out
    forms = [mask, (pre[order], post[order]), scipy.sparse.csr_matrix(mask.astype(np.float32)),
             scipy.sparse.coo_array((np.ones(pre.size), (pre, post)), shape=(12, 9))]
    for form in forms:
        conn = _small_net(form).projections["x_to_h"].connectivity
        np.testing.assert_array_equal(conn.pre, pre)
        np.testing.assert_array_equal(conn.post, post)
        assert conn.nnz == mask.sum()


def test_fixed_probability_is_reproducible_and_O_of_nnz():
    a = _small_net(0.25).projections["x_to_h"].connectivity
    b = _small_net(FixedProbability(0.25)).projections["x_to_h"].connectivity
    c = _small_net(FixedProbability(0.25, seed=11)).projections["x_to_h"].connectivity
    np.testing.assert_array_equal(a.pre, b.pre)  # a float is FixedProbability seeded by the network
    assert not np.array_equal(a.dense_mask(), c.dense_mask())
    assert a.nnz == _small_net(0.25).projections["x_to_h"].connectivity.nnz
    net = Network()
    net.group("h", 50)
    net.input("x", 1)
    net.project("x", "h")
    net.project("h", "h", recurrent=True, connectivity=FixedProbability(0.5, seed=1, self_connections=False))
    conn = net.projections["h_to_h"].connectivity
    assert not np.any(conn.pre == conn.post) and 0.4 < conn.nnz / 2450 < 0.6
    big = Network()
    big.input("x", 20_000)
    big.group("h", 20_000)
    big.project("x", "h", connectivity=1e-4)  # 4e8 pairs considered, ~4e4 kept, drawn block by block
    assert 3.0e4 < big.projections["x_to_h"].connectivity.nnz < 5.0e4


def test_weights_only_at_the_pairs():
    mask = np.zeros((12, 9), bool)
    mask[[0, 3, 3, 11], [2, 0, 8, 8]] = True
    dense = np.arange(108, dtype=np.float32).reshape(12, 9)
    for weights in (dense * mask, np.array([2.0, 27.0, 35.0, 107.0]), scipy.sparse.csr_matrix(dense * mask)):
        params = _small_net(mask, weights=weights).init_params()
        np.testing.assert_array_equal(params["x_to_h.W"], [2.0, 27.0, 35.0, 107.0])
    drawn = _small_net(mask).init_params()["x_to_h.W"]
    assert drawn.shape == (4,)
    signed = _small_net(mask, sign="-").init_params()["x_to_h.W"]
    assert np.all(signed <= 0)


@pytest.mark.parametrize("connectivity, weights, message", [
    (1.5, None, "probability 1.5 not in (0, 1]"),
    (FixedProbability(0.1), None, None),
    ((np.array([0, 12]), np.array([0, 1])), None, "pre index 12 is out of range [0, 12)"),
    ((np.array([0, 1]), np.array([0, -1])), None, "post index -1 is out of range [0, 9)"),
    ((np.array([0, 1]), np.array([0])), None, "differ in length"),
    ((np.array([2, 2]), np.array([3, 3])), None, "connects (2, 3) more than once"),
    (np.zeros((12, 9), bool), None, "connects no pair"),
    (np.ones((9, 12), bool), None, "the mask has shape [9, 12], expected [12, 9]"),
    (scipy.sparse.eye(5), None, "the sparse matrix has shape [5, 5], expected [12, 9]"),
    ("dense", None, "connectivity must be a probability"),
    (np.eye(12, 9, dtype=bool), np.ones(5), "expected one per connection [9] or the dense [12, 9]"),
    (np.eye(12, 9, dtype=bool), np.full(9, np.nan), "weights must be finite numbers"),
    (np.eye(12, 9, dtype=bool), np.ones((12, 9)), "non-zero entry at (0, 1), which the connectivity does not connect"),
])
def test_bad_connectivity_is_one_clear_error(connectivity, weights, message):
    if message is None:
        _small_net(connectivity)
        return
    with pytest.raises(BtcError, match=re.escape(message)):
        _small_net(connectivity, weights=weights)


def test_artifact_records_the_layout_and_the_pairs(tmp_path):
    net = _small_net(FixedProbability(0.4, seed=2), sign="+")
    model = _compile(net, tmp_path, "a")
    conn = net.projections["x_to_h"].connectivity
    rec = next(p for p in model.abi["projections"] if p["name"] == "x_to_h")
    assert rec["connectivity"]["nnz"] == conn.nnz and rec["connectivity"]["fan_in_max"] == conn.fan_in().max()
    assert rec["connectivity"]["fan_out_max"] == conn.fan_out().max()
    # the push tables' rows: the largest fan-out padded to a multiple of 8 (IREE tiles their copies by a divisor)
    assert rec["connectivity"]["push_width"] == 8 * -(-conn.fan_out().max() // 8)
    assert next(p for p in model.abi["params"] if p["name"] == "x_to_h.W")["shape"] == [conn.nnz]
    assert model.abi["step_macs"] == BATCH * (conn.nnz + 9 * 3)
    index = [e for e in model.abi["layout"] if e["role"] == "index"]
    assert index and all(e["name"].startswith("x_to_h.") for e in index)
    assert model.manifest["abi"]["memory_bytes"]["index"] == sum(e["bytes"] for e in index)
    np.testing.assert_array_equal(model.connectivity["x_to_h"][0], conn.pre)
    np.testing.assert_array_equal(model.connectivity["x_to_h"][1], conn.post)
    W = model.weights["x_to_h"]
    assert scipy.sparse.issparse(W) and W.shape == (12, 9) and W.nnz == conn.nnz
    dense_W = W.toarray()
    np.testing.assert_array_equal(dense_W[conn.pre, conn.post], np.abs(model.params["x_to_h.W"]))
    assert np.all(dense_W[~conn.dense_mask()] == 0)


def _hub_pairs(n_pre: int, n_post: int, seed: int):
    """Heavy-tailed wiring: post 0 hears every pre, pre 0 reaches every post, the rest one or two."""
    rng = np.random.default_rng(seed)
    pre = np.concatenate([np.arange(n_pre), np.zeros(n_post, int), rng.integers(0, n_pre, 2 * n_post)])
    post = np.concatenate([np.zeros(n_pre, int), np.arange(n_post), rng.integers(0, n_post, 2 * n_post)])
    mask = np.zeros((n_pre, n_post), bool)
    mask[pre, post] = True
    return np.nonzero(mask)


def test_sliced_tables_put_every_pair_in_one_slot():
    from btc.passes.lowering.sparse import SparseLayout
    conn = connectivity_of(_hub_pairs(300, 200, 0), (300, 200), "hub", 0)
    layout = SparseLayout("hub", conn.pre, conn.post, 300, 200)
    for side, rows, cols, n_rows in ((layout.pull, conn.post, conn.pre, 200), (layout.push, conn.pre, conn.post, 300)):
        assert not side.whole and side.slots <= 2 * conn.nnz, (side.widths, side.counts)
        t = side.tables
        flat_col = np.concatenate([t[f"{side.prefix}_col{b}"].ravel() for b in range(len(side.widths))])
        flat_k = np.concatenate([t[f"{side.prefix}_k{b}"].ravel() for b in range(len(side.widths))])
        row_of_slot = np.concatenate([np.repeat(t[f"{side.prefix}_rows{b}"], w) for b, w in enumerate(side.widths)])
        slot = t[f"{side.prefix}_slot"]
        np.testing.assert_array_equal(flat_k[slot], np.arange(conn.nnz))
        np.testing.assert_array_equal(flat_col[slot], cols)
        np.testing.assert_array_equal(row_of_slot[slot], rows)
        assert np.sum(flat_k < conn.nnz) == conn.nnz  # every other slot is padding
        empty = np.bincount(rows, minlength=n_rows) == 0
        assert np.all(t[f"{side.prefix}_pos"][empty] == side.rows)


@pytest.mark.parametrize("algorithm, batch", [("pp-prop", BATCH), ("pp-prop", 6), ("bptt", BATCH)])
def test_heavy_tailed_wiring_equals_masked_dense(tmp_path, algorithm, batch):
    """Hubs make both sides sliced (buckets of power-of-two widths, read back per neuron): the same
    spikes, states and gradients as the dense network with zero weights off the pairs. At batch 6
    pp-prop's gradient is read at the pairs every step, at 3 once per chunk (kept per slot)."""
    def build(sparse: bool):
        net = Network(seed=3)
        net.input("x", 30)
        net.group("h", 40, LIF(tau=10.0, synapse=Expon(5.0)))
        net.readout("out", 3)
        for pre, size, rec, seed, scale in (("x", 30, False, 1, 6.0), ("h", 40, True, 2, 1.5)):
            conn = connectivity_of(_hub_pairs(size, 40, seed), (size, 40), "hub", 0)
            W = np.zeros((size, 40), np.float32)
            W[conn.pre, conn.post] = np.random.default_rng(seed).normal(0, scale, conn.nnz)
            net.project(pre, "h", recurrent=rec, weights=W[conn.pre, conn.post] if sparse else W,
                        connectivity=conn if sparse else None)
        net.project("h", "out")
        net.set_loss("cross_entropy", "out")
        return net

    sparse_net = build(True)
    x, target, mask = sequence(sparse_net, batch, STEPS)
    sparse = _compile(sparse_net, tmp_path, "sparse", batch, algorithm=algorithm)
    dense = _compile(build(False), tmp_path, "dense", batch, algorithm=algorithm)
    assert all(p["connectivity"]["layout"] == "pull-sliced-ell" for p in sparse.abi["projections"][:2])
    _assert_same(sparse_net, sparse, dense, x, target, mask, "hub")


SPIKE_DRIVEN_NETWORKS = ("recurrent_expon", "cuba_dale_delays", "align_pre", "three_layers")


@pytest.mark.parametrize("name", SPIKE_DRIVEN_NETWORKS)
def test_spike_driven_sparse_equals_masked_dense(compiled, tmp_path, name):
    """event_driven="on": every sparse projection with a binary presynaptic signal pushes its active
    inputs' pairs (propagation) and regroups pp-prop's gradient per block, its spikes pushing their pairs'
    entries of the backward filter (lowering/sparse_events.py), in train_chunk_fast. Lists as long as
    their tensors (activity 1): the fast variant takes every chunk, and must equal the dense twin."""
    sparse_net = sparse_variant(NETWORKS[name]())
    x, target, mask = sequence(sparse_net, BATCH, STEPS)
    sparse = _compile(sparse_net, tmp_path, "sparse", event_driven="on", activity=1.0)
    dense = _dense_twin(compiled, name, sparse_net)
    plan = {p["name"]: (p["binary"], p["propagation"], p["weight_gradient"]) for p in sparse.abi["projections"]}
    assert any(binary for binary, _, _ in plan.values()), plan
    for binary, propagation, gradient in plan.values():
        assert propagation == ("sparse-event" if binary else "sparse"), plan
        assert gradient in (("sparse-event", "sparse") if binary else ("sparse",)), plan
    assert any(g == "sparse-event" for _, _, g in plan.values()), plan
    _assert_same(sparse_net, sparse, dense, x, target, mask, name)
    assert sparse.tiers.chunks_by["train_chunk_fast"] == 3 and sparse.tiers.chunks_by["train_chunk"] == 0


def test_spike_driven_sparse_lists_that_overflow_stay_exact(tmp_path):
    """Expected activity 1 % (lists of 16 entries, one per step over the batch's inputs or neurons), inputs at 60 %: every
    chunk overflows the optimistic variants' lists, which store nothing; the exact train_chunk takes the
    chunks and gives the dense twin's result. At 3 % the fast variant takes them, exactly too."""
    from btc.frontend.zoo import recurrent_lif

    def build():
        return sparse_variant(recurrent_lif(inputs=40, hidden=60, classes=3), density=0.3)

    sparse_net = build()
    dense = masked_twin(sparse_net, recurrent_lif(inputs=40, hidden=60, classes=3))
    sparse = _compile(build(), tmp_path, "sparse", event_driven="on", activity=0.01)
    dense = _compile(dense, tmp_path, "dense")
    assert {p["propagation"] for p in sparse.abi["projections"]} == {"sparse-event"}
    x, target, mask = sequence(sparse_net, BATCH, STEPS, rate=0.6)
    _assert_same(sparse_net, sparse, dense, x, target, mask, "recurrent_lif")
    assert sparse.tiers.busy_chunks == 1 and sparse.tiers.chunks_by["train_chunk"] == 3
    sparse.tiers.reset()
    quiet, _, _ = sequence(sparse_net, BATCH, STEPS, rate=0.03)
    _assert_same(sparse_net, sparse, dense, quiet, target, mask, "recurrent_lif")
    assert sparse.tiers.chunks_by["train_chunk_fast"] == 3


def test_tight_lists_overflow_to_the_next_variant_and_stay_exact(tmp_path):
    """Inputs declared 10 % active over a step's 3 x 600 entries: train_chunk_tight's lists hold 284 (1.25 x 180
    expected and 4 standard deviations), train_chunk_fast's 364. At 10 % (196 at most) the tight variant takes
    the chunks; at 17 % (306 a step) it overflows and stores nothing, and train_chunk_fast takes them. Both
    equal the dense twin."""
    from btc.frontend.zoo import recurrent_lif
    from btc.passes.plan_events import list_capacity, step_list_capacity

    assert (step_list_capacity(1800, 0.1), list_capacity(1800, 0.1)) == (284, 364)

    def build():
        return sparse_variant(recurrent_lif(inputs=600, hidden=30, classes=3), density=0.3)

    sparse_net = build()
    dense = _compile(masked_twin(sparse_net, recurrent_lif(inputs=600, hidden=30, classes=3)), tmp_path, "dense")
    sparse = _compile(build(), tmp_path, "sparse", event_driven="on", activity={"x": 0.1, "*": 1.0})
    assert "train_chunk_tight" in sparse.functions and "train_chunk_fast" in sparse.functions
    x, target, mask = sequence(sparse_net, BATCH, STEPS, rate=0.1)
    assert (x.reshape(STEPS, -1) > 0).sum(axis=1).max() <= 284  # (the seed's draw: every step fits)
    _assert_same(sparse_net, sparse, dense, x, target, mask, "recurrent_lif")
    assert sparse.tiers.chunks_by["train_chunk_tight"] == 3 and sparse.tiers.busy_chunks == 0
    sparse.tiers.reset()
    busy, _, _ = sequence(sparse_net, BATCH, STEPS, rate=0.17)
    per_step = (busy.reshape(STEPS, -1) > 0).sum(axis=1)  # (the seed's draw: every chunk has a step past 284)
    assert per_step.max() <= 364 and all(per_step[c:c + 5].max() > 284 for c in range(0, STEPS, 5))
    _assert_same(sparse_net, sparse, dense, busy, target, mask, "recurrent_lif")
    assert sparse.tiers.busy_chunks == 1 and sparse.tiers.chunks_by["train_chunk_tight"] == 3
    assert sparse.tiers.chunks_by["train_chunk_fast"] == 3


def test_spike_driven_sparse_plan():
    """auto: a large, sparsely firing sparse projection is pushed by its spikes, a tiny one is pulled;
    off: pulled; a non-binary signal and shared weights (a convolution) are always pulled."""
    from btc.driver import lower_network
    from btc.passes.lowering.abi import Abi

    def plan(net, **options):
        module, _ = lower_network(net, CompileOptions(batch=32, chunk=20, **options))
        return {p["name"]: (p["propagation"], p["weight_gradient"]) for p in Abi.from_module(module).projections}

    def big():
        net = Network(seed=0)
        net.input("x", 100)
        net.group("h", 4096, LIF(tau=10.0, synapse=Expon(5.0)))
        net.readout("out", 3)
        net.project("x", "h")
        net.project("h", "h", recurrent=True, connectivity=FixedProbability(0.01, seed=1))
        net.project("h", "out")
        net.set_loss("cross_entropy", "out")
        return net

    assert plan(big(), activity={"x": 0.1, "*": 0.005})["h_to_h"] == ("sparse-event", "sparse-event")
    assert plan(big(), activity={"x": 0.1, "*": 0.005}, event_driven="off")["h_to_h"] == ("sparse", "sparse")
    assert plan(big(), activity={"x": 0.1, "*": 0.9})["h_to_h"] == ("sparse", "sparse")  # busy: pulled is cheaper
    small = plan(_small_net(FixedProbability(0.3, seed=0)))
    assert small["x_to_h"] == ("sparse", "sparse")

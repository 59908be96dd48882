"""Convolutional projections (`connectivity=Conv(...)` / `Pool(...)`): sparse projections whose pairs
share a kernel.

Oracles:
- the geometry: each connectivity's [pre, post] matrix equals the Jacobian of the same map written
  with `jax.lax.conv_general_dilated` and `jax.lax.reduce_window` (PyTorch's and NIR's conventions);
- the compiled module: spikes and states equal to the JAX simulator's; BPTT equal to jax.grad of
  the simulator (which reads the kernel at every pair, so jax.grad sums the shared entries itself);
  pp-prop and D-RTRL equal to pp-prop.md's formulas written plainly in JAX (oracles.online_grads),
  whose per-pair gradients are summed onto the kernel: the correlation. Sequences are 13 steps in
  chunks of 5.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

import oracles
from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend import LIF, Conv, Expon, Network, Pool
from btc.frontend import simulate as sim
from btc.runtime import load
from btc.tools.cli import main
from data import sequence

STEPS, BATCH = 13, 3


def conv_net() -> Network:
    """2-D input maps -> conv (padding 1, bias) -> LIF maps -> average pool + conv -> LIF with
    Expon synapses; those maps read as 1-D (channels, length) -> dilated conv (delay 1, Dale's law);
    the first maps -> a fixed average pool -> LIF; everything -> a dense readout."""
    net = Network(seed=0)
    net.input("x", 2 * 6 * 6, binary=True)
    c1 = Conv((2, 6, 6), 3, 3, padding=1)
    net.group("h1", int(np.prod(c1.out_shape())), LIF(tau=10.0, theta=0.5))
    net.project("x", "h1", connectivity=c1, bias=True, init=3.0)
    c2 = Conv((3, 6, 6), 4, (2, 2), pool=Pool(2, average=True))
    net.group("h2", int(np.prod(c2.out_shape())), LIF(tau=10.0, theta=0.5, synapse=Expon(5.0)))
    net.project("h1", "h2", connectivity=c2, bias=True, init=6.0)
    for name, b in (("x_to_h1", [0.2, -0.1, 0.3]), ("h1_to_h2", [0.1, 0.0, -0.2, 0.3])):  # per channel
        net.projections[name] = dataclasses.replace(net.projections[name], biases=np.array(b, np.float32))
    c3 = Conv((4, 4), 2, 3, padding=2, dilation=2)
    net.group("h3", int(np.prod(c3.out_shape())), LIF(tau=10.0, theta=0.3))
    net.project("h2", "h3", connectivity=c3, delay=1, sign="+", init=3.0)
    pool = Pool(3, average=True, in_shape=(3, 6, 6))
    net.group("h4", int(np.prod(pool.out_shape())), LIF(tau=10.0, theta=0.3))
    net.project("h1", "h4", connectivity=pool, weights=[8.0], trainable=False)
    net.readout("out", 5)
    for g in ("h2", "h3", "h4"):
        net.project(g, "out")
    net.set_loss("cross_entropy", "out")
    return net


def _lax_map(spec, x):
    """The same linear map as `spec` (a Conv or a Pool), on one flat input, written with lax."""
    def pool(p, m):
        window = (1,) + tuple(np.broadcast_to(p.kernel, (m.ndim - 1,)))
        stride = window if p.stride is None else (1,) + tuple(np.broadcast_to(p.stride, (m.ndim - 1,)))
        out = jax.lax.reduce_window(m, 0.0, jax.lax.add, window, stride, "VALID")
        return out / np.prod(window) if p.average else out

    if isinstance(spec, Pool):
        return pool(spec, x.reshape(spec.in_shape)).ravel()
    m = x.reshape(spec.in_shape)
    if spec.pool is not None:
        m = pool(spec.pool, m)
    d = m.ndim - 1
    kernel = jnp.arange(np.prod(spec.kernel_shape), dtype=jnp.float32).reshape(spec.kernel_shape) + 1.0
    pad = [(p, p) for p in np.broadcast_to(spec.padding, (d,))]
    y = jax.lax.conv_general_dilated(m[None], kernel, tuple(np.broadcast_to(spec.stride, (d,))), pad,
                                     rhs_dilation=tuple(np.broadcast_to(spec.dilation, (d,))),
                                     feature_group_count=spec.groups)
    return y[0].ravel()


@pytest.mark.parametrize("spec", [
    Conv((2, 7, 6), 3, (3, 2), stride=(2, 1), padding=(1, 0)),
    Conv((3, 9), 2, 3, stride=2, padding=2, dilation=2),
    Conv((2, 8, 8), 3, 3, padding=1, pool=Pool(2)),
    Conv((2, 9, 7), 2, 2, stride=2, pool=Pool((3, 2), stride=(3, 3), average=True)),
    Conv((4, 4, 4), 5, (2, 2), pool=Pool(2)),  # pool, flatten, affine: one kernel over the whole map
    Conv((4, 6, 5), 6, (3, 2), padding=1, groups=2),
    Pool((2, 3), stride=(2, 4), average=True, in_shape=(2, 6, 9)),
    Pool(3, in_shape=(2, 10)),
], ids=["conv2d", "conv1d-dilated", "sumpool-conv", "avgpool-conv", "pool-flatten-affine", "grouped", "avgpool2d",
        "sumpool1d"])
def test_geometry_equals_lax(spec):
    net = Network(seed=0)
    n_in = int(np.prod(spec.in_shape))
    n_out = int(np.prod(spec.out_shape()))
    net.input("x", n_in)
    net.group("h", n_out, LIF())
    kernel = np.arange(np.prod(spec.kernel_shape), dtype=np.float32) + 1.0 if isinstance(spec, Conv) else [1.0]
    name = net.project("x", "h", connectivity=spec, weights=kernel)
    params = net.init_params()
    got = np.asarray(sim.weight(net.projections[name], params))
    want = np.asarray(jax.jacobian(lambda x: _lax_map(spec, x))(jnp.zeros(n_in, jnp.float32))).T
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.count_nonzero(want) == net.projections[name].connectivity.nnz


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    out = {}

    def get(algorithm):
        if algorithm not in out:
            path = str(tmp_path_factory.mktemp(f"conv-{algorithm}") / "artifact")
            compile_network(conv_net(), CompileOptions(algorithm=algorithm, batch=BATCH, chunk=5, decay=0.8), path)
            out[algorithm] = path
        return load(out[algorithm])

    return get


def _rel_err(got: dict, want: dict) -> dict:
    return {k: float(np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-12)) for k in want}


@pytest.mark.parametrize("algorithm", ["pp-prop", "bptt", "d-rtrl"])
def test_conv_network_against_oracles(artifacts, algorithm):
    net = conv_net()
    model = artifacts(algorithm)
    x, target, mask = sequence(net, BATCH, STEPS)
    rec = model.infer_sequence(x, record=True)
    params = net.init_params()
    _, want = sim.run(net, {k: jnp.asarray(v) for k, v in params.items()}, {"x": jnp.asarray(x)})
    for g in ("h1", "h2", "h3", "h4"):
        assert rec[f"spikes.{g}"].sum() > 0, f"{g} must spike for the comparison to mean anything"
        np.testing.assert_array_equal(rec[f"spikes.{g}"], np.asarray(want["spikes"][g]), err_msg=g)
    np.testing.assert_allclose(rec["readout"], np.asarray(want["states"]["out"]["r"]), rtol=1e-5, atol=1e-5)
    model.zero_grads()
    model.train_sequence(x, target, mask)
    if algorithm == "bptt":
        want = oracles.bptt_grads(net, params, x, target, mask)
    else:
        dense = tuple(p for p, a in model.abi["trace_plan"]["projections"].items() if a == "d-rtrl")
        assert bool(dense) == (algorithm == "d-rtrl")
        want = oracles.online_grads(net, params, x, target, mask, alpha=0.8, correction=True, dense=dense)
    assert "h1_to_h4.W" not in model.grads or not np.any(model.grads["h1_to_h4.W"]), "a fixed pool never learns"
    want = {k: v for k, v in want.items() if k != "h1_to_h4.W"}
    assert {k: model.grads[k].shape for k in want} == {k: v.shape for k, v in want.items()}
    assert all(np.any(v != 0) for v in want.values()), "every kernel and bias should get a gradient"
    errors = _rel_err(model.grads, want)
    assert max(errors.values()) < 1e-5, errors


def test_artifact_records_the_kernel_and_its_pairs(artifacts):
    model = artifacts("pp-prop")
    net = conv_net()
    conn = {p["name"]: p["connectivity"] for p in model.abi["projections"]}
    assert conn["x_to_h1"]["n_weights"] == 3 * 2 * 3 * 3 and conn["x_to_h1"]["nnz"] > 3 * 2 * 3 * 3
    assert conn["h1_to_h4"]["scale"] == pytest.approx(1 / 9)
    assert model.params["x_to_h1.W"].shape == (54,) and model.params["x_to_h1.b"].shape == (3,)
    shown = CliRunner().invoke(main, ["inspect", model.path])
    assert shown.exit_code == 0 and "1,536 pairs (pull-ell, fan-in up to 18, mean 14.2, sharing 54 weights)" in \
        shown.output, shown.output
    params = net.init_params()
    for name, W in model.weights.items():
        want = np.asarray(sim.weight(net.projections[name], params))
        np.testing.assert_allclose(W.toarray() if hasattr(W, "toarray") else W, want, rtol=1e-6)


@pytest.mark.parametrize("spec, size, message", [
    (Conv((2, 6, 6), 3, 3), (72, 3 * 36), "connectivity maps [2, 6, 6] (72 neurons) to [3, 4, 4] (48)"),
    (Conv((2, 6, 6), 3, 7), (72, 3), "kernel [7, 7] (dilation [1, 1], padding [0, 0]) does not fit the map [6, 6]"),
    (Conv((2, 6, 6), 3, 2, pool=Pool(2, stride=1)), (72, 3), "pool windows overlap"),
    (Conv((2, 6, 6, 1), 3, 2), (72, 3), "in_shape must be (channels, length) or (channels, height, width)"),
    (Conv((2, 6), 0, 2), (12, 3), "out_channels must be a positive integer"),
    (Conv((2, 6), 1, (2, 2)), (12, 5), "kernel must be an integer >= 1 or 1 of them"),
    (Conv((2, 6), 3, 2, groups=2), (12, 15), "groups must be a positive integer dividing the 2 input and 3 output"),
    (Pool(2), (12, 6), "a Pool used as a projection's connectivity needs in_shape"),
    (Conv((1, 1), 1, 1, stride=20, padding=5), (1, 1), "connects no pair (the kernel never lands on the map)"),
])
def test_bad_convolutions_are_one_clear_error(spec, size, message):
    net = Network()
    net.input("x", size[0])
    net.group("h", size[1], LIF())
    with pytest.raises(BtcError, match="projection 'x_to_h'") as e:
        net.project("x", "h", connectivity=spec)
    assert message in str(e.value)
    assert not net.projections


def test_a_kernel_of_the_wrong_shape_is_refused():
    net = Network()
    net.input("x", 2 * 6 * 6)
    net.group("h", 3 * 4 * 4, LIF())
    with pytest.raises(BtcError, match=r"weights have shape \[3, 3\], expected the kernel \[3, 2, 3, 3\]"):
        net.project("x", "h", connectivity=Conv((2, 6, 6), 3, 3), weights=np.ones((3, 3)))
    net.project("x", "h", connectivity=Conv((2, 6, 6), 3, 3), weights=np.ones((3, 2, 3, 3)))
    assert net.init_params()["x_to_h.W"].shape == (54,)


def test_a_convolution_reused_keeps_its_kernel_and_nir_export_names_what_it_cannot_say():
    from btc.frontend.nir_export import to_nir

    net = conv_net()
    net.group("h5", net.size("h1"), LIF())
    net.project("x", "h5", connectivity=net.projections["x_to_h1"].connectivity)
    assert net.init_params()["x_to_h5.W"].shape == (54,)
    with pytest.raises(BtcError, match=r"'h2' is a \[4, 2, 2\] map for projection 'h1_to_h2' and a \[4, 4\] one "
                                       r"for 'h2_to_h3'; a NIR node has one shape"):
        to_nir(conv_net())

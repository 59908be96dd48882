"""The compiled module against independent oracles, on every network shape in nets.py:
forward states and spikes vs the JAX simulator, BPTT vs jax.grad, pp-prop vs plain-JAX pp-prop.

Sequences are 13 steps; pp-prop and inference run them in chunks of 5 (two full chunks and a padded
partial one), BPTT one step per call, so chunking and padding are exercised too.
"""
import jax.numpy as jnp
import numpy as np
import pytest

import oracles
from btc.frontend import simulate as sim
from data import sequence
from nets import NETWORKS

STEPS, BATCH = 13, 3


def _rel_err(got: dict, want: dict) -> dict:
    return {k: float(np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-12)) for k in want}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_forward_matches_simulator(compiled, name):
    net = NETWORKS[name]()
    model = compiled(name, "pp-prop", 5, BATCH, decay=0.8)  # the module the gradient tests use: one compile
    x, _, _ = sequence(net, BATCH, STEPS)
    out = model.infer_sequence(x, record=True)
    chunked = model.infer_sequence(x)["readout"]
    params = {k: jnp.asarray(v) for k, v in net.init_params().items()}
    _, rec = sim.run(net, params, {"x": jnp.asarray(x)})
    total_spikes = 0
    for g in net.groups:
        for s, want in rec["states"][g].items():
            # 1e-5 of the state's range: Izhikevich's pre-reset v reaches hundreds of mV
            scale = max(1.0, float(np.max(np.abs(want))))
            np.testing.assert_allclose(out[f"state.{g}.{s}"], np.asarray(want), rtol=1e-5, atol=1e-5 * scale,
                                       err_msg=f"state {g}.{s}")
        if g in rec["spikes"]:
            np.testing.assert_array_equal(out[f"spikes.{g}"], np.asarray(rec["spikes"][g]), err_msg=f"spikes {g}")
            total_spikes += out[f"spikes.{g}"].sum()
    assert total_spikes > 0, "the test network must spike for the comparison to mean anything"
    for readout in (out["readout"], chunked):
        np.testing.assert_allclose(readout, np.asarray(rec["states"][net.loss.readout]["r"]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_bptt_gradient_equals_jax_grad(compiled, name):
    net = NETWORKS[name]()
    model = compiled(name, "bptt", 5, BATCH, event_driven="on")  # event-driven propagation wherever binary
    x, target, mask = sequence(net, BATCH, STEPS)
    model.zero_grads()
    out = model.train_sequence(x, target, mask)
    want = oracles.bptt_grads(net, net.init_params(), x, target, mask)
    errors = _rel_err(model.grads, want)
    assert max(errors.values()) < 1e-4, errors
    assert all(np.any(want[k] != 0) for k in want), "every parameter should get a gradient"
    want_loss = float(sim.loss(net, {k: jnp.asarray(v) for k, v in net.init_params().items()},
                               {"x": jnp.asarray(x)}, jnp.asarray(target), jnp.asarray(mask)))
    assert out["loss"] == pytest.approx(want_loss, rel=1e-5)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_pp_prop_gradient_equals_plain_jax_pp_prop(compiled, name):
    net = NETWORKS[name]()
    model = compiled(name, "pp-prop", 5, BATCH, decay=0.8)
    x, target, mask = sequence(net, BATCH, STEPS)
    model.zero_grads()
    model.train_sequence(x, target, mask)
    want = oracles.online_grads(net, net.init_params(), x, target, mask, alpha=0.8, correction=True)
    errors = _rel_err(model.grads, want)
    assert max(errors.values()) < 1e-4, errors


def test_pp_prop_is_not_bptt(compiled):
    """Guards the oracle comparison above: the two algorithms must differ on a recurrent net."""
    net = NETWORKS["recurrent_expon"]()
    x, target, mask = sequence(net, BATCH, STEPS)
    pp = oracles.online_grads(net, net.init_params(), x, target, mask, alpha=0.8)
    bp = oracles.bptt_grads(net, net.init_params(), x, target, mask)
    assert max(_rel_err(pp, bp).values()) > 1e-2

"""The ABI record the lowering produces, end to end: a network with two inputs declared out of
alphabetical order (an MLIR dictionary would sort them) trains and runs through the runtime exactly
as the JAX oracle says; every schedule op and loss kind has its lowering rule; BTC_SAVE_TEMPS keeps
the IR after every pass, the pipeline and IREE's reproducer."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from btc.dialect.ops import LOSS_KINDS, SCHEDULE_OPS
from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend import LIF, Expon, Network, Surrogate
from btc.frontend import simulate as sim
from btc.runtime import load


def two_inputs() -> Network:
    net = Network(dt=1.0, seed=11)
    net.input("z", 4)  # declared first, sorts last
    net.input("a", 3)
    net.group("h", 6, LIF(tau=6.0, synapse=Expon(3.0), surrogate=Surrogate("sigmoid", 4.0)))
    net.project("z", "h", init=4.0)
    net.project("a", "h", init=4.0)
    net.readout("out", 2, tau=4.0)
    net.project("h", "out")
    net.set_loss("mse", "out")
    return net


def test_two_inputs_keep_their_order_from_the_abi_to_the_runtime(tmp_path):
    net = two_inputs()
    manifest = compile_network(net, CompileOptions(algorithm="bptt", batch=2, chunk=4), str(tmp_path / "a"))
    abi = manifest["abi"]
    assert [i["name"] for i in abi["inputs"]] == ["z", "a"]
    fn = {f["name"]: f for f in abi["functions"]}
    assert [(a["name"], a["shape"]) for a in fn["bptt_forward_step"]["inputs"]][:2] == [("x_z", [2, 4]), ("x_a", [2, 3])]
    assert [a["name"] for a in fn["infer_chunk"]["inputs"]] == ["x_z", "x_a"]
    rng = np.random.default_rng(0)
    x = {"z": (rng.random((7, 2, 4)) < 0.4).astype(np.float32), "a": (rng.random((7, 2, 3)) < 0.4).astype(np.float32)}
    target = rng.random((7, 2, 2)).astype(np.float32)
    mask = np.full(7, 1.0 / 7, np.float32)
    model = load(str(tmp_path / "a"))
    params = {k: jnp.asarray(v) for k, v in net.init_params().items()}
    _, rec = sim.run(net, params, {k: jnp.asarray(v) for k, v in x.items()})
    out = model.infer_sequence(x, record=True)
    np.testing.assert_array_equal(out["spikes.h"], np.asarray(rec["spikes"]["h"]))
    assert out["spikes.h"].sum() > 0
    model.zero_grads()
    model.train_sequence(x, target, mask)
    want = jax.grad(lambda p: sim.loss(net, p, {k: jnp.asarray(v) for k, v in x.items()}, jnp.asarray(target),
                                       jnp.asarray(mask)))(params)
    for k, g in model.grads.items():
        np.testing.assert_allclose(g, np.asarray(want[k]), rtol=1e-4, atol=1e-6 * np.abs(want[k]).max(), err_msg=k)
    with pytest.raises(BtcError, match=r"inputs must be exactly \['z', 'a'\]"):
        model.infer_sequence({"z": x["z"]})


def test_every_schedule_op_and_loss_has_a_lowering_rule():
    from btc.passes.lowering.loss import LOSS_RULES
    from btc.passes.lowering.schedule import RULES, run_schedule  # noqa: F401  (imports the rule modules)
    import btc.passes.lowering.grad_rules  # noqa: F401
    import btc.passes.lowering.trace_rules  # noqa: F401

    # btc.bptt_backward is not lowered op by op: it selects the BPTT functions (lowering/__init__.py)
    assert set(RULES) == set(SCHEDULE_OPS) - {"btc.bptt_backward"}
    assert set(LOSS_RULES) == set(LOSS_KINDS)


def test_save_temps_keeps_every_pass_the_pipeline_and_the_reproducer(tmp_path, monkeypatch):
    monkeypatch.setenv("BTC_SAVE_TEMPS", str(tmp_path / "temps"))
    manifest = compile_network(two_inputs(), CompileOptions(batch=2, chunk=4), str(tmp_path / "a"))
    temps = tmp_path / "temps"
    passes = sorted(os.listdir(temps / "passes"))
    assert passes[0] == "00-input.mlir" and passes[-1] == "08-btc-check-lowered.mlir" and len(passes) == 9
    assert (temps / "pipeline.txt").read_text().strip() == manifest["pipeline"]
    assert (temps / "model.vmfb").read_bytes() == (tmp_path / "a" / "model.vmfb").read_bytes()
    assert "iree-compile" in (temps / "flags.txt").read_text()
    # a compile that fails in a pass: the message names where the IR of the passes that ran is
    with pytest.raises(BtcError, match=r"(?s)btc-plan-traces: trace memory budget .*the IR after every pass "
                                       r"that ran is in .*temps/passes") as caught:
        compile_network(two_inputs(), CompileOptions(algorithm="hybrid", batch=2, chunk=4, trace_memory_budget=8),
                        str(tmp_path / "b"))
    assert not (tmp_path / "b").exists()
    left = sorted(os.listdir(temps / "passes"))
    assert left[-1] == "03-btc-derive-jacobians.mlir", (left, str(caught.value))
    assert not (temps / "model.vmfb").exists(), "the previous compile's vmfb must not be taken for this one's"

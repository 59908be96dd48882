"""Model-agnostic pieces of the frontend: delays, Dale's law, user-defined neurons, and the
combinations the frontend refuses (each with one clear error)."""
import os

import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend import COBA, LIF, CustomNeuron, Izhikevich, Network, Surrogate, spike_fn
from btc.frontend import simulate as sim
from btc.runtime import load
from btc.tools.cli import main
from data import sequence
from nets import NETWORKS

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def test_a_delay_shifts_the_input_by_whole_steps(tmp_path):
    """input --(delay 3)--> memoryless readout: the readout at t is x[t-3] @ W, exactly."""
    net = Network(dt=1.0, seed=3)
    net.input("x", 4)
    net.readout("out", 2, tau=0.0)
    net.project("x", "out", delay=3, bias=False)
    net.set_loss("mse", "out")
    compile_network(net, CompileOptions(batch=2, chunk=4), str(tmp_path / "a"))
    model = load(str(tmp_path / "a"))
    x = np.random.default_rng(0).random((11, 2, 4)).astype(np.float32)
    got = model.infer_sequence(x)["readout"]
    W = net.init_params()["x_to_out.W"]
    want = np.concatenate([np.zeros((3, 2, 2), np.float32), np.einsum("tbi,io->tbo", x[:-3], W)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_dale_signs_survive_training(compiled):
    """Large updates flip some stored weights; the applied weights sign*|W| keep their sign, and the
    trained module still equals the simulator."""
    name = "cuba_dale_delays"
    net = NETWORKS[name]()
    model = compiled(name, "pp-prop", 5, 3, update_every=3)
    before = model.params
    x, target, mask = sequence(net, 3, 13)
    for _ in range(5):
        model.train_sequence(x, target, mask, lr=0.5)
    after = model.params
    signed = {p.name: p.sign for p in net.projections.values() if p.sign}
    assert set(signed) == {"E_to_I", "I_to_E", "E_to_h2", "I_to_h2", "E_to_out"}
    flipped = sum(int(np.sum(np.sign(after[f"{p}.W"]) != np.sign(before[f"{p}.W"]))) for p in signed)
    assert flipped > 0, "the updates must be large enough to push stored weights through zero"
    for p, sign in signed.items():
        assert np.all(model.weights[p] * sign >= 0), p
    out = model.infer_sequence(x, record=True)
    _, rec = sim.run(net, {k: jnp.asarray(v) for k, v in after.items()}, {"x": jnp.asarray(x)})
    for g in ("E", "I", "h2"):
        np.testing.assert_array_equal(out[f"spikes.{g}"], np.asarray(rec["spikes"][g]))


def test_user_defined_neuron_trains_through_the_cli(tmp_path):
    out = tmp_path / "qif"
    runner = CliRunner()
    result = runner.invoke(main, ["compile", os.path.join(EXAMPLES, "qif_digits.py"), "--batch", "32", "--chunk", "20",
                                  "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["train", str(out), "--task", "digits", "--epochs", "2", "--steps", "20"])
    assert result.exit_code == 0, result.output
    final = result.output.strip().splitlines()[-1]
    assert final.startswith("final: algorithm=pp-prop task=digits")
    assert float(final.split("test_acc=")[1].split()[0]) > 0.5, final  # chance is 0.1


def _sine_neuron():
    def step(s, inputs, p):
        return {"v": jnp.sin(s["v"]) + inputs["y"]}

    return CustomNeuron(step, lambda s, p: spike_fn(s["v"] - 1.0, Surrogate()), states={"v": 0.0}, name="sine")


def test_unsupported_primitive_names_itself_and_the_group(tmp_path):
    net = Network()
    net.input("x", 3)
    net.group("h", 4, _sine_neuron())
    net.project("x", "h")
    net.readout("out", 2)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match=r"group 'h' \(sine\) \(dynamics\): the JAX primitive 'sin' is not supported"):
        compile_network(net, CompileOptions(batch=2, chunk=3), str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()


def test_rejected_combinations_say_why():
    with pytest.raises(BtcError, match="Izhikevich: reset must be 'hard'"):
        Izhikevich(reset="soft")
    net = Network()
    net.input("x", 3)
    net.group("h", 4, LIF(synapse=COBA()))
    with pytest.raises(BtcError, match=r"'h' has several input ports \['exc', 'inh'\]; choose one with port="):
        net.project("x", "h")
    with pytest.raises(BtcError, match=r"'h' has no port 'y'"):
        net.project("x", "h", port="y")
    net.group("inh", 2, LIF(), dale="inh")
    with pytest.raises(BtcError, match=r"'inh' is inh \(Dale's law\) but port='exc'"):
        net.project("inh", "h", port="exc")
    net.group("cuba", 2, LIF(), dale="exc")
    with pytest.raises(BtcError, match=r"'cuba' is exc \(Dale's law\), so its sign is \+1, not -1"):
        net.project("cuba", "inh", sign="-")
    with pytest.raises(BtcError, match="delay must be a whole number of steps >= 0"):
        net.project("x", "inh", delay=-1)
    with pytest.raises(BtcError, match="'tau_a' is not a per-neuron parameter of LIF"):
        net.group("g", 3, LIF(), trainable=("tau_a",))
    with pytest.raises(BtcError, match="step must return a dict of the states"):
        bad = CustomNeuron(lambda s, i, p: {"w": s["v"]}, lambda s, p: s["v"], states={"v": 0.0})
        bad.step(1.0, {"v": 0.0}, {"y": 0.0}, {})


def test_a_hidden_custom_derivative_is_refused(tmp_path):
    """A hand-written jax.custom_jvp spike would be inlined as its forward step (derivative 0)."""
    import jax

    @jax.custom_jvp
    def step_fn(x):
        return (x > 0).astype(jnp.float32)

    step_fn.defjvp(lambda p, t: (step_fn(p[0]), t[0] / (1 + jnp.abs(p[0])) ** 2))
    neuron = CustomNeuron(lambda s, i, p: {"v": s["v"] * 0.9 + i["y"] - step_fn(s["v"] - 1.0)},
                          lambda s, p: step_fn(s["v"] - 1.0), states={"v": 0.0}, name="mine")
    net = Network()
    net.input("x", 3)
    net.group("h", 4, neuron)
    net.project("x", "h")
    net.readout("out", 2)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match=r"has a custom derivative \(jax.custom_jvp\) that btc cannot see"):
        compile_network(net, CompileOptions(batch=2, chunk=3), str(tmp_path / "a"))


def test_align_pre_refusals_leave_the_network_unchanged():
    from btc.frontend import Expon

    net = Network()
    net.input("x", 3)
    net.group("h", 4, LIF())
    net.readout("out", 2)
    with pytest.raises(BtcError, match="a readout emits no spikes and cannot drive a synapse"):
        net.project("out", "h", synapse=Expon(), recurrent=True)
    with pytest.raises(BtcError, match="sign must be"):
        net.project("x", "h", synapse=Expon(), sign="plus")
    with pytest.raises(Exception):
        net.project("x", "h", synapse=Expon(), weights=[[1.0], [1.0, 2.0]])
    assert set(net.groups) == {"h", "out"}


def test_colliding_trace_names_are_refused(tmp_path):
    net = Network()
    net.input("x", 3)
    net.group("E", 4, LIF(synapse=COBA()))
    net.group("E_exc", 4, LIF())
    net.project("x", "E", port="exc", sign="+")
    net.project("x", "E_exc")
    net.readout("out", 2)
    net.project("E", "out")
    net.project("E_exc", "out")
    net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match=r"trace names \['eps_f_E_exc'\] are produced twice"):
        compile_network(net, CompileOptions(batch=2, chunk=3), str(tmp_path / "a"))

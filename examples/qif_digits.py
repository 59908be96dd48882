"""A user-defined neuron: quadratic integrate-and-fire, written as ten lines of plain JAX, learning
the rate-coded 8x8 digits with its own per-neuron critical voltage.

    btc compile examples/qif_digits.py --batch 32 --chunk 20 -o build/qif
    btc train build/qif --task digits --epochs 5

btc traces `step` and `spike` into its dialect and differentiates them like a built-in neuron; a
JAX primitive it cannot differentiate is reported by name.
"""
import jax.numpy as jnp

from btc.frontend import CustomNeuron, Network, Surrogate, spike_fn

DT = 1.0


def qif(dt: float = DT) -> CustomNeuron:
    surrogate = Surrogate("sigmoid", 2.0)

    def step(s, inputs, p):
        spiked = spike_fn(s["v"] - p["v_peak"], surrogate)
        v = jnp.where(spiked > 0, p["v_reset"], s["v"])  # the reset acts at the start of the next step
        dv = (v - p["v_rest"]) * (v - p["v_crit"]) / p["tau"] + inputs["y"]
        return {"v": v + dt * dv}

    def spike(s, p):
        return spike_fn(s["v"] - p["v_peak"], surrogate)

    return CustomNeuron(step, spike, states={"v": 0.0}, name="qif",
                        params={"tau": 10.0, "v_rest": 0.0, "v_crit": 0.5, "v_peak": 1.0, "v_reset": 0.0})


def build(hidden: int = 64) -> Network:
    net = Network(dt=DT, seed=0)
    net.input("x", 64)
    net.group("h", hidden, qif(), trainable=("v_crit",))
    net.project("x", "h", init=1.0)
    net.project("h", "h", recurrent=True, init=0.2)
    net.readout("out", 10, tau=10.0)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net

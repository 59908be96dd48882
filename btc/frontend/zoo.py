"""Bundled networks: the recurrent LIF network the examples, benchmarks and tests share."""
from btc.frontend.neurons import LIF, Surrogate
from btc.frontend.synapses import Expon
from btc.frontend.network import Network

__all__ = ["recurrent_lif"]


def recurrent_lif(inputs: int, hidden: int, classes: int, *, input_scale: float = 1.0,
                  recurrent_scale: float = 0.5, seed: int = 0) -> Network:
    """inputs -> `hidden` recurrent LIF neurons (tau 10 ms, Expon 5 ms AlignPost synapses, sigmoid
    surrogate) -> `classes`-way leaky readout (tau 10 ms), per-step cross-entropy; dt = 1 ms."""
    net = Network(dt=1.0, seed=seed)
    net.input("x", inputs)
    net.group("h", hidden, LIF(tau=10.0, theta=1.0, synapse=Expon(tau=5.0), surrogate=Surrogate("sigmoid", 4.0)))
    net.project("x", "h", init=input_scale)
    net.project("h", "h", recurrent=True, init=recurrent_scale)
    net.readout("out", classes, tau=10.0)
    net.project("h", "out", init=1.0)
    net.set_loss("cross_entropy", "out")
    return net

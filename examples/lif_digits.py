"""A recurrent LIF network with exponential (AlignPost) synapses for the rate-coded digits task.

    btc compile examples/lif_digits.py --algorithm pp-prop --batch 32 --chunk 20 -o build/digits
    btc train build/digits --task digits --epochs 5
"""
from btc.frontend import LIF, Expon, Network, Surrogate


def build(hidden: int = 128) -> Network:
    net = Network(dt=1.0, seed=0)
    net.input("x", 64)
    net.group("h", hidden, LIF(tau=10.0, theta=1.0, synapse=Expon(tau=5.0),
                                surrogate=Surrogate("sigmoid", 4.0)))
    net.project("x", "h", init=1.0)
    net.project("h", "h", recurrent=True, init=0.5)
    net.readout("out", 10, tau=10.0)
    net.project("h", "out", init=1.0)
    net.set_loss("cross_entropy", "out")
    return net

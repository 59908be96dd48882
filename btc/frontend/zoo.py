"""Bundled networks: the recurrent LIF network the examples, benchmarks and tests share, and a
network wired by a connectome."""
import numpy as np

from btc.frontend.neurons import LIF, Surrogate
from btc.frontend.synapses import Expon
from btc.frontend.network import Network

__all__ = ["recurrent_lif", "connectome_lif"]


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


def connectome_lif(conn, *, inputs: int = 32, input_fraction: float = 0.05, input_weight: float = 4.0,
                   weight_scale: float = 0.25, tau: float = 20.0, synapse_tau: float = 5.0,
                   readout_tau: float = 50.0, trainable=("tau", "theta"), seed: int = 0) -> Network:
    """A network wired by a connectome (btc.frontend.connectome): one recurrent group "brain" of LIF
    neurons (per-neuron `trainable` parameters), the connections split by sign into sparse recurrent
    projections "exc" (sign +) and "inh" (sign -) with initial weights `weight_scale` * strength
    (synapse count); a stimulus of `inputs` channels, each neuron of a random `input_fraction`
    hearing one channel through a fixed weight; and a fixed readout "regions" of each region's mean
    spike train, filtered with `readout_tau` (calcium-like), learned against by MSE."""
    from btc.errors import BtcError

    n = conn.n
    if not 0 < input_fraction <= 1:
        raise BtcError(f"connectome_lif: input_fraction must be in (0, 1], got {input_fraction!r}")
    rng = np.random.default_rng(seed)
    net = Network(dt=1.0, seed=seed)
    net.input("stim", inputs)
    net.group("brain", n, LIF(tau=tau, theta=1.0, synapse=Expon(tau=synapse_tau),
                              surrogate=Surrogate("fast_sigmoid", 5.0)), trainable=trainable)
    receivers = np.sort(rng.choice(n, max(1, int(round(n * input_fraction))), replace=False))
    channels = rng.integers(0, inputs, receivers.size)
    order = np.lexsort((receivers, channels))
    net.project("stim", "brain", connectivity=(channels[order], receivers[order]), name="stim_to_brain",
                weights=np.full(receivers.size, input_weight, np.float32), trainable=False)
    for name, sign in (("exc", 1), ("inh", -1)):
        pick = conn.sign == sign
        if pick.any():
            net.project("brain", "brain", recurrent=True, connectivity=(conn.pre[pick], conn.post[pick]), name=name,
                        weights=sign * weight_scale * conn.strength[pick], sign="+" if sign > 0 else "-")
    sizes = conn.region_sizes()
    net.readout("regions", len(conn.region_names), tau=readout_tau)
    net.project("brain", "regions", connectivity=(np.arange(n), conn.region), name="region_means", bias=False,
                weights=(1.0 / sizes[conn.region]).astype(np.float32), trainable=False)
    net.set_loss("mse", "regions")
    return net

"""Networks of every shape the core supports, each a zero-argument builder.

Together they cover: 1 and 3 layers, recurrent and feed-forward, a shared input, Delta and Expon
synapses, soft and hard reset, detached and attached reset, refractoriness, all four surrogates,
cross-entropy and MSE losses.
"""
from btc.frontend import LIF, Delta, Expon, Network, Surrogate


def one_layer_delta():
    net = Network(dt=1.0, seed=1)
    net.input("x", 7)
    net.group("h", 9, LIF(tau=8.0, synapse=Delta(), reset="soft", detach_reset=True,
                          surrogate=Surrogate("sigmoid", 4.0)))
    net.project("x", "h", init=6.0)
    net.readout("out", 4, tau=5.0)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net


def one_layer_expon_hard():
    net = Network(dt=1.0, seed=2)
    net.input("x", 6)
    net.group("h", 8, LIF(tau=12.0, synapse=Expon(4.0), reset="hard", v_reset=-0.2, detach_reset=False,
                          surrogate=Surrogate("fast_sigmoid", 5.0)))
    net.project("x", "h", init=3.0)
    net.readout("out", 3, tau=10.0)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net


def recurrent_expon():
    net = Network(dt=1.0, seed=3)
    net.input("x", 6)
    net.group("h", 10, LIF(tau=10.0, synapse=Expon(5.0), reset="soft", detach_reset=False, refractory=2.0,
                           surrogate=Surrogate("arctan", 2.0)))
    net.project("x", "h", init=3.0)
    net.project("h", "h", recurrent=True, init=1.0)
    net.readout("out", 4, tau=10.0)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net


def three_layers():
    net = Network(dt=1.0, seed=4)
    net.input("x", 8)
    net.group("h1", 9, LIF(tau=10.0, synapse=Expon(5.0), surrogate=Surrogate("triangle", 1.0)))
    net.group("h2", 7, LIF(tau=8.0, synapse=Delta(), reset="hard", surrogate=Surrogate("sigmoid", 3.0)))
    net.group("h3", 6, LIF(tau=15.0, synapse=Expon(3.0), surrogate=Surrogate("fast_sigmoid", 4.0)))
    net.project("x", "h1", init=5.0)
    net.project("h1", "h1", recurrent=True, init=0.5)
    net.project("h1", "h2", init=12.0)
    net.project("h2", "h2", recurrent=True, init=0.5)
    net.project("h2", "h3", init=12.0)
    net.project("h3", "h3", recurrent=True, init=0.5)
    net.readout("out", 3, tau=10.0)
    net.project("h3", "out")
    net.set_loss("cross_entropy", "out")
    return net


def shared_input_mse():
    net = Network(dt=0.5, seed=5)
    net.input("x", 6)
    net.group("a", 7, LIF(tau=10.0, synapse=Expon(5.0), surrogate=Surrogate("arctan", 3.0)))
    net.group("b", 5, LIF(tau=6.0, synapse=Delta(), surrogate=Surrogate("sigmoid", 4.0)))
    net.project("x", "a", init=20.0)
    net.project("x", "b", init=10.0)
    net.project("a", "b", init=4.0)
    net.project("b", "a", recurrent=True, init=1.0)
    net.readout("out", 2, tau=8.0)
    net.project("a", "out")
    net.project("b", "out", bias=True)
    net.set_loss("mse", "out")
    return net




def same_shapes():
    """Projections and groups of equal shapes: guards against buffers aliased by the compiler."""
    net = Network(dt=1.0, seed=6)
    net.input("x", 8)
    for name in ("h1", "h2", "h3"):
        net.group(name, 8, LIF(tau=10.0, synapse=Expon(5.0), surrogate=Surrogate("sigmoid", 4.0)))
    net.project("x", "h1", init=5.0)
    net.project("h1", "h2", init=8.0)
    net.project("h2", "h3", init=8.0)
    net.project("h1", "h1", recurrent=True, init=1.0)
    net.project("h2", "h2", recurrent=True, init=1.0)
    net.project("h3", "h3", recurrent=True, init=1.0)
    net.readout("out", 8, tau=10.0)
    net.project("h3", "out")
    net.set_loss("cross_entropy", "out")
    return net


def _one_layer(seed: int, neuron: LIF, trainable=(), bias: bool = False, init: float = 15.0):
    """pp-prop.md section 5's exactness setting: one layer fed by external input, no recurrence, a
    memoryless readout of the same step's spikes. D-RTRL (and every exact trace) equals BPTT here."""
    net = Network(dt=1.0, seed=seed)
    net.input("x", 5)
    net.group("h", 6, neuron, trainable=trainable)
    net.project("x", "h", init=init, bias=bias)
    net.readout("out", 3, tau=0.0)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net


def exact_delta_soft():
    return _one_layer(11, LIF(tau=8.0, synapse=Delta(), reset="soft", surrogate=Surrogate("sigmoid", 4.0)),
                      trainable=("tau", "theta"), bias=True)


def exact_expon_hard_attached():
    return _one_layer(12, LIF(tau=12.0, synapse=Expon(4.0), reset="hard", v_reset=-0.2, detach_reset=False,
                              surrogate=Surrogate("fast_sigmoid", 5.0)), trainable=("theta",))


def exact_refractory():
    return _one_layer(13, LIF(tau=10.0, synapse=Expon(5.0), refractory=2.0, detach_reset=False,
                              surrogate=Surrogate("arctan", 2.0)), trainable=("tau",))


def exact_triangle_mse():
    net = _one_layer(14, LIF(tau=6.0, synapse=Delta(), reset="hard", surrogate=Surrogate("triangle", 1.0)),
                     trainable=("tau", "theta"))
    net.set_loss("mse", "out")
    return net


NETWORKS = {f.__name__: f for f in (one_layer_delta, one_layer_expon_hard, recurrent_expon, three_layers,
                                     shared_input_mse, same_shapes)}
# every neuron variant the frontend accepts, in the setting where D-RTRL must equal BPTT
EXACT_NETWORKS = {f.__name__: f for f in (exact_delta_soft, exact_expon_hard_attached, exact_refractory,
                                          exact_triangle_mse)}
NETWORKS.update(EXACT_NETWORKS)

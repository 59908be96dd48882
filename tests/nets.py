"""Networks of every shape the core supports, each a zero-argument builder.

Together they cover: 1 and 3 layers, recurrent and feed-forward, a shared input, Delta and Expon
synapses, soft and hard reset, detached and attached reset, refractoriness, all four surrogates,
cross-entropy and MSE losses.
"""
import os
import sys

from btc.frontend import ALIF, COBA, NMDA, GIF, IF, LIF, STP, Alpha, Delta, DualExp, Expon, Izhikevich, Network, Surrogate

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import qif_digits  # noqa: E402  (the user-defined QIF neuron of the example)


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


# ---- every neuron model with every AlignPost synapse: one network per model, one group per synapse
def _synapses():
    return {"delta": Delta(), "expon": Expon(4.0), "alpha": Alpha(3.0), "dualexp": DualExp(1.0, 4.0),
            "coba": COBA(tau_exc=4.0, tau_inh=8.0, E_exc=3.0, E_inh=-1.0),
            "nmda": NMDA(tau=6.0, E=3.0, mg=1.0, alpha=2.0, beta=3.57)}


def _every_synapse(seed: int, make, scale: float, coba_scale: float, trainable=(), dt: float = 1.0):
    net = Network(dt=dt, seed=seed)
    net.input("x", 6)
    for kind, syn in _synapses().items():
        g = net.group(kind, 5, make(syn), trainable=trainable)
        if kind == "coba":
            net.project("x", g, port="exc", sign="+", init=coba_scale, name=f"x_exc_{kind}")
            net.project("x", g, port="inh", sign="+", init=coba_scale / 4, name=f"x_inh_{kind}")
        elif kind == "nmda":  # a conductance: positive weights
            net.project("x", g, sign="+", init=coba_scale, name=f"x_{kind}")
        else:
            net.project("x", g, init=scale)
    net.readout("out", 3, tau=5.0)
    for kind in _synapses():
        net.project(kind, "out", init=1.0)
    net.set_loss("cross_entropy", "out")
    return net


def lif_every_synapse():
    return _every_synapse(21, lambda syn: LIF(tau=8.0, synapse=syn, surrogate=Surrogate("sigmoid", 4.0)), 12.0, 1.5,
                          trainable=("tau",))


def if_every_synapse():
    return _every_synapse(22, lambda syn: IF(tau=10.0, synapse=syn, reset="hard", detach_reset=False,
                                             surrogate=Surrogate("fast_sigmoid", 5.0)), 6.0, 1.5)


def alif_every_synapse():
    return _every_synapse(23, lambda syn: ALIF(tau=8.0, tau_a=30.0, beta=0.5, synapse=syn, detach_reset=False,
                                               surrogate=Surrogate("arctan", 2.0)), 14.0, 3.5, trainable=("beta",))


def gif_every_synapse():
    return _every_synapse(24, lambda syn: GIF(tau=8.0, tau_I2=20.0, A2=-0.3, synapse=syn, refractory=1.0,
                                              surrogate=Surrogate("triangle", 1.0)), 12.0, 3.0)


def izhikevich_every_synapse():
    def make(syn):
        if isinstance(syn, COBA):  # reversal potentials on Izhikevich's mV scale
            syn = COBA(tau_exc=4.0, tau_inh=8.0, E_exc=0.0, E_inh=-80.0)
        if isinstance(syn, NMDA):  # and the magnesium block per mV
            syn = NMDA(tau=6.0, E=0.0)
        return Izhikevich(synapse=syn, detach_reset=True, surrogate=Surrogate("sigmoid", 1.0))
    # dt = 0.5 ms: at dt = 1 the quadratic term near the 30 mV peak amplifies float rounding ~10x per step
    return _every_synapse(25, make, 300.0, 1.5, trainable=("d",), dt=1.0)


def custom_qif():
    """The example's user-defined quadratic integrate-and-fire neuron (examples/qif_digits.py)."""
    net = Network(dt=1.0, seed=26)
    net.input("x", 6)
    net.group("h", 7, qif_digits.qif(), trainable=("v_crit",))
    net.project("x", "h", init=2.0)
    net.project("h", "h", recurrent=True, init=0.5)
    net.readout("out", 3, tau=5.0)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net


def ei_coba_delays():
    """80/20-style excitatory/inhibitory COBA network under Dale's law, with synaptic delays."""
    net = Network(dt=1.0, seed=27)
    net.input("x", 6)
    syn = COBA(tau_exc=4.0, tau_inh=8.0, E_exc=3.0, E_inh=-1.0)
    net.group("E", 8, LIF(tau=10.0, synapse=syn, surrogate=Surrogate("sigmoid", 4.0)), dale="exc")
    net.group("I", 3, LIF(tau=6.0, synapse=syn, surrogate=Surrogate("sigmoid", 4.0)), dale="inh")
    net.project("x", "E", port="exc", sign="+", init=2.5)
    net.project("E", "E", recurrent=True, init=0.5, delay=2)
    net.project("E", "I", init=1.5)
    net.project("I", "E", recurrent=True, init=1.0, delay=1)
    net.project("I", "I", recurrent=True, init=0.5)
    net.readout("out", 2, tau=8.0)
    net.project("E", "out")
    net.set_loss("cross_entropy", "out")
    return net


def cuba_dale_delays():
    """Current-based E/I with signed weights, a delayed input and a delayed feed-forward path."""
    net = Network(dt=1.0, seed=28)
    net.input("x", 6)
    net.group("E", 7, LIF(tau=10.0, synapse=Expon(4.0)), dale="exc")
    net.group("I", 4, LIF(tau=8.0, synapse=Delta()), dale="inh")
    net.group("h2", 5, ALIF(tau=8.0, tau_a=20.0, beta=0.3, synapse=Expon(3.0)))
    net.project("x", "E", init=8.0)
    net.project("x", "I", init=6.0, delay=2)
    net.project("E", "I", init=4.0)
    net.project("I", "E", recurrent=True, init=2.0, delay=2)
    net.project("E", "h2", init=8.0, delay=1)
    net.project("I", "h2", init=3.0)
    net.readout("out", 3, tau=6.0)
    net.project("h2", "out")
    net.project("E", "out", delay=3)
    net.set_loss("cross_entropy", "out")
    return net


def align_pre():
    """AlignPre projections, one per presynaptic synapse type: the synaptic state lives on the
    presynaptic side and the weights multiply its output (an input's, a group's, a recurrent one)."""
    net = Network(dt=1.0, seed=29)
    net.input("x", 6)
    net.group("h", 8, LIF(tau=8.0, synapse=Delta(), surrogate=Surrogate("sigmoid", 4.0)))
    net.group("h2", 5, ALIF(tau=8.0, tau_a=20.0, beta=0.3, synapse=Delta(), surrogate=Surrogate("arctan", 2.0)))
    net.project("x", "h", synapse=Expon(3.0), init=4.0)
    net.project("h", "h", recurrent=True, synapse=DualExp(1.0, 4.0), init=1.0)
    net.project("h", "h2", synapse=Alpha(2.0), init=6.0)
    net.readout("out", 3, tau=5.0)
    net.project("h", "out", synapse=STP(U=0.3, tau_f=20.0, tau_d=50.0, tau=3.0))
    net.project("h2", "out")
    net.set_loss("cross_entropy", "out")
    return net


def exact_if():
    return _one_layer(15, IF(tau=6.0, synapse=Alpha(2.0), surrogate=Surrogate("sigmoid", 3.0)), trainable=("tau",),
                      init=8.0)


def exact_alif():
    return _one_layer(16, ALIF(tau=8.0, tau_a=15.0, beta=0.4, synapse=DualExp(1.0, 3.0), detach_reset=False,
                               surrogate=Surrogate("arctan", 2.0)), trainable=("beta", "theta"), init=25.0)


def exact_gif():
    return _one_layer(17, GIF(tau=8.0, tau_I2=10.0, A2=-0.4, synapse=Expon(3.0),
                              surrogate=Surrogate("fast_sigmoid", 4.0)), bias=True)


def exact_izhikevich():
    return _one_layer(18, Izhikevich(synapse=Expon(2.0), surrogate=Surrogate("sigmoid", 1.0)), trainable=("a", "d"),
                      init=150.0)


def exact_coba():
    net = Network(dt=1.0, seed=19)
    net.input("x", 5)
    net.group("h", 6, LIF(tau=8.0, synapse=COBA(tau_exc=3.0, tau_inh=6.0, E_exc=3.0, E_inh=-1.0),
                          surrogate=Surrogate("sigmoid", 4.0)), trainable=("tau",))
    net.project("x", "h", port="exc", sign="+", init=2.0, name="x_exc")
    net.project("x", "h", port="inh", init=1.0, name="x_inh", bias=True)
    net.readout("out", 3, tau=0.0)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    return net


def exact_qif():
    return _one_layer(20, qif_digits.qif(), trainable=("v_crit", "tau"), init=4.0)


NETWORKS = {f.__name__: f for f in (one_layer_delta, one_layer_expon_hard, recurrent_expon, three_layers,
                                     shared_input_mse, same_shapes, lif_every_synapse, if_every_synapse,
                                     alif_every_synapse, gif_every_synapse, izhikevich_every_synapse, custom_qif,
                                     ei_coba_delays, cuba_dale_delays, align_pre)}
# every neuron variant the frontend accepts, in the setting where D-RTRL must equal BPTT
EXACT_NETWORKS = {f.__name__: f for f in (exact_delta_soft, exact_expon_hard_attached, exact_refractory,
                                          exact_triangle_mse, exact_if, exact_alif, exact_gif, exact_izhikevich,
                                          exact_coba, exact_qif)}
NETWORKS.update(EXACT_NETWORKS)

# The comparisons of two btc modules (event-driven vs dense, sparse vs masked dense) test propagation and
# weight-gradient kernels, which depend on the kinds of projection, not on the neuron model (every neuron model
# is held to the oracles by test_against_oracles on all of NETWORKS). They sweep these networks, which hold every
# kind: binary inputs, recurrence, several layers, shared inputs and MSE, equal shapes, every synapse model,
# COBA ports, delays, Dale's law and AlignPre synapses. BTC_ALL_NETWORKS=1 sweeps all of NETWORKS (~9 min more).
KERNEL_NETWORKS = NETWORKS if os.environ.get("BTC_ALL_NETWORKS") == "1" else {
    n: NETWORKS[n] for n in ("one_layer_expon_hard", "recurrent_expon", "three_layers", "shared_input_mse",
                             "same_shapes", "lif_every_synapse", "ei_coba_delays", "cuba_dale_delays", "align_pre")}


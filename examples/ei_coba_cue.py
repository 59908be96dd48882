"""Evidence accumulation (cue accumulation) with an 80 % excitatory / 20 % inhibitory network of
conductance-based (COBA) neurons under Dale's law.

    btc compile examples/ei_coba_cue.py --batch 64 --chunk 50 --decay 0.999 -o build/cue
    btc train build/cue --task cue --epochs 50 --lr 0.001

Seven 100 ms cues (left or right), a 1 s delay, then a 150 ms recall window in which the network must
say which side had more cues (btc.tasks.CueAccumulationTask). Excitatory neurons are adaptive LIF
(tau_a = 2 s), inhibitory ones plain LIF; every recurrent weight keeps its sign. The readout is a slow
leaky integrator (tau 2 s) of the excitatory spikes, so the evidence it needs is the cue-evoked activity
itself; pp-prop's traces must then span the trial, hence a decay of 0.999 (a rank of about 2000).
"""
from btc.frontend import ALIF, COBA, LIF, Network, Surrogate

DT = 1.0


def build(n_exc: int = 80, n_inh: int = 20, dt: float = DT, seed: int = 0, input_scale: float = 3.0,
          recurrent_scale: float = 0.5, readout_tau: float = 2000.0, readout_scale: float = 0.05,
          adaptive: bool = True) -> Network:
    syn = COBA(tau_exc=5.0, tau_inh=10.0, E_exc=3.0, E_inh=-1.0)
    sg = Surrogate("fast_sigmoid", 5.0)
    net = Network(dt=dt, seed=seed)
    net.input("x", 100)  # left cues, right cues, recall, noise: 25 channels each
    exc = (ALIF(tau=20.0, tau_a=2000.0, beta=0.01, synapse=syn, surrogate=sg) if adaptive
           else LIF(tau=20.0, synapse=syn, surrogate=sg))
    net.group("E", n_exc, exc, dale="exc")
    net.group("I", n_inh, LIF(tau=10.0, synapse=syn, surrogate=sg), dale="inh")
    net.project("x", "E", port="exc", sign="+", init=input_scale)
    net.project("x", "I", port="exc", sign="+", init=input_scale)
    for pre in ("E", "I"):
        for post in ("E", "I"):
            net.project(pre, post, recurrent=True, init=recurrent_scale)
    net.readout("out", 2, tau=readout_tau)
    net.project("E", "out", init=readout_scale)
    net.set_loss("cross_entropy", "out")
    return net

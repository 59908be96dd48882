"""Delayed match-to-sample with a recurrent adaptive-LIF (ALIF) network: two 150 ms stimuli 500 ms
apart; in the 150 ms response window the network says whether they were the same pattern.

    btc compile examples/alif_dms.py --batch 64 --chunk 50 --decay 0.99 -o build/dms
    btc train build/dms --task dms --epochs 30 --lr 0.005

The first stimulus is held across the delay by spike-triggered threshold adaptation (tau_a = 1 s).
"""
from btc.frontend import ALIF, LIF, Expon, Network, Surrogate

DT = 1.0


def build(n_alif: int = 60, n_lif: int = 40, dt: float = DT, seed: int = 0, input_scale: float = 3.0,
          recurrent_scale: float = 0.5) -> Network:
    sg = Surrogate("fast_sigmoid", 5.0)
    net = Network(dt=dt, seed=seed)
    net.input("x", 100)  # two stimulus populations, recall, noise: 25 channels each
    net.group("A", n_alif, ALIF(tau=20.0, tau_a=1000.0, beta=0.02, synapse=Expon(5.0), surrogate=sg))
    net.group("L", n_lif, LIF(tau=20.0, synapse=Expon(5.0), surrogate=sg))
    for g in ("A", "L"):
        net.project("x", g, init=input_scale)
        for pre in ("A", "L"):
            net.project(pre, g, recurrent=True, init=recurrent_scale)
    net.readout("out", 2, tau=20.0)
    net.project("A", "out")
    net.project("L", "out")
    net.set_loss("cross_entropy", "out")
    return net

"""Delayed match-to-sample with a recurrent adaptive-LIF (ALIF) network: two 150 ms stimuli 500 ms
apart; in the 150 ms response window the network says whether they were the same pattern.

    btc compile examples/alif_dms.py --batch 64 --chunk 50 --decay 0.99 -o build/dms
    btc train build/dms --task dms --epochs 10 --lr 0.003

The first stimulus is held across the delay by spike-triggered threshold adaptation (tau_a = 1 s):
the ALIF neurons are wired to prefer one stimulus each, so a repeated stimulus meets an adapted
population and a new one a fresh population; a slow readout (200 ms) tells the two apart.
"""
import numpy as np

from btc.frontend import ALIF, LIF, Expon, Network, Surrogate

DT = 1.0


def _selective_input(n: int, population: int = 25, stimuli: int = 2, seed: int = 0) -> np.ndarray:
    """Input weights [4*25, n]: neuron i listens mostly to stimulus population i % stimuli, so the
    population that saw the first stimulus is the one that has adapted when it comes again."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 0.05, (population * (stimuli + 2), n))
    for i in range(n):
        k = i % stimuli
        w[k * population:(k + 1) * population, i] += rng.uniform(0.3, 0.6, population)
    w[stimuli * population:(stimuli + 1) * population] += 0.15  # the recall cue drives everyone
    return w.astype(np.float32)


def build(n_alif: int = 60, n_lif: int = 40, dt: float = DT, seed: int = 0, input_scale: float = 3.0,
          recurrent_scale: float = 0.5, beta: float = 0.1, readout_tau: float = 200.0) -> Network:
    sg = Surrogate("fast_sigmoid", 5.0)
    net = Network(dt=dt, seed=seed)
    net.input("x", 100)  # two stimulus populations, recall, noise: 25 channels each
    net.group("A", n_alif, ALIF(tau=20.0, tau_a=1000.0, beta=beta, synapse=Expon(5.0), surrogate=sg))
    net.group("L", n_lif, LIF(tau=20.0, synapse=Expon(5.0), surrogate=sg))
    net.project("x", "A", weights=_selective_input(n_alif, seed=seed), sign="+")
    net.project("x", "L", init=input_scale, sign="+")  # input spikes excite
    for g in ("A", "L"):
        for pre in ("A", "L"):
            net.project(pre, g, recurrent=True, init=recurrent_scale)
    net.readout("out", 2, tau=readout_tau)
    net.project("A", "out")
    net.project("L", "out")
    net.set_loss("cross_entropy", "out")
    return net

"""Describe a spiking network in Python; emit it as a `btc` dialect module or simulate it in JAX.

`simulate` (the JAX oracle) is imported lazily so that compiling needs no JAX import cost.
"""
from btc.frontend.models import (ALIF, COBA, GIF, IF, LIF, NEURONS, PRE_SYNAPSES, STP, SURROGATES, SYNAPSES, Alpha,
                                 CustomNeuron, Delta, DualExp, Expon, Izhikevich, Surrogate)
from btc.frontend.network import LOSSES, Network, Normal
from btc.frontend.trace import spike_fn

__all__ = ["Network", "Normal", "LIF", "IF", "ALIF", "GIF", "Izhikevich", "CustomNeuron", "Delta", "Expon", "Alpha",
           "DualExp", "COBA", "STP", "Surrogate", "spike_fn", "SURROGATES", "NEURONS", "SYNAPSES", "PRE_SYNAPSES", "LOSSES"]

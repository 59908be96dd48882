"""Describe a spiking network in Python; emit it as a `btc` dialect module or simulate it in JAX.

`simulate` (the JAX oracle) is imported lazily so that compiling needs no JAX import cost.
"""
from btc.frontend.neurons import ALIF, GIF, IF, LIF, NEURONS, SURROGATES, CustomNeuron, Izhikevich, Surrogate
from btc.frontend.synapses import COBA, NMDA, PRE_SYNAPSES, STP, SYNAPSES, Alpha, Delta, DualExp, Expon
from btc.frontend.connectivity import FixedProbability
from btc.frontend.convolution import Conv, Pool
from btc.frontend.network import LOSSES, Network, Normal
from btc.frontend.trace import spike_fn

__all__ = ["Network", "Normal", "FixedProbability", "Conv", "Pool", "LIF", "IF", "ALIF", "GIF", "Izhikevich", "CustomNeuron", "Delta", "Expon", "Alpha",
           "DualExp", "COBA", "NMDA", "STP", "Surrogate", "spike_fn", "SURROGATES", "NEURONS", "SYNAPSES", "PRE_SYNAPSES", "LOSSES"]

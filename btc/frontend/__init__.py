"""Describe a spiking network in Python; emit it as a `btc` dialect module or simulate it in JAX.

`simulate` (the JAX oracle) is imported lazily so that compiling needs no JAX import cost.
"""
from btc.frontend.models import LIF, SURROGATES, Delta, Expon, Surrogate
from btc.frontend.network import LOSSES, Network, Normal

__all__ = ["Network", "Normal", "LIF", "Delta", "Expon", "Surrogate", "SURROGATES", "LOSSES"]

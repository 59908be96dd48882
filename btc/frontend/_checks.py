"""Validation and decay helpers shared by the neuron and synapse records."""
from __future__ import annotations

import math

from btc.errors import BtcError

__all__ = ["positive", "finite", "decay"]



def positive(owner: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BtcError(f"{owner}: {name} must be a positive number, got {value!r}")
    return float(value)


def finite(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BtcError(f"{owner}: {name} must be a finite number, got {value!r}")


def decay(dt: float, tau):
    """exp(-dt/tau): a Python float for a fixed tau (exact in f64, then rounded once), JAX otherwise."""
    if isinstance(tau, float):
        return math.exp(-dt / tau)
    import jax.numpy as jnp

    return jnp.exp(-dt / tau)


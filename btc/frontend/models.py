"""Neuron, synapse and surrogate descriptions: plain frozen records, validated on construction.

A neuron model here is only parameters; `emit.py` turns it into the dialect's elementwise body and
`simulate.py` into plain JAX. Keeping the two apart is what lets the JAX simulator be an oracle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from btc.errors import BtcError

__all__ = ["Surrogate", "Delta", "Expon", "LIF", "SURROGATES"]

# name -> (default slope, what the slope means); derivative formulas live in emit.py and simulate.py
SURROGATES = {
    "sigmoid": (4.0, "alpha in alpha*sig(alpha*x)*(1-sig(alpha*x))"),
    "fast_sigmoid": (10.0, "alpha in 1/(alpha*|x|+1)^2 (SuperSpike)"),
    "arctan": (2.0, "alpha in (alpha/2)/(1+(pi/2*alpha*x)^2)"),
    "triangle": (1.0, "width w in max(0, 1-|x|/w)/w (ReLU-shaped, compact support)"),
}


def _positive(owner: str, name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BtcError(f"{owner}: {name} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Surrogate:
    """The derivative used for the spike's Heaviside step in the backward pass."""

    kind: str = "sigmoid"
    slope: float | None = None

    def __post_init__(self):
        if self.kind not in SURROGATES:
            raise BtcError(f"unknown surrogate {self.kind!r}; expected one of {sorted(SURROGATES)}")
        slope = SURROGATES[self.kind][0] if self.slope is None else self.slope
        object.__setattr__(self, "slope", _positive(f"surrogate {self.kind}", "slope", slope))


@dataclass(frozen=True)
class Delta:
    """Instantaneous synapse: this step's input current is this step's weighted spikes."""

    states: tuple = ()


@dataclass(frozen=True)
class Expon:
    """Exponential current synapse aligned on the postsynaptic neuron (AlignPost): one state `i`."""

    tau: float = 5.0
    states: tuple = ("i",)

    def __post_init__(self):
        _positive("Expon synapse", "tau", self.tau)


@dataclass(frozen=True)
class LIF:
    """Leaky integrate-and-fire, `tau dv/dt = -(v - v_rest) + R*I`, integrated by exponential Euler.

    The state `v` is the membrane potential *before* the reset; the spike is `H(v - theta)` read
    from the state, and the reset acts at the start of the next step (as in brainstate/braintrace),
    so the learning signal dL/dh is well defined.
    """

    tau: float = 10.0
    theta: float = 1.0
    v_rest: float = 0.0
    v_reset: float = 0.0
    R: float = 1.0
    reset: str = "soft"
    detach_reset: bool = True
    refractory: float = 0.0
    synapse: Delta | Expon = field(default_factory=Delta)
    surrogate: Surrogate = field(default_factory=Surrogate)

    def __post_init__(self):
        _positive("LIF", "tau", self.tau)
        for name in ("theta", "v_rest", "v_reset", "R", "refractory"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BtcError(f"LIF: {name} must be a finite number, got {value!r}")
        if self.reset not in ("soft", "hard"):
            raise BtcError(f"LIF: reset must be 'soft' or 'hard', got {self.reset!r}")
        if not self.theta > self.v_reset:
            raise BtcError(f"LIF: theta ({self.theta}) must be above v_reset ({self.v_reset})")
        if not self.v_rest < self.theta:
            raise BtcError(f"LIF: v_rest ({self.v_rest}) must be below theta ({self.theta}); "
                           "a neuron resting above threshold fires on every step")
        if self.refractory < 0:
            raise BtcError(f"LIF: refractory must be >= 0 ms, got {self.refractory}")
        if not isinstance(self.synapse, (Delta, Expon)):
            raise BtcError(f"LIF: synapse must be Delta() or Expon(tau), got {self.synapse!r}")
        if not isinstance(self.surrogate, Surrogate):
            raise BtcError(f"LIF: surrogate must be a btc.frontend.Surrogate, got {self.surrogate!r}")

    def state_names(self, dt: float) -> tuple[str, ...]:
        names = ("v",) + tuple(self.synapse.states)
        return names + (("ref",) if self.refractory_steps(dt) > 0 else ())

    def initial_state(self, dt: float) -> tuple[float, ...]:
        return tuple(self.v_rest if n == "v" else 0.0 for n in self.state_names(dt))

    def refractory_steps(self, dt: float) -> int:
        return int(round(self.refractory / dt))

    # per-neuron parameters that may be learned (declared with `Network.group(..., trainable=...)`)
    ELEMENTWISE = ("tau", "theta")

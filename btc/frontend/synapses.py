"""Synapse records. AlignPost synapses (Delta, Expon, Alpha, DualExp, COBA) add their states to the
neuron's and turn the input of each port into a current: the CUBA ones have one port, "y"; COBA
has one per receptor ("exc", "inh") and gives g * (E_rev - v), so its Df depends on v. AlignPre
synapses (Expon, Alpha, DualExp, STP) sit on the presynaptic side as a `PreSynapse` group.
NMDA (conductance with a magnesium block) is AlignPost like COBA: its current depends on v.

A synapse is `states` (names), `ports`, `step(dt, states, inputs) -> new states` and
`current(new states, inputs, v)`, in plain JAX on scalars.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from btc.errors import BtcError
from btc.frontend._checks import decay, finite, positive

__all__ = ["Delta", "Expon", "Alpha", "DualExp", "COBA", "NMDA", "STP", "PreSynapse", "SYNAPSES", "PRE_SYNAPSES"]


@dataclass(frozen=True)
class Delta:
    """Instantaneous synapse: this step's input current is this step's weighted spikes."""

    states: tuple = ()
    ports = ("y",)

    def step(self, dt, st, ys):
        return {}

    def current(self, new, ys, v):
        return ys["y"]


@dataclass(frozen=True)
class Expon:
    """Exponential current synapse: `i = i*exp(-dt/tau) + y`; one state `i`."""

    tau: float = 5.0
    states: tuple = ("i",)
    ports = ("y",)

    def __post_init__(self):
        positive("Expon synapse", "tau", self.tau)

    def step(self, dt, st, ys):
        return {"i": st["i"] * decay(dt, float(self.tau)) + ys["y"]}

    def current(self, new, ys, v):
        return new["i"]


@dataclass(frozen=True)
class Alpha:
    """Alpha-function current synapse, two coupled exponentials of one time constant:
    `h = h*d + y`, `i = i*d + (dt/tau)*h` (d = exp(-dt/tau)); states `h`, `i`; the current is `i`."""

    tau: float = 5.0
    states: tuple = ("h", "i")
    ports = ("y",)

    def __post_init__(self):
        positive("Alpha synapse", "tau", self.tau)

    def step(self, dt, st, ys):
        d = decay(dt, float(self.tau))
        h = st["h"] * d + ys["y"]
        return {"h": h, "i": st["i"] * d + (dt / self.tau) * h}

    def current(self, new, ys, v):
        return new["i"]


@dataclass(frozen=True)
class DualExp:
    """Difference of exponentials: `r = r*dr + y`, `f = f*df + y`, current `A*(f - r)` with
    A = tau_decay/(tau_decay - tau_rise); states `r` (rise), `f` (decay)."""

    tau_rise: float = 1.0
    tau_decay: float = 5.0
    states: tuple = ("r", "f")
    ports = ("y",)

    def __post_init__(self):
        positive("DualExp synapse", "tau_rise", self.tau_rise)
        positive("DualExp synapse", "tau_decay", self.tau_decay)
        if not self.tau_rise < self.tau_decay:
            raise BtcError(f"DualExp synapse: tau_rise ({self.tau_rise}) must be below tau_decay ({self.tau_decay})")

    def step(self, dt, st, ys):
        return {"r": st["r"] * decay(dt, float(self.tau_rise)) + ys["y"],
                "f": st["f"] * decay(dt, float(self.tau_decay)) + ys["y"]}

    def current(self, new, ys, v):
        return (self.tau_decay / (self.tau_decay - self.tau_rise)) * (new["f"] - new["r"])


@dataclass(frozen=True)
class COBA:
    """Conductance-based synapses, one exponential conductance per receptor (port):
    `g_k = g_k*exp(-dt/tau_k) + y_k`, current `sum_k g_k*(E_k - v)`. Inputs should be
    non-negative (conductances): give inhibitory populations the "inh" port, not negative weights."""

    tau_exc: float = 5.0
    tau_inh: float = 10.0
    E_exc: float = 0.0
    E_inh: float = -80.0
    states: tuple = ("g_exc", "g_inh")
    ports = ("exc", "inh")

    def __post_init__(self):
        positive("COBA synapse", "tau_exc", self.tau_exc)
        positive("COBA synapse", "tau_inh", self.tau_inh)
        finite("COBA synapse", "E_exc", self.E_exc)
        finite("COBA synapse", "E_inh", self.E_inh)

    def step(self, dt, st, ys):
        return {"g_exc": st["g_exc"] * decay(dt, float(self.tau_exc)) + ys["exc"],
                "g_inh": st["g_inh"] * decay(dt, float(self.tau_inh)) + ys["inh"]}

    def current(self, new, ys, v):
        return new["g_exc"] * (self.E_exc - v) + new["g_inh"] * (self.E_inh - v)


@dataclass(frozen=True)
class NMDA:
    """NMDA-receptor conductance with the voltage-dependent magnesium block (Jahr & Stevens 1990):
    `g = g*exp(-dt/tau) + y`, current `g * (E - v) / (1 + (mg/beta) * exp(-alpha * v))`. The block
    makes the current, and so Df, depend on v; alpha and beta are per mV by default (set them to your
    voltage scale). One port, "y"; inputs should be non-negative (a conductance)."""

    conductance: ClassVar[bool] = True  # Dale's law may not make its weights negative
    tau: float = 100.0
    E: float = 0.0
    mg: float = 1.0
    alpha: float = 0.062
    beta: float = 3.57
    states: tuple = ("g",)
    ports = ("y",)

    def __post_init__(self):
        for name in ("tau", "mg", "beta"):
            positive("NMDA synapse", name, getattr(self, name))
        finite("NMDA synapse", "E", self.E)
        finite("NMDA synapse", "alpha", self.alpha)

    def step(self, dt, st, ys):
        return {"g": st["g"] * decay(dt, float(self.tau)) + ys["y"]}

    def current(self, new, ys, v):
        import jax.numpy as jnp

        block = 1.0 + (self.mg / self.beta) * jnp.exp(-self.alpha * v)
        return new["g"] * (self.E - v) / block


SYNAPSES = (Delta, Expon, Alpha, DualExp, COBA, NMDA)


@dataclass(frozen=True)
class STP:
    """Tsodyks-Markram short-term plasticity, a state per presynaptic neuron (so AlignPre only):
    utilisation `u` relaxes to U with tau_f and jumps by U(1-u) at a spike; resources `x` recover to 1
    with tau_d and lose the released u*x; the release drives an exponential current `i` (tau)."""

    U: float = 0.2
    tau_f: float = 100.0
    tau_d: float = 200.0
    tau: float = 5.0
    states: tuple = ("u", "x", "i")
    ports = ("y",)

    def __post_init__(self):
        if isinstance(self.U, bool) or not isinstance(self.U, (int, float)) or not 0 < self.U <= 1:
            raise BtcError(f"STP synapse: U must be in (0, 1], got {self.U!r}")
        for name in ("tau_f", "tau_d", "tau"):
            positive("STP synapse", name, getattr(self, name))

    def initial_values(self) -> dict:
        return {"u": self.U, "x": 1.0, "i": 0.0}

    def step(self, dt, st, ys):
        s = ys["y"]
        u = self.U + (st["u"] - self.U) * decay(dt, float(self.tau_f))
        u = u + self.U * (1.0 - u) * s
        x = 1.0 + (st["x"] - 1.0) * decay(dt, float(self.tau_d))
        release = u * x * s
        return {"u": u, "x": x - release, "i": st["i"] * decay(dt, float(self.tau)) + release}

    def current(self, new, ys, v):
        return new["i"]


PRE_SYNAPSES = (Expon, Alpha, DualExp, STP)  # what may sit on the presynaptic side (AlignPre)


@dataclass(frozen=True)
class PreSynapse:
    """The synaptic state of an AlignPre projection: one per presynaptic neuron, driven one-to-one
    by its spikes; its output (the synaptic current, not a spike) is what the weights multiply.
    The frontend creates it; it is a group whose `spike` is that output."""

    synapse: Expon | Alpha | DualExp | STP
    ports = ("y",)
    ELEMENTWISE: ClassVar[tuple] = ()
    surrogate = None

    def __post_init__(self):
        if not isinstance(self.synapse, PRE_SYNAPSES):
            kind = type(self.synapse).__name__
            why = (f" ({kind} needs the postsynaptic voltage: use it AlignPost, as the neuron's synapse)"
                   if isinstance(self.synapse, (COBA, NMDA)) else "")
            raise BtcError(f"an AlignPre synapse must be one of {[s.__name__ for s in PRE_SYNAPSES]}, got "
                           f"{self.synapse!r}{why}")

    def state_names(self, dt: float) -> tuple[str, ...]:
        return tuple(self.synapse.states)

    def initial_state(self, dt: float) -> tuple[float, ...]:
        init = getattr(self.synapse, "initial_values", dict)()
        return tuple(float(init.get(n, 0.0)) for n in self.synapse.states)

    def param(self, params: dict, name: str):
        raise BtcError(f"PreSynapse has no per-neuron parameter {name!r}")

    def step(self, dt: float, st: dict, ys: dict, params: dict | None = None) -> dict:
        return self.synapse.step(dt, st, ys)

    def spike(self, dt: float, st: dict, params: dict | None = None):
        return self.synapse.current(st, {}, None)



"""Neuron, synapse and surrogate descriptions: frozen records, validated on construction, whose
dynamics are plain JAX on scalars (one neuron at a time).

A neuron's `step(dt, states, inputs, params)` maps the states of step t-1 and this step's input
per entry point (port) to the new states; `spike(dt, states, params)` reads the spike from a state.
`btc.frontend.trace` turns both into the dialect's elementwise regions, so the compiler
differentiates exactly what the JAX simulator runs. States are *before* the reset: the spike is
read from the state, and the reset acts at the start of the next step (brainstate/braintrace).

Synapses aligned on the postsynaptic neuron (AlignPost) add their states to the neuron's and turn
the input of each port into a current: CUBA synapses (Delta, Expon, Alpha, DualExp) have one port,
"y"; the conductance-based COBA has one per receptor ("exc", "inh") and gives g * (E_rev - v), so
its Df depends on v.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from btc.errors import BtcError

__all__ = ["Surrogate", "Delta", "Expon", "Alpha", "DualExp", "COBA", "STP", "LIF", "IF", "ALIF", "GIF",
           "Izhikevich", "CustomNeuron", "PreSynapse", "SURROGATES", "NEURONS", "SYNAPSES", "PRE_SYNAPSES"]

# name -> (default slope, what the slope means); the derivative formulas live in trace.py and
# derive_jacobians.py (and, independently, in simulate.py)
SURROGATES = {
    "sigmoid": (4.0, "alpha in alpha*sig(alpha*x)*(1-sig(alpha*x))"),
    "fast_sigmoid": (10.0, "alpha in 1/(alpha*|x|+1)^2 (SuperSpike)"),
    "arctan": (2.0, "alpha in (alpha/2)/(1+(pi/2*alpha*x)^2)"),
    "triangle": (1.0, "width w in max(0, 1-|x|/w)/w (ReLU-shaped, compact support)"),
}


def _positive(owner: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BtcError(f"{owner}: {name} must be a positive number, got {value!r}")
    return float(value)


def _finite(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BtcError(f"{owner}: {name} must be a finite number, got {value!r}")


def _decay(dt: float, tau):
    """exp(-dt/tau): a Python float for a fixed tau (exact in f64, then rounded once), JAX otherwise."""
    if isinstance(tau, float):
        return math.exp(-dt / tau)
    import jax.numpy as jnp

    return jnp.exp(-dt / tau)


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


# ---------------------------------------------------------------- synapses (AlignPost: states on the neuron)
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
        _positive("Expon synapse", "tau", self.tau)

    def step(self, dt, st, ys):
        return {"i": st["i"] * _decay(dt, float(self.tau)) + ys["y"]}

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
        _positive("Alpha synapse", "tau", self.tau)

    def step(self, dt, st, ys):
        d = _decay(dt, float(self.tau))
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
        _positive("DualExp synapse", "tau_rise", self.tau_rise)
        _positive("DualExp synapse", "tau_decay", self.tau_decay)
        if not self.tau_rise < self.tau_decay:
            raise BtcError(f"DualExp synapse: tau_rise ({self.tau_rise}) must be below tau_decay ({self.tau_decay})")

    def step(self, dt, st, ys):
        return {"r": st["r"] * _decay(dt, float(self.tau_rise)) + ys["y"],
                "f": st["f"] * _decay(dt, float(self.tau_decay)) + ys["y"]}

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
        _positive("COBA synapse", "tau_exc", self.tau_exc)
        _positive("COBA synapse", "tau_inh", self.tau_inh)
        _finite("COBA synapse", "E_exc", self.E_exc)
        _finite("COBA synapse", "E_inh", self.E_inh)

    def step(self, dt, st, ys):
        return {"g_exc": st["g_exc"] * _decay(dt, float(self.tau_exc)) + ys["exc"],
                "g_inh": st["g_inh"] * _decay(dt, float(self.tau_inh)) + ys["inh"]}

    def current(self, new, ys, v):
        return new["g_exc"] * (self.E_exc - v) + new["g_inh"] * (self.E_inh - v)


SYNAPSES = (Delta, Expon, Alpha, DualExp, COBA)


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
            _positive("STP synapse", name, getattr(self, name))

    def initial_values(self) -> dict:
        return {"u": self.U, "x": 1.0, "i": 0.0}

    def step(self, dt, st, ys):
        s = ys["y"]
        u = self.U + (st["u"] - self.U) * _decay(dt, float(self.tau_f))
        u = u + self.U * (1.0 - u) * s
        x = 1.0 + (st["x"] - 1.0) * _decay(dt, float(self.tau_d))
        release = u * x * s
        return {"u": u, "x": x - release, "i": st["i"] * _decay(dt, float(self.tau)) + release}

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
            raise BtcError(f"an AlignPre synapse must be one of {[s.__name__ for s in PRE_SYNAPSES]}, got "
                           f"{self.synapse!r}" + (" (COBA needs the postsynaptic voltage: use it AlignPost, "
                                                  "as the neuron's synapse)" if isinstance(self.synapse, COBA) else ""))

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


# ---------------------------------------------------------------- neurons
@dataclass(frozen=True)
class _Spiking:
    """What every built-in spiking neuron shares: threshold, reset, refractoriness, a synapse, a
    surrogate. Subclasses give `membrane(...)` (the sub-threshold update) and their extra states."""

    theta: float = 1.0
    v_reset: float = 0.0
    reset: str = "soft"
    detach_reset: bool = True
    refractory: float = 0.0
    synapse: Delta | Expon | Alpha | DualExp | COBA = field(default_factory=Delta)
    surrogate: Surrogate = field(default_factory=Surrogate)

    extra_states: ClassVar[tuple] = ()  # the model's own states besides v
    ELEMENTWISE: ClassVar[tuple] = ("theta",)  # per-neuron parameters that may be learned

    def __post_init__(self):
        owner = type(self).__name__
        for name in ("theta", "v_reset", "refractory"):
            _finite(owner, name, getattr(self, name))
        if self.reset not in ("soft", "hard"):
            raise BtcError(f"{owner}: reset must be 'soft' or 'hard', got {self.reset!r}")
        if not self.theta > self.v_reset:
            raise BtcError(f"{owner}: theta ({self.theta}) must be above v_reset ({self.v_reset})")
        if self.refractory < 0:
            raise BtcError(f"{owner}: refractory must be >= 0 ms, got {self.refractory}")
        if not isinstance(self.synapse, SYNAPSES):
            raise BtcError(f"{owner}: synapse must be one of {[s.__name__ for s in SYNAPSES]}, got {self.synapse!r}")
        if not isinstance(self.surrogate, Surrogate):
            raise BtcError(f"{owner}: surrogate must be a btc.frontend.Surrogate, got {self.surrogate!r}")

    @property
    def ports(self) -> tuple[str, ...]:
        return self.synapse.ports

    def state_names(self, dt: float) -> tuple[str, ...]:
        names = ("v",) + tuple(self.extra_states) + tuple(self.synapse.states)
        return names + (("ref",) if self.refractory_steps(dt) > 0 else ())

    def initial_state(self, dt: float) -> tuple[float, ...]:
        init = self.initial_values()
        return tuple(init.get(n, 0.0) for n in self.state_names(dt))

    def initial_values(self) -> dict:
        return {"v": self.v_reset}

    def refractory_steps(self, dt: float) -> int:
        return int(round(self.refractory / dt))

    def param(self, params: dict, name: str):
        """A per-neuron parameter: the learned value if the group trains it, else the model's number."""
        return params[name] if params and name in params else float(getattr(self, name))

    # ---- dynamics, in JAX on scalars
    def threshold(self, st: dict, params: dict):
        return self.param(params, "theta")

    def spike(self, dt: float, st: dict, params: dict | None = None):
        from btc.frontend.trace import spike_fn

        theta = self.threshold(st, params)
        s = spike_fn((st["v"] - theta) / (self.param(params, "theta") - self.v_reset), self.surrogate)
        if "ref" in st:
            import jax.numpy as jnp

            s = jnp.where(st["ref"] > 0, 0.0, s)
        return s

    def step(self, dt: float, st: dict, ys: dict, params: dict | None = None) -> dict:
        import jax
        import jax.numpy as jnp

        s_last = self.spike(dt, st, params)
        s_reset = jax.lax.stop_gradient(s_last) if self.detach_reset else s_last
        v = st["v"]
        if self.reset == "soft":
            v_r = v - s_reset * (self.param(params, "theta") - self.v_reset)
        else:
            v_r = v * (1 - s_reset) + s_reset * self.v_reset
        syn = self.synapse.step(dt, st, ys)
        current = self.synapse.current(syn, ys, v_r)
        new = dict(syn)
        new.update(self.membrane(dt, st, v_r, current, s_last, s_reset, params))
        if "ref" in st:
            new["ref"] = jnp.where(s_last > 0.5, float(self.refractory_steps(dt)), jnp.maximum(st["ref"] - 1.0, 0.0))
            new["v"] = jnp.where(new["ref"] > 0, v_r, new["v"])
        return {k: new[k] for k in st}

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class LIF(_Spiking):
    """Leaky integrate-and-fire, `tau dv/dt = -(v - v_rest) + R*I`, integrated by exponential Euler."""

    tau: float = 10.0
    v_rest: float = 0.0
    R: float = 1.0
    ELEMENTWISE: ClassVar[tuple] = ("tau", "theta")

    def __post_init__(self):
        _positive("LIF", "tau", self.tau)
        for name in ("v_rest", "R"):
            _finite("LIF", name, getattr(self, name))
        super().__post_init__()
        if not self.v_rest < self.theta:
            raise BtcError(f"LIF: v_rest ({self.v_rest}) must be below theta ({self.theta}); "
                           "a neuron resting above threshold fires on every step")

    def initial_values(self) -> dict:
        return {"v": self.v_rest}

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        d = _decay(dt, self.param(params, "tau"))
        return {"v": self.v_rest + (v_r - self.v_rest) * d + self.R * (1 - d) * current}


@dataclass(frozen=True)
class IF(_Spiking):
    """Integrate-and-fire without leak: `v = v + (dt/tau)*R*I`."""

    tau: float = 10.0
    R: float = 1.0
    ELEMENTWISE: ClassVar[tuple] = ("tau", "theta")

    def __post_init__(self):
        _positive("IF", "tau", self.tau)
        _finite("IF", "R", self.R)
        super().__post_init__()

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        return {"v": v_r + (dt / self.param(params, "tau")) * self.R * current}


@dataclass(frozen=True)
class ALIF(LIF):
    """Adaptive LIF (e-prop's ALIF): threshold `theta + beta*a`, `a = a*exp(-dt/tau_a) + s`, states v, a."""

    tau_a: float = 200.0
    beta: float = 1.6
    extra_states: ClassVar[tuple] = ("a",)
    ELEMENTWISE: ClassVar[tuple] = ("tau", "theta", "beta")

    def __post_init__(self):
        _positive("ALIF", "tau_a", self.tau_a)
        _finite("ALIF", "beta", self.beta)
        super().__post_init__()

    def threshold(self, st, params):
        return self.param(params, "theta") + self.param(params, "beta") * st["a"]

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        out = super().membrane(dt, st, v_r, current, s_last, s_reset, params)
        out["a"] = st["a"] * _decay(dt, float(self.tau_a)) + s_last
        return out


@dataclass(frozen=True)
class GIF(LIF):
    """Generalized LIF with a spike-triggered adaptation current (Mihalas-Niebur, reduced):
    `I2 = I2*exp(-dt/tau_I2) + A2*s`, added to the input current; states v, I2."""

    tau_I2: float = 50.0
    A2: float = -0.5
    extra_states: ClassVar[tuple] = ("I2",)

    def __post_init__(self):
        _positive("GIF", "tau_I2", self.tau_I2)
        _finite("GIF", "A2", self.A2)
        super().__post_init__()

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        i2 = st["I2"] * _decay(dt, float(self.tau_I2)) + self.A2 * s_last
        out = super().membrane(dt, st, v_r, current + i2, s_last, s_reset, params)
        out["I2"] = i2
        return out


@dataclass(frozen=True)
class Izhikevich(_Spiking):
    """Izhikevich (2003): `v' = 0.04v^2 + 5v + 140 - u + I`, `u' = a(bv - u)`, forward Euler; a spike
    at v >= theta (30 mV) resets v to c (v_reset) and adds d to u. States v, u (mV, ms)."""

    a: float = 0.02
    b: float = 0.2
    d: float = 8.0
    theta: float = 30.0
    v_reset: float = -65.0
    reset: str = "hard"
    extra_states: ClassVar[tuple] = ("u",)
    ELEMENTWISE: ClassVar[tuple] = ("a", "b", "d")

    def __post_init__(self):
        for name in ("a", "b", "d"):
            _finite("Izhikevich", name, getattr(self, name))
        if self.reset != "hard":
            raise BtcError("Izhikevich: reset must be 'hard' (v jumps to c = v_reset)")
        super().__post_init__()

    def initial_values(self) -> dict:
        return {"v": self.v_reset, "u": self.b * self.v_reset}

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        a, b, d = (self.param(params, n) for n in ("a", "b", "d"))
        u_r = st["u"] + d * s_reset
        return {"v": v_r + dt * (0.04 * v_r * v_r + 5.0 * v_r + 140.0 - u_r + current),
                "u": u_r + dt * a * (b * v_r - u_r)}


@dataclass(frozen=True, eq=False)
class CustomNeuron:
    """A neuron written by the user as plain JAX on scalars:

        def step(states: dict, inputs: dict, params: dict) -> dict   # states of step t-1 -> new states
        def spike(states: dict, params: dict) -> spike               # use btc.frontend.spike_fn

    `states` maps each state name to its initial value; `ports` names the input entry points
    (inputs[port] is that port's summed synaptic input); `params` maps per-neuron parameter names to
    default values (the group may learn them: `Network.group(..., trainable=[...])`). The time step
    is the network's `dt`; close over it. Both functions are traced once by the compiler."""

    step_fn: object
    spike_fn: object
    states: dict
    ports: tuple = ("y",)
    params: dict = field(default_factory=dict)
    name: str = "custom"

    def __post_init__(self):
        if not callable(self.step_fn) or not callable(self.spike_fn):
            raise BtcError(f"CustomNeuron {self.name!r}: step_fn and spike_fn must be callables")
        if not isinstance(self.states, dict) or not self.states:
            raise BtcError(f"CustomNeuron {self.name!r}: states must be a non-empty dict name -> initial value")
        for n, v in list(self.states.items()) + list(self.params.items()):
            _finite(f"CustomNeuron {self.name!r}", n, v)
        if isinstance(self.ports, str) or not self.ports:
            raise BtcError(f"CustomNeuron {self.name!r}: ports must be a non-empty tuple of names")
        object.__setattr__(self, "ports", tuple(self.ports))

    @property
    def ELEMENTWISE(self) -> tuple:
        return tuple(self.params)

    surrogate = None

    def state_names(self, dt: float) -> tuple[str, ...]:
        return tuple(self.states)

    def initial_state(self, dt: float) -> tuple[float, ...]:
        return tuple(float(v) for v in self.states.values())

    def param(self, params: dict, name: str):
        return params[name] if params and name in params else float(self.params[name])

    def _all_params(self, params):
        return {n: self.param(params, n) for n in self.params}

    def step(self, dt: float, st: dict, ys: dict, params: dict | None = None) -> dict:
        new = self.step_fn(dict(st), dict(ys), self._all_params(params))
        if not isinstance(new, dict) or set(new) != set(st):
            got = sorted(new) if isinstance(new, dict) else type(new).__name__
            raise BtcError(f"CustomNeuron {self.name!r}: step must return a dict of the states {sorted(st)}, got {got}")
        return {k: new[k] for k in st}

    def spike(self, dt: float, st: dict, params: dict | None = None):
        return self.spike_fn(dict(st), self._all_params(params))


NEURONS = (LIF, IF, ALIF, GIF, Izhikevich, CustomNeuron)

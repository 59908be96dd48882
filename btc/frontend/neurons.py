"""Neuron records: LIF, IF, ALIF, GIF, Izhikevich and user-defined `CustomNeuron`, with their
surrogate gradient. A neuron's `step(dt, states, inputs, params)` maps the states of step t-1 and
this step's input per port to the new states; `spike(dt, states, params)` reads the spike from a
state. States are *before* the reset: the reset acts at the start of the next step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from btc.dialect.surrogates import SURROGATE_RULES
from btc.errors import BtcError
from btc.frontend._checks import decay, finite, positive
from btc.frontend.synapses import NMDA, SYNAPSES, COBA, Alpha, Delta, DualExp, Expon

__all__ = ["Surrogate", "LIF", "IF", "ALIF", "GIF", "Izhikevich", "CustomNeuron", "NEURONS", "SURROGATES"]

# name -> (default slope, what the slope means); each surrogate, its derivative included, is one
# entry of btc.dialect.surrogates (simulate.py keeps an independent copy of the formulas as the oracle)
SURROGATES = {kind: (rule.default_slope, rule.slope_meaning) for kind, rule in SURROGATE_RULES.items()}



@dataclass(frozen=True)
class Surrogate:
    """The derivative used for the spike's Heaviside step in the backward pass."""

    kind: str = "sigmoid"
    slope: float | None = None

    def __post_init__(self):
        if self.kind not in SURROGATES:
            raise BtcError(f"unknown surrogate {self.kind!r}; expected one of {sorted(SURROGATES)}")
        slope = SURROGATES[self.kind][0] if self.slope is None else self.slope
        object.__setattr__(self, "slope", positive(f"surrogate {self.kind}", "slope", slope))




@dataclass(frozen=True)
class _Spiking:
    """What every built-in spiking neuron shares: threshold, reset, refractoriness, a synapse, a
    surrogate. Subclasses give `membrane(...)` (the sub-threshold update) and their extra states."""

    theta: float = 1.0
    v_reset: float = 0.0
    reset: str = "soft"
    detach_reset: bool = True
    refractory: float = 0.0
    synapse: Delta | Expon | Alpha | DualExp | COBA | NMDA = field(default_factory=Delta)
    surrogate: Surrogate = field(default_factory=Surrogate)

    extra_states: ClassVar[tuple] = ()  # the model's own states besides v
    ELEMENTWISE: ClassVar[tuple] = ("theta",)  # per-neuron parameters that may be learned

    def __post_init__(self):
        owner = type(self).__name__
        for name in ("theta", "v_reset", "refractory"):
            finite(owner, name, getattr(self, name))
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
        positive("LIF", "tau", self.tau)
        for name in ("v_rest", "R"):
            finite("LIF", name, getattr(self, name))
        super().__post_init__()
        if not self.v_rest < self.theta:
            raise BtcError(f"LIF: v_rest ({self.v_rest}) must be below theta ({self.theta}); "
                           "a neuron resting above threshold fires on every step")

    def initial_values(self) -> dict:
        return {"v": self.v_rest}

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        d = decay(dt, self.param(params, "tau"))
        return {"v": self.v_rest + (v_r - self.v_rest) * d + self.R * (1 - d) * current}


@dataclass(frozen=True)
class IF(_Spiking):
    """Integrate-and-fire without leak: `v = v + (dt/tau)*R*I`."""

    tau: float = 10.0
    R: float = 1.0
    ELEMENTWISE: ClassVar[tuple] = ("tau", "theta")

    def __post_init__(self):
        positive("IF", "tau", self.tau)
        finite("IF", "R", self.R)
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
        positive("ALIF", "tau_a", self.tau_a)
        finite("ALIF", "beta", self.beta)
        super().__post_init__()

    def threshold(self, st, params):
        return self.param(params, "theta") + self.param(params, "beta") * st["a"]

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        out = super().membrane(dt, st, v_r, current, s_last, s_reset, params)
        out["a"] = st["a"] * decay(dt, float(self.tau_a)) + s_last
        return out


@dataclass(frozen=True)
class GIF(LIF):
    """Generalized LIF with a spike-triggered adaptation current (Mihalas-Niebur, reduced):
    `I2 = I2*exp(-dt/tau_I2) + A2*s`, added to the input current; states v, I2."""

    tau_I2: float = 50.0
    A2: float = -0.5
    extra_states: ClassVar[tuple] = ("I2",)

    def __post_init__(self):
        positive("GIF", "tau_I2", self.tau_I2)
        finite("GIF", "A2", self.A2)
        super().__post_init__()

    def membrane(self, dt, st, v_r, current, s_last, s_reset, params):
        i2 = st["I2"] * decay(dt, float(self.tau_I2)) + self.A2 * s_last
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
            finite("Izhikevich", name, getattr(self, name))
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
            finite(f"CustomNeuron {self.name!r}", n, v)
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

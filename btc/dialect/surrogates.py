"""Every spike surrogate's derivative, written once against a tiny math namespace.

A rule is `derivative(m, slope, x)` where `m` offers const/add/sub/mul/div/exp/abs/max. The
frontend evaluates it with a jax.numpy namespace (the custom JVP of `spike_fn`); btc-derive-jacobians
evaluates it with an MLIR op builder, so the compiled module and the traced model share one formula.
Adding a surrogate is one `_rule(...)` entry here. (`btc.frontend.simulate` keeps its own formulas
on purpose: it is the independent test oracle.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

from btc.errors import BtcError

__all__ = ["SurrogateMath", "SurrogateRule", "SURROGATE_RULES", "surrogate_rule"]


class SurrogateMath(Protocol):
    """What a rule may compute with: scalars in, scalars out (floats, JAX arrays or MLIR values)."""

    def const(self, value: float): ...
    def add(self, a, b): ...
    def sub(self, a, b): ...
    def mul(self, a, b): ...
    def div(self, a, b): ...
    def exp(self, a): ...
    def abs(self, a): ...
    def max(self, a, b): ...


@dataclass(frozen=True)
class SurrogateRule:
    kind: str
    default_slope: float
    slope_meaning: str  # what the slope parameter is, for users
    derivative: Callable  # (m: SurrogateMath, slope: float, x) -> dH/dx


SURROGATE_RULES: dict[str, SurrogateRule] = {}


def _rule(kind: str, default_slope: float, slope_meaning: str):
    def register(derivative):
        SURROGATE_RULES[kind] = SurrogateRule(kind, default_slope, slope_meaning, derivative)
        return derivative
    return register


@_rule("sigmoid", 4.0, "alpha in alpha*sig(alpha*x)*(1-sig(alpha*x))")
def _sigmoid(m: SurrogateMath, a: float, x):
    z = m.div(m.const(1.0), m.add(m.const(1.0), m.exp(m.mul(m.const(-a), x))))
    return m.mul(m.const(a), m.mul(z, m.sub(m.const(1.0), z)))


@_rule("fast_sigmoid", 10.0, "alpha in 1/(alpha*|x|+1)^2 (SuperSpike)")
def _fast_sigmoid(m: SurrogateMath, a: float, x):
    ax = m.abs(x)
    d = m.add(m.mul(m.const(a), ax), m.const(1.0))
    return m.div(m.const(1.0), m.mul(d, d))


@_rule("arctan", 2.0, "alpha in (alpha/2)/(1+(pi/2*alpha*x)^2)")
def _arctan(m: SurrogateMath, a: float, x):
    u = m.mul(m.const(math.pi / 2 * a), x)
    return m.div(m.const(a / 2), m.add(m.const(1.0), m.mul(u, u)))


@_rule("triangle", 1.0, "width w in max(0, 1-|x|/w)/w (ReLU-shaped, compact support)")
def _triangle(m: SurrogateMath, w: float, x):
    ax = m.abs(x)
    r = m.sub(m.const(1.0), m.mul(ax, m.const(1.0 / w)))
    return m.mul(m.max(r, m.const(0.0)), m.const(1.0 / w))


def surrogate_rule(kind: str) -> SurrogateRule:
    """The registered rule for `kind`; a BtcError listing the registered kinds otherwise."""
    if kind not in SURROGATE_RULES:
        raise BtcError(f"unknown surrogate {kind!r}; registered: {sorted(SURROGATE_RULES)}")
    return SURROGATE_RULES[kind]

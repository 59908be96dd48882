"""Plain-JAX elementwise functions -> the body of a `btc` region (scalar arith/math ops).

A neuron's dynamics are written once, in JAX, on scalars; `jax.make_jaxpr` traces them, and this
module translates the jaxpr's primitives one by one. `spike_fn` is the one btc-specific piece: a
Heaviside step with a surrogate derivative, which becomes `btc.spike`. A primitive outside the
table below is refused with an error naming it and the function.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from btc.errors import BtcError

__all__ = ["spike_fn", "surrogate_grad", "trace_region", "SUPPORTED_PRIMITIVES"]

_SPIKE_PREFIX = "btc_spike__"


def surrogate_grad(kind: str, slope: float, x):
    """d/dx of the spike's surrogate (must match btc.passes.derive_jacobians._surrogate_grad)."""
    a = slope
    if kind == "sigmoid":
        z = jax.nn.sigmoid(a * x)
        return a * z * (1 - z)
    if kind == "fast_sigmoid":
        return 1.0 / (a * jnp.abs(x) + 1.0) ** 2
    if kind == "arctan":
        return (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)
    if kind == "triangle":
        return jnp.maximum(0.0, 1.0 - jnp.abs(x) / a) / a
    raise BtcError(f"unknown surrogate {kind!r}")


@functools.lru_cache(maxsize=None)
def _spike_for(kind: str, slope: float):
    def spike(x):
        return (x > 0).astype(jnp.result_type(x))

    # the name survives into the jaxpr (custom_jvp_call's `name`), which is how tracing finds it
    spike.__name__ = f"{_SPIKE_PREFIX}{kind}__{slope!r}"
    spike = jax.custom_jvp(spike)

    @spike.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return spike(x), surrogate_grad(kind, slope, x) * dx

    return spike


def spike_fn(x, surrogate):
    """H(x): 1 where x > 0, else 0; its derivative is the surrogate's (`btc.frontend.Surrogate`)."""
    return _spike_for(surrogate.kind, float(surrogate.slope))(x)


def _f(value: float) -> str:
    return f"{float(np.float32(value)):.17e}"


_BINARY = {"add": "arith.addf", "sub": "arith.subf", "mul": "arith.mulf", "div": "arith.divf",
           "max": "arith.maximumf", "min": "arith.minimumf"}
_UNARY = {"exp": "math.exp", "log": "math.log", "tanh": "math.tanh", "abs": "math.absf", "sqrt": "math.sqrt",
          "neg": "arith.negf"}
_COMPARE = {"gt": "ogt", "lt": "olt", "ge": "oge", "le": "ole", "eq": "oeq", "ne": "une"}
_LOGIC = {"and": "arith.andi", "or": "arith.ori"}
# custom_jvp functions whose custom derivative equals their primal's (so inlining the primal is exact)
_SAME_DERIVATIVE = ("relu",)
SUPPORTED_PRIMITIVES = tuple(sorted(
    list(_BINARY) + list(_UNARY) + list(_COMPARE) + list(_LOGIC) +
    ["not", "integer_pow", "square", "logistic", "rsqrt", "select_n", "convert_element_type", "stop_gradient",
     "pjit", "jit", "closed_call", "custom_jvp_call", "copy", "copy_p"]))


class _Body:
    """Scalar SSA lines for one region; values are (name, type) with type f32 or i1."""

    def __init__(self, where: str):
        self.where = where
        self.lines: list[str] = []
        self._n = 0

    def new(self) -> str:
        self._n += 1
        return f"%t{self._n}"

    def emit(self, text: str) -> str:
        name = self.new()
        self.lines.append(f"{name} = {text}")
        return name

    def const(self, value: float) -> str:
        return self.emit(f"arith.constant {_f(value)} : f32")

    def bool_const(self, value: bool) -> str:
        return self.emit(f"arith.constant {'true' if value else 'false'}")


def _is_bool(aval) -> bool:
    return aval.dtype == np.bool_


def _translate(body: _Body, jaxpr, consts: list, args: list[str]) -> list[str]:
    env: dict = {}

    def read(v):
        if type(v).__name__ == "Literal":
            val = v.val
            if np.asarray(val).dtype == np.bool_:
                return body.bool_const(bool(val))
            return body.const(float(val))
        return env[v]

    for v, c in zip(jaxpr.constvars, consts):
        arr = np.asarray(c)
        if arr.shape != ():
            raise BtcError(f"{body.where}: captured a non-scalar constant of shape {list(arr.shape)}; "
                           "neuron dynamics are written per neuron, on scalars")
        env[v] = body.bool_const(bool(arr)) if arr.dtype == np.bool_ else body.const(float(arr))
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for eqn in jaxpr.eqns:
        prim = eqn.primitive.name
        for out in eqn.outvars:
            aval = out.aval
            if getattr(aval, "shape", ()) != () or aval.dtype not in (np.float32, np.bool_):
                raise BtcError(f"{body.where}: {prim} produces {aval}; neuron dynamics must be float32 scalar "
                               "functions of scalars (one neuron at a time)")
        ins = [read(v) for v in eqn.invars]
        outs = _translate_eqn(body, eqn, prim, ins)
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _translate_eqn(body: _Body, eqn, prim: str, ins: list[str]) -> list[str]:
    if prim in _BINARY:
        return [body.emit(f"{_BINARY[prim]} {ins[0]}, {ins[1]} : f32")]
    if prim in _UNARY:
        return [body.emit(f"{_UNARY[prim]} {ins[0]} : f32")]
    if prim in _COMPARE:
        if _is_bool(eqn.invars[0].aval):
            raise BtcError(f"{body.where}: comparing booleans ({prim}) is not supported")
        return [body.emit(f"arith.cmpf {_COMPARE[prim]}, {ins[0]}, {ins[1]} : f32")]
    if prim in _LOGIC:
        return [body.emit(f"{_LOGIC[prim]} {ins[0]}, {ins[1]} : i1")]
    if prim == "not":
        return [body.emit(f"arith.xori {ins[0]}, {body.bool_const(True)} : i1")]
    if prim in ("copy", "copy_p"):
        return [ins[0]]
    if prim == "square":
        return [body.emit(f"arith.mulf {ins[0]}, {ins[0]} : f32")]
    if prim == "integer_pow":
        n = eqn.params["y"]
        acc = None
        for _ in range(abs(n)):
            acc = ins[0] if acc is None else body.emit(f"arith.mulf {acc}, {ins[0]} : f32")
        acc = acc or body.const(1.0)
        return [body.emit(f"arith.divf {body.const(1.0)}, {acc} : f32") if n < 0 else acc]
    if prim == "logistic":
        e = body.emit(f"math.exp {body.emit(f'arith.negf {ins[0]} : f32')} : f32")
        return [body.emit(f"arith.divf {body.const(1.0)}, {body.emit(f'arith.addf {body.const(1.0)}, {e} : f32')} : f32")]
    if prim == "rsqrt":
        return [body.emit(f"arith.divf {body.const(1.0)}, {body.emit(f'math.sqrt {ins[0]} : f32')} : f32")]
    if prim == "select_n":
        if len(ins) != 3 or not _is_bool(eqn.invars[0].aval):
            raise BtcError(f"{body.where}: select_n with {len(ins) - 1} cases is not supported (use jnp.where)")
        if _is_bool(eqn.outvars[0].aval):
            raise BtcError(f"{body.where}: jnp.where between booleans is not supported; select floats")
        return [body.emit(f"arith.select {ins[0]}, {ins[2]}, {ins[1]} : f32")]
    if prim == "convert_element_type":
        src, dst = eqn.invars[0].aval.dtype, eqn.params["new_dtype"]
        if dst == np.float32 and src == np.float32:
            return [ins[0]]
        if dst == np.float32 and src == np.bool_:
            return [body.emit(f"arith.uitofp {ins[0]} : i1 to f32")]
        if dst == np.float32 and type(eqn.invars[0]).__name__ == "Literal":
            return [ins[0]]  # an integer literal, already read as a float constant
        raise BtcError(f"{body.where}: conversion from {src} to {dst} is not supported")
    if prim == "stop_gradient":
        return [body.emit(f'"btc.stop_gradient"({ins[0]}) : (f32) -> f32')]
    if prim in ("pjit", "jit", "closed_call"):
        closed = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
        return _translate(body, closed.jaxpr, closed.consts, ins)
    if prim == "custom_jvp_call":
        closed = eqn.params["call_jaxpr"]
        info = getattr(closed.jaxpr, "debug_info", None)
        name = str(getattr(info, "func_name", "") or eqn.params.get("name", ""))
        if name.startswith(_SPIKE_PREFIX):
            kind, slope = name[len(_SPIKE_PREFIX):].split("__")
            return [body.emit(f'"btc.spike"({ins[0]}) {{surrogate = "{kind}", slope = {float(slope):.17e} : f64}} '
                              ": (f32) -> f32")]
        if name in _SAME_DERIVATIVE:  # its primal's derivative is the custom one
            return _translate(body, closed.jaxpr, closed.consts, ins)
        raise BtcError(f"{body.where}: {name or 'a function'} has a custom derivative (jax.custom_jvp) that btc "
                       "cannot see; write spikes with btc.frontend.spike_fn(x, Surrogate(...))")
    raise BtcError(f"{body.where}: the JAX primitive {prim!r} is not supported in neuron dynamics; "
                   f"supported: {', '.join(SUPPORTED_PRIMITIVES)}")


def trace_region(fn, arg_names: list[str], where: str) -> str:
    """Trace fn(*f32 scalars) -> tuple of f32 scalars into a region `{ ^bb0(...): ... btc.yield }`."""
    try:
        closed = jax.make_jaxpr(fn)(*[jnp.float32(0.0) for _ in arg_names])
    except BtcError:
        raise
    except Exception as e:  # an error inside the user's function, reported with where it came from
        raise BtcError(f"{where}: tracing failed: {type(e).__name__}: {e}") from None
    body = _Body(where)
    args = [f"%{a}" for a in arg_names]
    outs = _translate(body, closed.jaxpr, closed.consts, args)
    if any(v.aval.dtype != np.float32 for v in closed.jaxpr.outvars):
        raise BtcError(f"{where}: must return float32 values")
    text = "\n      ".join(body.lines)
    sig = ", ".join(f"{a}: f32" for a in args)
    types = ", ".join("f32" for _ in outs)
    return (f"{{\n    ^bb0({sig}):\n      {text}\n      \"btc.yield\"({', '.join(outs)}) : ({types}) -> ()\n    }}")

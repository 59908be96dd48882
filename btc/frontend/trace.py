"""Plain-JAX elementwise functions -> the body of a `btc` region (scalar arith/math ops).

A neuron's dynamics are written once, in JAX, on scalars; `jax.make_jaxpr` traces them, and this
module translates the jaxpr's primitives one by one into ops built with the MLIR bindings.
`spike_fn` is the one btc-specific piece: a Heaviside step with a surrogate derivative (its rule
in `btc.dialect.surrogates`), which becomes `btc.spike`. A primitive outside the table below is
refused with an error naming it and the function.
"""
from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
from iree.compiler import ir
from iree.compiler.dialects.arith import CmpFPredicate

from btc.dialect.surrogates import surrogate_rule
from btc.dialect.typed import SpikeOp, StopGradientOp, YieldOp
from btc.errors import BtcError

__all__ = ["spike_fn", "surrogate_grad", "trace_region", "SUPPORTED_PRIMITIVES"]

_SPIKE_PREFIX = "btc_spike__"


class _JaxMath:
    """The surrogate rules' math namespace on JAX values (python floats stay weakly typed: f32)."""

    const = staticmethod(float)
    add = staticmethod(operator.add)
    sub = staticmethod(operator.sub)
    mul = staticmethod(operator.mul)
    div = staticmethod(operator.truediv)
    exp = staticmethod(jnp.exp)
    abs = staticmethod(jnp.abs)
    max = staticmethod(jnp.maximum)


def surrogate_grad(kind: str, slope: float, x):
    """d/dx of the spike's surrogate: the rule btc-derive-jacobians also compiles (dialect/surrogates.py)."""
    return surrogate_rule(kind).derivative(_JaxMath, slope, x)


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


_BINARY = {"add": "arith.addf", "sub": "arith.subf", "mul": "arith.mulf", "div": "arith.divf",
           "max": "arith.maximumf", "min": "arith.minimumf"}
_UNARY = {"exp": "math.exp", "log": "math.log", "tanh": "math.tanh", "abs": "math.absf", "sqrt": "math.sqrt",
          "neg": "arith.negf"}
_COMPARE = {"gt": CmpFPredicate.OGT, "lt": CmpFPredicate.OLT, "ge": CmpFPredicate.OGE, "le": CmpFPredicate.OLE,
            "eq": CmpFPredicate.OEQ, "ne": CmpFPredicate.UNE}
_LOGIC = {"and": "arith.andi", "or": "arith.ori"}
# custom_jvp functions whose custom derivative equals their primal's (so inlining the primal is exact)
_SAME_DERIVATIVE = ("relu",)
SUPPORTED_PRIMITIVES = tuple(sorted(
    list(_BINARY) + list(_UNARY) + list(_COMPARE) + list(_LOGIC) +
    ["not", "integer_pow", "square", "logistic", "rsqrt", "select_n", "convert_element_type", "stop_gradient",
     "pjit", "jit", "closed_call", "custom_jvp_call", "copy", "copy_p"]))


class _Body:
    """Builds one region's scalar ops (f32 or i1) at the end of its block. Each result is named
    t1, t2, ... by its location, so the printed region reads in the order it was traced."""

    def __init__(self, where: str, block: ir.Block):
        self.where = where
        self.ip = ir.InsertionPoint(block)
        self.f32 = ir.F32Type.get()
        self.i1 = ir.IntegerType.get_signless(1)
        self._n = 0

    def loc(self) -> ir.Location:
        self._n += 1
        return ir.Location.name(f"t{self._n}")

    def op(self, name: str, *operands, result=None, attrs=None) -> ir.Value:
        return ir.Operation.create(name, results=[result or self.f32], operands=list(operands),
                                   attributes=attrs or {}, loc=self.loc(), ip=self.ip).result

    def btc_op(self, op_class, *operands, **attrs) -> ir.Value:
        return op_class.build(*operands, loc=self.loc(), ip=self.ip, **attrs).results[0]

    def const(self, value: float) -> ir.Value:
        with np.errstate(over="ignore", under="ignore"):
            f32 = np.float32(value)
        if not np.isfinite(f32):
            raise BtcError(f"{self.where}: the constant {float(value)!r} does not fit float32 (it would become "
                           f"{float(f32)!r}); neuron parameters and what the dynamics compute from them must stay "
                           "below about 3.4e38 in magnitude")
        return self.op("arith.constant", attrs={"value": ir.FloatAttr.get(self.f32, float(f32))})

    def bool_const(self, value: bool) -> ir.Value:
        return self.op("arith.constant", result=self.i1, attrs={"value": ir.BoolAttr.get(value)})


def _is_bool(aval) -> bool:
    return aval.dtype == np.bool_


def _translate(body: _Body, jaxpr, consts: list, args: list) -> list:
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


def _translate_eqn(body: _Body, eqn, prim: str, ins: list) -> list:
    if prim in _BINARY:
        return [body.op(_BINARY[prim], ins[0], ins[1])]
    if prim in _UNARY:
        return [body.op(_UNARY[prim], ins[0])]
    if prim in _COMPARE:
        if _is_bool(eqn.invars[0].aval):
            raise BtcError(f"{body.where}: comparing booleans ({prim}) is not supported")
        predicate = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(_COMPARE[prim]))
        return [body.op("arith.cmpf", ins[0], ins[1], result=body.i1, attrs={"predicate": predicate})]
    if prim in _LOGIC:
        return [body.op(_LOGIC[prim], ins[0], ins[1], result=body.i1)]
    if prim == "not":
        return [body.op("arith.xori", ins[0], body.bool_const(True), result=body.i1)]
    if prim in ("copy", "copy_p"):
        return [ins[0]]
    if prim == "square":
        return [body.op("arith.mulf", ins[0], ins[0])]
    if prim == "integer_pow":
        n = eqn.params["y"]
        acc = None
        for _ in range(abs(n)):
            acc = ins[0] if acc is None else body.op("arith.mulf", acc, ins[0])
        acc = body.const(1.0) if acc is None else acc
        return [body.op("arith.divf", body.const(1.0), acc) if n < 0 else acc]
    if prim == "logistic":
        e = body.op("math.exp", body.op("arith.negf", ins[0]))
        return [body.op("arith.divf", body.const(1.0), body.op("arith.addf", body.const(1.0), e))]
    if prim == "rsqrt":
        return [body.op("arith.divf", body.const(1.0), body.op("math.sqrt", ins[0]))]
    if prim == "select_n":
        if len(ins) != 3 or not _is_bool(eqn.invars[0].aval):
            raise BtcError(f"{body.where}: select_n with {len(ins) - 1} cases is not supported (use jnp.where)")
        if _is_bool(eqn.outvars[0].aval):
            raise BtcError(f"{body.where}: jnp.where between booleans is not supported; select floats")
        return [body.op("arith.select", ins[0], ins[2], ins[1])]
    if prim == "convert_element_type":
        src, dst = eqn.invars[0].aval.dtype, eqn.params["new_dtype"]
        if dst == np.float32 and src == np.float32:
            return [ins[0]]
        if dst == np.float32 and src == np.bool_:
            return [body.op("arith.uitofp", ins[0])]
        if dst == np.float32 and type(eqn.invars[0]).__name__ == "Literal":
            return [ins[0]]  # an integer literal, already read as a float constant
        raise BtcError(f"{body.where}: conversion from {src} to {dst} is not supported")
    if prim == "stop_gradient":
        return [body.btc_op(StopGradientOp, ins[0])]
    if prim in ("pjit", "jit", "closed_call"):
        closed = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
        return _translate(body, closed.jaxpr, closed.consts, ins)
    if prim == "custom_jvp_call":
        closed = eqn.params["call_jaxpr"]
        info = getattr(closed.jaxpr, "debug_info", None)
        name = str(getattr(info, "func_name", "") or eqn.params.get("name", ""))
        if name.startswith(_SPIKE_PREFIX):
            kind, slope = name[len(_SPIKE_PREFIX):].split("__")
            return [body.btc_op(SpikeOp, ins[0], surrogate=kind, slope=float(slope))]
        if name in _SAME_DERIVATIVE:  # its primal's derivative is the custom one
            return _translate(body, closed.jaxpr, closed.consts, ins)
        raise BtcError(f"{body.where}: {name or 'a function'} has a custom derivative (jax.custom_jvp) that btc "
                       "cannot see; write spikes with btc.frontend.spike_fn(x, Surrogate(...))")
    raise BtcError(f"{body.where}: the JAX primitive {prim!r} is not supported in neuron dynamics; "
                   f"supported: {', '.join(SUPPORTED_PRIMITIVES)}")


def trace_region(fn, arg_names: list[str], where: str, region: ir.Region) -> ir.Block:
    """Trace fn(*f32 scalars) -> tuple of f32 scalars into `region`'s one block, `^bb0(args...)`
    ending in btc.yield; the arguments are named after `arg_names`. Needs a current context."""
    try:
        closed = jax.make_jaxpr(fn)(*[jnp.float32(0.0) for _ in arg_names])
    except BtcError:
        raise
    except Exception as e:  # an error inside the user's function, reported with where it came from
        raise BtcError(f"{where}: tracing failed: {type(e).__name__}: {e}") from None
    f32 = ir.F32Type.get()
    block = ir.Block.create_at_start(region, [f32] * len(arg_names), [ir.Location.name(a) for a in arg_names])
    body = _Body(where, block)
    outs = _translate(body, closed.jaxpr, closed.consts, list(block.arguments))
    if any(v.aval.dtype != np.float32 for v in closed.jaxpr.outvars):
        raise BtcError(f"{where}: must return float32 values")
    YieldOp.build(*outs, ip=body.ip, loc=ir.Location.unknown())
    return block

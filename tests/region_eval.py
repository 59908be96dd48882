"""A tiny numpy interpreter for btc elementwise regions (scalar arith/math ops), for tests only.

It lets a test evaluate what btc-derive-jacobians produced without compiling anything.
"""
import math

import numpy as np
from iree.compiler import ir

_CMPF = {2: np.greater, 3: np.greater_equal, 4: np.less, 5: np.less_equal}


def _attr(op, name):
    a = op.attributes[name]
    for cls in (ir.FloatAttr, ir.IntegerAttr, ir.StringAttr):
        if isinstance(a, cls):
            return cls(a).value
    return a


def evaluate(block, args):
    env = dict(zip(block.arguments, [np.asarray(a, np.float64) for a in args]))
    for op in block.operations:
        op = op.operation
        ins = [env[v] for v in op.operands]
        name = op.name
        if name == "btc.yield":
            return ins
        if name == "arith.constant":
            out = np.float64(_attr(op, "value"))
        elif name == "arith.cmpf":
            pred = ir.IntegerAttr(op.attributes["predicate"]).value
            out = _CMPF[pred](ins[0], ins[1])
        else:
            out = {
                "arith.addf": lambda a, b: a + b, "arith.subf": lambda a, b: a - b,
                "arith.mulf": lambda a, b: a * b, "arith.divf": lambda a, b: a / b,
                "arith.negf": lambda a: -a, "arith.maximumf": np.maximum, "arith.minimumf": np.minimum,
                "arith.select": lambda c, a, b: np.where(c, a, b), "arith.uitofp": lambda c: c.astype(float),
                "math.exp": np.exp, "math.log": np.log, "math.tanh": np.tanh, "math.absf": np.abs,
                "math.sqrt": np.sqrt, "btc.spike": lambda x: (x > 0).astype(float),
                "btc.stop_gradient": lambda x: x,
            }[name](*ins)
        env[op.results[0]] = out
    raise AssertionError("no btc.yield")


__all__ = ["evaluate", "math"]

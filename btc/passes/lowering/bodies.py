"""Scalar bodies of elementwise linalg.generic ops, shared by several lowering rules.

Each `*_body` returns `body(fn, args) -> (lines, yielded names)` for `Fn.map`; `dot` appends a
sum of products to a list of lines.
"""
from __future__ import annotations

from btc.passes.lowering.text import Fn

__all__ = ["sum_body", "decay_body", "scale_body", "dot", "post_trace_body", "dot_body", "signed_abs_body", "fma_body",
           "transpose_apply_body", "constant_like_body", "chain_sign_body", "select_body", "weighted_add_body"]


def sum_body(fn: Fn, a):
    lines, acc = [], a[0]
    for x in a[1:]:
        n = fn.name("r")
        lines.append(f"{n} = arith.addf {acc}, {x} : f32")
        acc = n
    return lines, [acc]


def decay_body(alpha: float):
    def body(fn: Fn, a):
        c, m, s = fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{c} = arith.constant {alpha:.9e} : f32", f"{m} = arith.mulf {a[0]}, {c} : f32",
                f"{s} = arith.addf {m}, {a[1]} : f32"], [s]
    return body


def scale_body(factor: float):
    def body(fn: Fn, a):
        c, m = fn.name("r"), fn.name("r")
        return [f"{c} = arith.constant {factor:.9e} : f32", f"{m} = arith.mulf {a[0]}, {c} : f32"], [m]
    return body


def dot(fn: Fn, lines: list[str], xs: list[str], ys: list[str]) -> str:
    """Append scalar ops computing sum_i xs[i]*ys[i] to `lines`; returns the result's name."""
    acc = None
    for x, y in zip(xs, ys):
        m = fn.name("r")
        lines.append(f"{m} = arith.mulf {x}, {y} : f32")
        if acc is not None:
            n = fn.name("r")
            lines.append(f"{n} = arith.addf {acc}, {m} : f32")
            m = n
        acc = m
    return acc


def post_trace_body(S: int, alpha: float, exact: bool, inv_correction: str | None = None):
    """eps'[s] = alpha*sum_s' D[s][s'] eps[s'] + (1-alpha)*Df[s] (exact: alpha = 1, Df weight 1);
    also yields sum_s eps'[s]*delta[s] (times the bias correction, if any), the postsynaptic factor
    of the gradient. An exact trace may be driven by dh'/dp instead of Df."""
    def body(fn: Fn, a):
        D, Df, eps, delta = a[:S * S], a[S * S:S * S + S], a[S * S + S:S * S + 2 * S], a[S * S + 2 * S:]
        ca, cb = fn.name("r"), fn.name("r")
        lines = [f"{ca} = arith.constant {alpha:.9e} : f32",
                 f"{cb} = arith.constant {(1.0 if exact else 1.0 - alpha):.9e} : f32"]
        new = []
        for s in range(S):
            acc = dot(fn, lines, D[s * S:(s + 1) * S], eps)
            x, y, z = fn.name("r"), fn.name("r"), fn.name("r")
            lines += [f"{x} = arith.mulf {acc}, {ca} : f32", f"{y} = arith.mulf {Df[s]}, {cb} : f32",
                      f"{z} = arith.addf {x}, {y} : f32"]
            new.append(z)
        factor = dot(fn, lines, new, delta)
        if inv_correction is not None:
            corrected = fn.name("r")
            lines.append(f"{corrected} = arith.mulf {factor}, {inv_correction} : f32")
            factor = corrected
        return lines, new + [factor]
    return body


def dot_body(fn: Fn, a):
    """sum_i a[i]*a[n/2 + i]."""
    lines: list[str] = []
    half = len(a) // 2
    return lines, [dot(fn, lines, a[:half], a[half:])]


def signed_abs_body(sign: int):
    """sign*|w|: Dale's law keeps every applied weight of one sign."""
    def body(fn: Fn, a):
        m = fn.name("r")
        lines = [f"{m} = math.absf {a[0]} : f32"]
        if sign > 0:
            return lines, [m]
        n = fn.name("r")
        return lines + [f"{n} = arith.negf {m} : f32"], [n]
    return body


def fma_body(fn: Fn, a):
    """a0 + a1*a2."""
    m, s = fn.name("r"), fn.name("r")
    return [f"{m} = arith.mulf {a[1]}, {a[2]} : f32", f"{s} = arith.addf {a[0]}, {m} : f32"], [s]


def transpose_apply_body(S: int):
    """out[s'] = sum_s D[s][s'] * a[s]: the adjoint carried to step t-1."""
    def body(fn: Fn, a):
        D, adj = a[:S * S], a[S * S:]
        lines: list[str] = []
        return lines, [dot(fn, lines, [D[s * S + sp] for s in range(S)], adj) for sp in range(S)]
    return body


def constant_like_body(value: float):
    def body(fn: Fn, a):
        c0, m, z, c, r = (fn.name("r") for _ in range(5))
        return [f"{c0} = arith.constant 0.0 : f32", f"{m} = arith.mulf {a[0]}, {c0} : f32",
                f"{z} = arith.maxnumf {m}, {c0} : f32", f"{c} = arith.constant {value:.9e} : f32",
                f"{r} = arith.addf {z}, {c} : f32"], [r]
    return body


def chain_sign_body(sign: int):
    """g * sign * sgn(w), with sgn(0) = +1 (one side of |w|'s derivative), so a weight at exactly 0
    still learns instead of staying there."""
    def body(fn: Fn, a):
        z, neg, one, mone, sg, out = (fn.name("r") for _ in range(6))
        lines = [f"{z} = arith.constant 0.0 : f32", f"{neg} = arith.cmpf olt, {a[1]}, {z} : f32",
                 f"{one} = arith.constant {float(sign):.1f} : f32", f"{mone} = arith.constant {float(-sign):.1f} : f32",
                 f"{sg} = arith.select {neg}, {mone}, {one} : f32", f"{out} = arith.mulf {a[0]}, {sg} : f32"]
        return lines, [out]
    return body


def select_body(cond: str):
    def body(fn: Fn, a):
        n = fn.name("r")
        return [f"{n} = arith.select {cond}, {a[0]}, {a[1]} : f32"], [n]
    return body


def weighted_add_body(weight: str):
    def body(fn: Fn, a):
        m, s = fn.name("r"), fn.name("r")
        return [f"{m} = arith.mulf {a[1]}, {weight} : f32", f"{s} = arith.addf {a[0]}, {m} : f32"], [s]
    return body

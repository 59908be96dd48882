"""The per-step loss on the readout and its gradient dL_t/dr, one rule per `btc.loss` kind.

A rule takes (lw, fn, r[B,C], target, w, acc) where w is this step's weight (mask / number of
averaged terms) and acc the loss so far, and returns (dL_t/dr, acc + L_t).
"""
from __future__ import annotations

from btc.errors import BtcError
from btc.passes.lowering.context import Lowering
from btc.passes.lowering.text import Fn, tt

__all__ = ["LOSS_RULES", "step_loss"]

_NEG_BIG = -3.0e38
_M2, _M1 = "affine_map<(d0, d1) -> (d0, d1)>", "affine_map<(d0, d1) -> (d0)>"


def step_loss(lw: Lowering, fn: Fn, r: str, target: str, w: str, acc: str) -> tuple[str, str]:
    """(dL_t/dr, acc + L_t) for readout r[B,C], this step's target and weight w (mask / count)."""
    kind = lw.v.loss["kind"]
    if kind not in LOSS_RULES:
        raise BtcError(f"btc.loss: no lowering rule for loss {kind!r}; rules exist for {sorted(LOSS_RULES)}")
    return LOSS_RULES[kind](lw, fn, r, target, w, acc)


def mse(lw: Lowering, fn: Fn, r: str, target: str, w: str, acc: str) -> tuple[str, str]:
    """L_t = w * sum (r - target)^2."""
    B, C = lw.B, lw.C
    m2 = _M2

    def grad_body(a):
        d, g2, g = fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{g2} = arith.mulf {d}, {w} : f32",
                f"{g} = arith.addf {g2}, {g2} : f32"], [g]

    def loss_body(a):
        d, sq, ws, s = fn.name("r"), fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{sq} = arith.mulf {d}, {d} : f32",
                f"{ws} = arith.mulf {sq}, {w} : f32", f"{s} = arith.addf {a[2]}, {ws} : f32"], [s]

    ins = [(r, m2, tt(B, C)), (target, m2, tt(B, C))]
    grad = fn.generic(ins, [(fn.empty((B, C)), m2, tt(B, C))], ["parallel"] * 2, grad_body)[0]
    return grad, _total(lw, fn, ins, loss_body, acc)



def cross_entropy(lw: Lowering, fn: Fn, r: str, target: str, w: str, acc: str) -> tuple[str, str]:
    """L_t = w * sum_b (logsumexp(r_b) - r_b[target_b]), computed from the row maximum."""
    B, C = lw.B, lw.C
    m1, m2 = _M1, _M2

    def max_body(a):
        s = fn.name("r")
        return [f"{s} = arith.maximumf {a[1]}, {a[0]} : f32"], [s]

    mx = fn.generic([(r, m2, tt(B, C))], [(fn.full((B,), _NEG_BIG), m1, tt(B))],
                    ["parallel", "reduction"], max_body)[0]

    def sumexp_body(a):
        d, e, s = fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{e} = math.exp {d} : f32",
                f"{s} = arith.addf {a[2]}, {e} : f32"], [s]

    se = fn.generic([(r, m2, tt(B, C)), (mx, m1, tt(B))], [(fn.full((B,), 0.0), m1, tt(B))],
                    ["parallel", "reduction"], sumexp_body)[0]
    ins = [(r, m2, tt(B, C)), (mx, m1, tt(B)), (se, m1, tt(B)), (target, m1, tt(B, dtype="i32"))]

    def onehot(a):
        c, ti, eq, oh = fn.name("r"), fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{c} = linalg.index 1 : index", f"{ti} = arith.index_cast {a[3]} : i32 to index",
                f"{eq} = arith.cmpi eq, {c}, {ti} : index", f"{oh} = arith.uitofp {eq} : i1 to f32"], oh

    def grad_body(a):
        lines, oh = onehot(a)
        d, e, p, q, g = (fn.name("r") for _ in range(5))
        return lines + [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{e} = math.exp {d} : f32",
                        f"{p} = arith.divf {e}, {a[2]} : f32", f"{q} = arith.subf {p}, {oh} : f32",
                        f"{g} = arith.mulf {q}, {w} : f32"], [g]

    def loss_body(a):
        lines, oh = onehot(a)
        lg, lse, d, wd, c, s = (fn.name("r") for _ in range(6))
        return lines + [f"{lg} = math.log {a[2]} : f32", f"{lse} = arith.addf {a[1]}, {lg} : f32",
                        f"{d} = arith.subf {lse}, {a[0]} : f32", f"{wd} = arith.mulf {d}, {w} : f32",
                        f"{c} = arith.mulf {wd}, {oh} : f32", f"{s} = arith.addf {a[4]}, {c} : f32"], [s]

    grad = fn.generic(ins, [(fn.empty((B, C)), m2, tt(B, C))], ["parallel"] * 2, grad_body)[0]
    return grad, _total(lw, fn, ins, loss_body, acc)


LOSS_RULES = {"cross_entropy": cross_entropy, "mse": mse}


def _total(lw: Lowering, fn: Fn, ins: list, body, acc: str) -> str:
    """acc + the sum over [B, C] of body's terms, as a per-row reduction then a sum over rows:
    IREE's CUDA codegen failed to distribute the one-step 2-D reduction to a scalar."""
    B = lw.B
    m1 = "affine_map<(d0, d1) -> (d0)>"
    rows = fn.generic(ins, [(fn.full((B,), 0.0), m1, tt(B))], ["parallel", "reduction"], body)[0]

    def add(a):
        n = fn.name("r")
        return [f"{n} = arith.addf {a[1]}, {a[0]} : f32"], [n]

    return fn.generic([(rows, "affine_map<(d0) -> (d0)>", tt(B))], [(acc, "affine_map<(d0) -> ()>", tt())],
                      ["reduction"], add)[0]

"""btc-derive-jacobians: reads each group's elementwise regions; produces one `btc.derivatives` op
per group whose regions compute, by forward-mode AD of the region's arith/math ops:

  step(h..., y_port..., p...) -> h'...,  D[s][s'] = dh'_s/dh_s' (row-major, S*S),
                         Df[k][s] = dh'_s/dy_k (S per input port k),
                         Dp[j][s] = dh'_s/dp_j (S per learned per-neuron parameter p_j)
  spike(h..., p...)   -> s,      ds/dh_s (S), ds/dp_j (1 per p_j)     (empty region for a readout)

The surrogate derivative of `btc.spike` (its rule in `btc.dialect.surrogates`, evaluated with this
pass's op builder) is expanded into arith/math ops here, so the lowering only ever sees upstream ops
plus the forward `btc.spike`/`btc.stop_gradient`.
"""
from __future__ import annotations

from dataclasses import dataclass

from iree.compiler import ir

from btc.dialect import DerivativesOp, SpikeOp, YieldOp
from btc.dialect.surrogates import surrogate_rule
from btc.errors import BtcError
from btc.passes._view import ModelView

__all__ = ["DeriveJacobiansPass", "differentiate_block"]


class _Builder:
    """Creates f32 scalar ops at the current insertion point; also the surrogate rules' math namespace."""

    def __init__(self):
        self.f32 = ir.F32Type.get()

    def op(self, name: str, *operands, attrs=None, result=True):
        created = ir.Operation.create(name, results=[self.f32] if result else [],
                                      operands=list(operands), attributes=attrs or {})
        return created.results[0] if result else created

    def const(self, value: float):
        return self.op("arith.constant", attrs={"value": ir.FloatAttr.get(self.f32, value)})

    def add(self, a, b):
        return self.op("arith.addf", a, b)

    def sub(self, a, b):
        return self.op("arith.subf", a, b)

    def mul(self, a, b):
        return self.op("arith.mulf", a, b)

    def div(self, a, b):
        return self.op("arith.divf", a, b)

    def neg(self, a):
        return self.op("arith.negf", a)

    def exp(self, a):
        return self.op("math.exp", a)

    def abs(self, a):
        return self.op("math.absf", a)

    def max(self, a, b):
        return self.op("arith.maximumf", a, b)

    def select_ge(self, a, b, if_true, if_false):
        pred = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 3)  # oge
        cond = ir.Operation.create("arith.cmpf", results=[ir.IntegerType.get_signless(1)],
                                   operands=[a, b], attributes={"predicate": pred}).results[0]
        return self.select(cond, if_true, if_false)

    def select(self, cond, a, b):
        return self.op("arith.select", cond, a, b)


def _tangent(b: _Builder, op, ins, res, dins, where: str):
    """Tangent of one scalar op's result given its operands' tangents (None means zero)."""
    name = op.name
    if name in ("arith.constant", "arith.cmpf", "arith.cmpi", "arith.andi", "arith.ori", "arith.xori",
                "btc.stop_gradient", "arith.uitofp", "arith.sitofp"):
        return None
    if all(d is None for d in dins):
        return None
    z = lambda d: b.const(0.0) if d is None else d  # noqa: E731
    if name == "arith.addf":
        a, c = dins
        return c if a is None else a if c is None else b.add(a, c)
    if name == "arith.subf":
        a, c = dins
        return b.neg(c) if a is None else a if c is None else b.sub(a, c)
    if name == "arith.mulf":
        terms = [b.mul(dins[0], ins[1]) if dins[0] is not None else None,
                 b.mul(ins[0], dins[1]) if dins[1] is not None else None]
        terms = [t for t in terms if t is not None]
        return terms[0] if len(terms) == 1 else b.add(*terms)
    if name == "arith.divf":
        num = z(dins[0]) if dins[1] is None else b.sub(z(dins[0]), b.mul(res, dins[1]))
        return b.div(num, ins[1])
    if name == "arith.negf":
        return b.neg(dins[0])
    if name == "arith.select":
        return b.select(ins[0], z(dins[1]), z(dins[2]))
    if name in ("arith.maximumf", "arith.minimumf"):
        first = (ins[0], ins[1]) if name == "arith.maximumf" else (ins[1], ins[0])
        return b.select_ge(*first, z(dins[0]), z(dins[1]))
    if name == "math.exp":
        return b.mul(res, dins[0])
    if name == "math.log":
        return b.div(dins[0], ins[0])
    if name == "math.tanh":
        return b.mul(b.sub(b.const(1.0), b.mul(res, res)), dins[0])
    if name == "math.absf":
        return b.select_ge(ins[0], b.const(0.0), dins[0], b.neg(dins[0]))
    if name == "math.sqrt":
        return b.div(dins[0], b.mul(b.const(2.0), res))
    raise BtcError(f"{where}: cannot differentiate {name}; supported: arith add/sub/mul/div/neg/select/"
                   "maximum/minimum/constant/cmpf, math exp/log/tanh/absf/sqrt, btc.spike, btc.stop_gradient")


def differentiate_block(src: ir.Block, dst: ir.Block, seeds: list[int], where: str):
    """Clone `src` into `dst` (same arguments) and differentiate along each argument in `seeds`.

    Returns (primal yields, tangents) where tangents[k][j] is d yield_j / d arg seeds[k] (or None).
    """
    b = _Builder()
    primal = {a: c for a, c in zip(src.arguments, dst.arguments)}
    tangents = [{dst.arguments[i]: b.const(1.0)} for i in seeds] if seeds else []
    yielded = []
    for op in src.operations:
        op = op.operation
        if op.name == "btc.yield":
            yielded = [primal[v] for v in op.operands]
            break
        ins = [primal[v] for v in op.operands]
        clone = ir.Operation.create(op.name, results=[r.type for r in op.results], operands=ins,
                                    attributes={n: op.attributes[n] for n in op.attributes})
        for old, new in zip(op.results, clone.results):
            primal[old] = new
        if not op.results:
            continue
        res = clone.results[0]
        grad = None
        if op.name == "btc.spike":
            spike = SpikeOp(op)
            grad = surrogate_rule(spike.surrogate).derivative(b, spike.slope, ins[0])
        for tan in tangents:
            dins = [tan.get(v) for v in ins]
            if op.name == "btc.spike":
                tan[res] = None if dins[0] is None else b.mul(grad, dins[0])
            else:
                tan[res] = _tangent(b, op, ins, res, dins, where)
    return yielded, [[tan.get(v) for v in yielded] for tan in tangents]


def _or_zero(b: _Builder, v):
    return b.const(0.0) if v is None else v


@dataclass(frozen=True)
class DeriveJacobiansPass:
    name = "btc-derive-jacobians"

    def run(self, module) -> None:
        view = ModelView(module)
        if view.derivatives:
            raise BtcError("the module already has btc.derivatives ops: btc-derive-jacobians runs once")
        with module.context, ir.Location.unknown():
            f32 = ir.F32Type.get()
            for g in view.groups.values():
                S, P, K = g.num_states, len(g.params), len(g.ports)
                deriv = DerivativesOp.build(group=g.name, num_states=S, ip=ir.InsertionPoint(module.body))
                b = _Builder()
                step_block = deriv.regions[0].blocks.append(*([f32] * (S + K + P)))
                with ir.InsertionPoint(step_block):
                    where = f"group @{g.name} (dynamics)"
                    h_new, tans = differentiate_block(g.op.regions[0].blocks[0], step_block,
                                                      list(range(S + K + P)), where)
                    # tans[k][s] = dh'_s/d arg_k: D[s][s'] = tans[s'][s], Df[port k][s] = tans[S+k][s],
                    # Dp[j][s] = tans[S+K+j][s]
                    D = [_or_zero(b, tans[sp][s]) for s in range(S) for sp in range(S)]
                    Df = [_or_zero(b, tans[S + k][s]) for k in range(K) for s in range(S)]
                    Dp = [_or_zero(b, tans[S + K + j][s]) for j in range(P) for s in range(S)]
                    YieldOp.build(*h_new, *D, *Df, *Dp)
                if not g.readout:
                    spike_block = deriv.regions[1].blocks.append(*([f32] * (S + P)))
                    with ir.InsertionPoint(spike_block):
                        (s,), tans = differentiate_block(g.op.regions[1].blocks[0], spike_block,
                                                         list(range(S + P)), f"group @{g.name} (spike)")
                        YieldOp.build(s, *[_or_zero(b, t[0]) for t in tans])

"""Network -> `btc` dialect module (MLIR text, parsed by `btc.dialect.parse_module`).

Each neuron's internal dynamics become an elementwise region of f32 arith/math ops plus the
dialect's `btc.spike` and `btc.stop_gradient`, so that passes can differentiate them.
"""
from __future__ import annotations

import json
import math

from btc.frontend.models import LIF
from btc.frontend.network import Network, Readout

__all__ = ["emit_module"]


class _Scalar:
    """Writes the body of one elementwise region; values are SSA names of f32 scalars."""

    def __init__(self, args: list[str]):
        self.lines: list[str] = []
        self.args = {a: f"%{a}" for a in args}
        self._n = 0

    def _new(self) -> str:
        self._n += 1
        return f"%t{self._n}"

    def const(self, value: float) -> str:
        name = self._new()
        self.lines.append(f"{name} = arith.constant {_f(value)} : f32")
        return name

    def op(self, kind: str, *operands: str) -> str:
        name = self._new()
        self.lines.append(f"{name} = {kind} {', '.join(operands)} : f32")
        return name

    def add(self, a, b): return self.op("arith.addf", a, b)
    def sub(self, a, b): return self.op("arith.subf", a, b)
    def mul(self, a, b): return self.op("arith.mulf", a, b)
    def maxf(self, a, b): return self.op("arith.maximumf", a, b)
    def div(self, a, b): return self.op("arith.divf", a, b)

    def exp(self, a: str) -> str:
        name = self._new()
        self.lines.append(f"{name} = math.exp {a} : f32")
        return name

    def spike(self, x: str, surrogate) -> str:
        name = self._new()
        self.lines.append(f'{name} = "btc.spike"({x}) {{surrogate = "{surrogate.kind}", '
                          f"slope = {_f(surrogate.slope)} : f64}} : (f32) -> f32")
        return name

    def stop_gradient(self, x: str) -> str:
        name = self._new()
        self.lines.append(f'{name} = "btc.stop_gradient"({x}) : (f32) -> f32')
        return name

    def select_gt(self, a: str, b: str, if_true: str, if_false: str) -> str:
        cond = self._new()
        self.lines.append(f"{cond} = arith.cmpf ogt, {a}, {b} : f32")
        name = self._new()
        self.lines.append(f"{name} = arith.select {cond}, {if_true}, {if_false} : f32")
        return name

    def region(self, results: list[str]) -> str:
        args = ", ".join(f"{v}: f32" for v in self.args.values())
        body = "\n      ".join(self.lines)
        yields = ", ".join(results)
        types = ", ".join("f32" for _ in results)
        return f"{{\n    ^bb0({args}):\n      {body}\n      \"btc.yield\"({yields}) : ({types}) -> ()\n    }}"


def _lif_spike(b: _Scalar, n: LIF, states: dict[str, str], trainable: tuple) -> str:
    if "theta" in trainable:  # a region argument: the learned per-neuron threshold
        theta = b.args["theta"]
        x = b.div(b.sub(states["v"], theta), b.sub(theta, b.const(n.v_reset)))
    else:
        x = b.mul(b.sub(states["v"], b.const(n.theta)), b.const(1.0 / (n.theta - n.v_reset)))
    s = b.spike(x, n.surrogate)
    if "ref" in states:
        s = b.select_gt(states["ref"], b.const(0.0), b.const(0.0), s)
    return s


def _lif_regions(n: LIF, dt: float, trainable: tuple = ()) -> tuple[str, str]:
    """dynamics(states..., y, learned params...) -> states; spike(states..., learned params...) -> s."""
    names = n.state_names(dt)
    b = _Scalar([*names, "y", *trainable])
    st = {k: b.args[k] for k in names}
    s_last = _lif_spike(b, n, st, trainable)
    s_reset = b.stop_gradient(s_last) if n.detach_reset else s_last
    v = st["v"]
    if n.reset == "soft":
        jump = b.sub(b.args["theta"], b.const(n.v_reset)) if "theta" in trainable else b.const(n.theta - n.v_reset)
        v_r = b.sub(v, b.mul(s_reset, jump))
    else:
        v_r = b.add(b.sub(v, b.mul(s_reset, v)), b.mul(s_reset, b.const(n.v_reset)))
    new = {}
    current = b.args["y"]
    if "i" in st:
        new["i"] = b.add(b.mul(st["i"], b.const(math.exp(-dt / n.synapse.tau))), current)
        current = new["i"]
    if "tau" in trainable:
        decay = b.exp(b.div(b.const(-dt), b.args["tau"]))
        gain = b.mul(b.const(n.R), b.sub(b.const(1.0), decay))
    else:
        decay, gain = b.const(math.exp(-dt / n.tau)), b.const(n.R * (1 - math.exp(-dt / n.tau)))
    v_new = b.add(b.add(b.const(n.v_rest), b.mul(b.sub(v_r, b.const(n.v_rest)), decay)), b.mul(current, gain))
    if "ref" in st:
        zero = b.const(0.0)
        new["ref"] = b.select_gt(s_last, b.const(0.5), b.const(float(n.refractory_steps(dt))),
                                 b.maxf(b.sub(st["ref"], b.const(1.0)), zero))
        v_new = b.select_gt(new["ref"], zero, v_r, v_new)
    new["v"] = v_new
    dynamics = b.region([new[k] for k in names])

    sb = _Scalar([*names, *trainable])
    spike = sb.region([_lif_spike(sb, n, {k: sb.args[k] for k in names}, trainable)])
    return dynamics, spike


def _readout_region(kappa: float) -> str:
    b = _Scalar(["r", "y"])
    return b.region([b.add(b.mul(b.args["r"], b.const(kappa)), b.args["y"])])


def _f(value: float) -> str:
    """A float literal MLIR parses exactly (it needs the '.' that repr drops in 1e-05)."""
    return f"{float(value):.17e}"


def _attr_str(value) -> str:
    return json.dumps(value)


def emit_module(net: Network, batch: int, chunk: int) -> str:
    """The network as `btc` dialect text; the caller parses it in a btc context."""
    net.check()
    ops = []
    for i in net.inputs.values():
        ops.append(f'"btc.input"() {{sym_name = "{i.name}", size = {i.size} : i64, '
                   f"binary = {str(i.binary).lower()}}} : () -> ()")
    for name in net.order():
        g = net.groups[name]
        if isinstance(g, Readout):
            region = _readout_region(net.readout_decay(name))
            ops.append(f'"btc.readout"() ({region}) {{sym_name = "{name}", size = {g.size} : i64, '
                       f'states = ["r"], init = [0.0 : f32], tau = {_f(g.tau)} : f64}} : () -> ()')
            continue
        dynamics, spike = _lif_regions(g.neuron, net.dt, g.trainable)
        states = ", ".join(_attr_str(s) for s in g.neuron.state_names(net.dt))
        init = ", ".join(f"{_f(v)} : f32" for v in g.neuron.initial_state(net.dt))
        params = ", ".join(_attr_str(p) for p in g.trainable)
        ops.append(f'"btc.group"() ({dynamics}, {spike}) {{sym_name = "{name}", size = {g.size} : i64, '
                   f'states = [{states}], init = [{init}], params = [{params}], model = "lif"}} : () -> ()')
    for p in net.projections.values():
        ops.append(f'"btc.projection"() {{sym_name = "{p.name}", pre = @{p.pre}, post = @{p.post}, '
                   f"recurrent = {str(p.recurrent).lower()}, bias = {str(p.bias).lower()}, "
                   f"init_scale = {_f(p.init.scale)} : f64}} : () -> ()")
    ops.append(f'"btc.loss"() {{kind = "{net.loss.kind}", readout = @{net.loss.readout}}} : () -> ()')
    body = "\n  ".join(ops)
    return (f"module attributes {{btc.batch = {batch} : i64, btc.chunk = {chunk} : i64, "
            f"btc.dt = {_f(net.dt)} : f64, btc.seed = {net.seed} : i64}} {{\n  {body}\n}}\n")

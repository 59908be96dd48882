"""Network -> `btc` dialect module (MLIR text, parsed by `btc.dialect.parse_module`).

Each neuron's internal dynamics become an elementwise region of f32 arith/math ops plus the
dialect's `btc.spike` and `btc.stop_gradient`, so that passes can differentiate them.
"""
from __future__ import annotations

import json

from btc.frontend.trace import trace_region
from btc.frontend.network import Network, Readout

__all__ = ["emit_module"]


def port_arg(port: str) -> str:
    """A port's region argument name (ports and states may share names, arguments may not)."""
    return f"in_{port}"


def neuron_regions(neuron, dt: float, trainable: tuple, where: str) -> tuple[str, str]:
    """dynamics(states..., port inputs..., learned params...) -> states;
    spike(states..., learned params...) -> s; both traced from the neuron's JAX functions."""
    names = neuron.state_names(dt)
    ports = neuron.ports
    S, P = len(names), len(ports)

    def dynamics(*a):
        st = dict(zip(names, a[:S]))
        ys = dict(zip(ports, a[S:S + P]))
        new = neuron.step(dt, st, ys, dict(zip(trainable, a[S + P:])))
        return tuple(new[n] for n in names)

    def spike(*a):
        return (neuron.spike(dt, dict(zip(names, a[:S])), dict(zip(trainable, a[S:]))),)

    return (trace_region(dynamics, [*names, *(port_arg(p) for p in ports), *trainable], f"{where} (dynamics)"),
            trace_region(spike, [*names, *trainable], f"{where} (spike)"))


def _readout_region(kappa: float) -> str:
    """r' = kappa*r + y, traced like any neuron's dynamics."""
    return trace_region(lambda r, y: (r * kappa + y,), ["r", "y"], "readout")


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
        dynamics, spike = neuron_regions(g.neuron, net.dt, g.trainable, f"group {name!r} ({g.model})")
        states = ", ".join(_attr_str(s) for s in g.neuron.state_names(net.dt))
        init = ", ".join(f"{_f(v)} : f32" for v in g.neuron.initial_state(net.dt))
        params = ", ".join(_attr_str(p) for p in g.trainable)
        ports = ", ".join(_attr_str(p) for p in g.neuron.ports)
        driver = f"driver = @{g.driver}, " if g.driver else ""
        ops.append(f'"btc.group"() ({dynamics}, {spike}) {{sym_name = "{name}", size = {g.size} : i64, '
                   f'states = [{states}], init = [{init}], params = [{params}], ports = [{ports}], {driver}'
                   f'model = "{g.model}"}} : () -> ()')
    for p in net.projections.values():
        ops.append(f'"btc.projection"() {{sym_name = "{p.name}", pre = @{p.pre}, post = @{p.post}, '
                   f"recurrent = {str(p.recurrent).lower()}, bias = {str(p.bias).lower()}, "
                   f'port = "{p.port}", sign = {p.sign} : i64, delay = {p.delay} : i64, '
                   f"init_scale = {_f(p.init.scale)} : f64}} : () -> ()")
    ops.append(f'"btc.loss"() {{kind = "{net.loss.kind}", readout = @{net.loss.readout}}} : () -> ()')
    body = "\n  ".join(ops)
    return (f"module attributes {{btc.batch = {batch} : i64, btc.chunk = {chunk} : i64, "
            f"btc.dt = {_f(net.dt)} : f64, btc.seed = {net.seed} : i64}} {{\n  {body}\n}}\n")

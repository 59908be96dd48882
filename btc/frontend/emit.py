"""Network -> `btc` dialect module, built with the typed op builders of `btc.dialect`.

Each neuron's internal dynamics become an elementwise region of f32 arith/math ops plus the
dialect's `btc.spike` and `btc.stop_gradient`, so that passes can differentiate them.
"""
from __future__ import annotations

from iree.compiler import ir

from btc.dialect import GroupOp, InputOp, LossOp, ProjectionOp, ReadoutOp, new_context, set_module_attribute
from btc.frontend.network import Network, Readout
from btc.frontend.trace import trace_region

__all__ = ["build_module", "emit_module"]


def port_arg(port: str) -> str:
    """A port's region argument name (ports and states may share names, arguments may not)."""
    return f"in_{port}"


def neuron_regions(neuron, dt: float, trainable: tuple, where: str) -> tuple:
    """Fillers of the two regions dynamics(states..., port inputs..., learned params...) -> states
    and spike(states..., learned params...) -> s, both traced from the neuron's JAX functions."""
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

    dynamics_args = [*names, *(port_arg(p) for p in ports), *trainable]
    return (lambda region: trace_region(dynamics, dynamics_args, f"{where} (dynamics)", region),
            lambda region: trace_region(spike, [*names, *trainable], f"{where} (spike)", region))


def _readout_region(kappa: float):
    """r' = kappa*r + y, traced like any neuron's dynamics."""
    return lambda region: trace_region(lambda r, y: (r * kappa + y,), ["r", "y"], "readout", region)


def build_module(net: Network, batch: int, chunk: int, ctx: ir.Context | None = None) -> ir.Module:
    """The network as a `btc` dialect module in `ctx` (a new btc context if None)."""
    net.check()
    with (ctx or new_context()), ir.Location.unknown():
        module = ir.Module.create()
        set_module_attribute(module, "btc.batch", batch)
        set_module_attribute(module, "btc.chunk", chunk)
        with ir.InsertionPoint(module.body):
            for i in net.inputs.values():
                InputOp.build(sym_name=i.name, size=i.size, binary=i.binary)
            for name in net.order():
                g = net.groups[name]
                if isinstance(g, Readout):
                    ReadoutOp.build(regions=[_readout_region(net.readout_decay(name))], sym_name=name,
                                    size=g.size, states=["r"], init=[0.0])
                    continue
                GroupOp.build(regions=neuron_regions(g.neuron, net.dt, g.trainable, f"group {name!r} ({g.model})"),
                              sym_name=name, size=g.size, states=list(g.neuron.state_names(net.dt)),
                              init=[float(v) for v in g.neuron.initial_state(net.dt)], params=list(g.trainable),
                              ports=list(g.neuron.ports), driven_by=g.driven_by, model=g.model)
            for p in net.projections.values():
                conn = p.connectivity
                ProjectionOp.build(sym_name=p.name, pre=p.pre, post=p.post, recurrent=p.recurrent, bias=p.bias,
                                   port=p.port, sign=p.sign, delay=p.delay, frozen=p.frozen or None,
                                   pre_index=None if conn is None else conn.pre,
                                   post_index=None if conn is None else conn.post,
                                   **({} if conn is None or conn.tie is None else
                                      {"tie": conn.tie, "n_weights": conn.n_weights, "weight_scale": conn.scale,
                                       "bias_block": conn.bias_block}))
            LossOp.build(kind=net.loss.kind, readout=net.loss.readout)
    return module


def emit_module(net: Network, batch: int, chunk: int) -> str:
    """The network as `btc` dialect text (region values named t1, t2, ... in traced order); the
    caller parses it in a btc context."""
    return build_module(net, batch, chunk).operation.get_asm(use_name_loc_as_prefix=True)

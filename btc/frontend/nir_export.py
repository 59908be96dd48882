"""btc networks as NIR graphs, the inverse of btc.frontend.nir_import (same conventions: forward Euler
at dt, hard reset, states at rest, back edges one step late): `to_nir(net, params)`, and
`btc export-nir ARTIFACT [--checkpoint C] -o model.nir` for trained parameters.

What NIR can say is exported; what it cannot is refused by name: soft (subtractive) reset,
refractoriness, trainable per-neuron parameters that were learned away from one value, ALIF, GIF,
Izhikevich and custom neurons, COBA/NMDA/Alpha/dual-exponential synapses, AlignPre synapses and STP,
sparse projections and Dale's-law signs (NIR has dense weights without constraints).
"""
from __future__ import annotations

import math

import numpy as np

from btc.errors import BtcError

__all__ = ["to_nir"]


def _forward_euler(dt_ms: float, tau_ms: float) -> float:
    """The NIR time constant (s) whose forward-Euler decay 1 - dt/tau is btc's exp(-dt/tau_btc)."""
    return dt_ms / 1000.0 / (1.0 - math.exp(-dt_ms / tau_ms))


def _group_node(net, name: str, params: dict):
    """(NIR neuron node, gain: what the NIR weights into it are btc's weights divided by)."""
    import nir

    from btc.frontend.network import Readout
    from btc.frontend.neurons import IF, LIF
    from btc.frontend.synapses import Delta, Expon

    g = net.groups[name]
    n = g.size
    full = lambda v: np.full(n, float(v))  # noqa: E731
    if isinstance(g, Readout):
        if g.tau == 0:
            return nir.LI(tau=full(net.dt / 1000.0), r=full(1.0), v_leak=full(0.0)), 1.0
        tau = _forward_euler(net.dt, g.tau)
        return nir.LI(tau=full(tau), r=full(1.0), v_leak=full(0.0)), net.dt / 1000.0 / tau
    neuron = g.neuron
    where = f"group {name!r} ({g.model})"
    if type(neuron) not in (LIF, IF) or g.driven_by:
        raise BtcError(f"export to NIR: {where}: NIR has no {g.model} neuron (it has LIF, CubaLIF, IF and LI)")
    if neuron.reset != "hard":
        raise BtcError(f"export to NIR: {where} resets by subtraction (reset='soft'); NIR's neurons reset to v_reset")
    if neuron.refractory_steps(net.dt) > 0:
        raise BtcError(f"export to NIR: {where} has a refractory period; NIR's neurons have none")
    values = {}
    for p in ("tau", "theta"):
        learned = params.get(f"{name}.{p}")
        if learned is not None and np.any(learned != learned.ravel()[0]):
            raise BtcError(f"export to NIR: {where}: its learned {p} differs between neurons; NIR's nodes here "
                           "take one value (btc's import requires it too)")
        values[p] = float(learned.ravel()[0]) if learned is not None else float(getattr(neuron, p))
    spiking = {"v_threshold": full(values["theta"]), "v_reset": full(neuron.v_reset)}
    if isinstance(neuron, IF):
        if not isinstance(neuron.synapse, Delta):
            raise BtcError(f"export to NIR: {where}: NIR's IF has no synapse ({type(neuron.synapse).__name__})")
        return nir.IF(r=full(neuron.R * 1000.0 / values["tau"]), **spiking), 1.0
    tau_mem = _forward_euler(net.dt, values["tau"])
    membrane = {"r": full(neuron.R), "v_leak": full(neuron.v_rest), **spiking}
    if isinstance(neuron.synapse, Delta):
        return nir.LIF(tau=full(tau_mem), **membrane), 1.0
    if isinstance(neuron.synapse, Expon):
        tau_syn = _forward_euler(net.dt, neuron.synapse.tau)
        return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), w_in=full(1.0), **membrane), \
            net.dt / 1000.0 / tau_syn
    raise BtcError(f"export to NIR: {where}: NIR has no {type(neuron.synapse).__name__} synapse (Delta: LIF, "
                   "Expon: CubaLIF)")


def to_nir(net, params: dict | None = None):
    """The NIR graph of `net` with `params` (default: its initial ones)."""
    import nir

    params = net.init_params() if params is None else params
    if net.loss is None:
        raise BtcError("export to NIR: the network has no loss, so no readout to make the Output")
    nodes, edges = {}, []
    for name, i in net.inputs.items():
        nodes[name] = nir.Input(input_type=np.array([i.size]))
    gains = {}
    for name in net.order():
        nodes[name], gains[name] = _group_node(net, name, params)
    for p in net.projections.values():
        where = f"projection {p.name!r}"
        if p.connectivity is not None:
            raise BtcError(f"export to NIR: {where} is sparse; NIR's Affine and Linear are dense")
        if p.sign:
            raise BtcError(f"export to NIR: {where} keeps its weights' sign (Dale's law); NIR has no such constraint")
        if p.port != "y":
            raise BtcError(f"export to NIR: {where} targets port {p.port!r}; NIR's neurons have one input")
        W = np.asarray(params[f"{p.name}.W"], np.float64) / gains[p.post]
        if p.bias:
            nodes[p.name] = nir.Affine(weight=W.T, bias=np.asarray(params[f"{p.name}.b"], np.float64) / gains[p.post])
        else:
            nodes[p.name] = nir.Linear(weight=W.T)
        edges.append((p.pre, p.name))
        if p.delay:
            nodes[f"{p.name}_delay"] = nir.Delay(delay=np.full(net.size(p.post), p.delay * net.dt / 1000.0))
            edges += [(p.name, f"{p.name}_delay"), (f"{p.name}_delay", p.post)]
        else:
            edges.append((p.name, p.post))
    out = next(n for n in ("output", "output_node", "nir_output") if n not in nodes)
    nodes[out] = nir.Output(output_type=np.array([net.size(net.loss.readout)]))
    edges.append((net.loss.readout, out))
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    _check_lags(net, graph)
    return graph


def _check_lags(net, graph) -> None:
    """NIR has no one-step lag of its own: readers (btc's import among them) take the back edges of a walk
    from the inputs as one step late. The network's recurrent projections must be exactly those."""
    from btc.frontend.nir_import import back_edges

    back = back_edges(graph, net.dt / 1000.0)
    recurrent = {(p.pre, p.post) for p in net.projections.values() if p.recurrent}
    if back != recurrent:
        raise BtcError(f"export to NIR: the projections carrying the previous step's spikes are "
                       f"{sorted(recurrent)}, but a NIR reader would take {sorted(back)} as the late ones (the back "
                       "edges of a walk from the inputs); NIR cannot say which edge of a cycle is late")

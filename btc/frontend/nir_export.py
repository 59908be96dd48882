"""btc networks as NIR graphs, the inverse of btc.frontend.nir_import (same conventions: forward Euler
at dt, hard reset, states at rest, back edges one step late): `to_nir(net, params)`, and
`btc export-nir ARTIFACT [--checkpoint C] -o model.nir` for trained parameters.

What NIR can say is exported; what it cannot is refused by name: soft (subtractive) reset,
refractoriness, trainable per-neuron parameters that were learned away from one value, ALIF, GIF,
Izhikevich and custom neurons, COBA/NMDA/Alpha/dual-exponential synapses, AlignPre synapses and STP,
sparse projections other than convolutions, 1-D pools, and Dale's-law signs (NIR has dense weights without
constraints). Convolutions become Conv1d/Conv2d (after their SumPool2d/AvgPool2d), or Flatten + Affine
when the kernel covers the pooled map; neuron and input nodes take their maps' shapes.
"""
from __future__ import annotations

import math

import numpy as np

from btc.errors import BtcError

__all__ = ["to_nir"]


def _forward_euler(dt_ms: float, tau_ms: float) -> float:
    """The NIR time constant (s) whose forward-Euler decay 1 - dt/tau is btc's exp(-dt/tau_btc)."""
    return dt_ms / 1000.0 / (1.0 - math.exp(-dt_ms / tau_ms))


def _group_node(net, name: str, params: dict, shape: tuple):
    """(NIR neuron node, gain: what the NIR weights into it are btc's weights divided by); its
    per-neuron arrays have the group's map `shape`."""
    import nir

    from btc.frontend.network import Readout
    from btc.frontend.neurons import IF, LIF
    from btc.frontend.synapses import Delta, Expon

    g = net.groups[name]
    full = lambda v: np.full(shape, float(v))  # noqa: E731
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
    shapes = _map_shapes(net)
    for name, i in net.inputs.items():
        nodes[name] = nir.Input(input_type=np.array(shapes[name]))
    gains = {}
    for name in net.order():
        nodes[name], gains[name] = _group_node(net, name, params, shapes[name])
    for p in net.projections.values():
        where = f"projection {p.name!r}"
        conn = p.connectivity
        if conn is not None and conn.tie is None:
            raise BtcError(f"export to NIR: {where} is sparse; NIR's Affine and Linear are dense")
        if p.sign:
            raise BtcError(f"export to NIR: {where} keeps its weights' sign (Dale's law); NIR has no such constraint")
        if p.port != "y":
            raise BtcError(f"export to NIR: {where} targets port {p.port!r}; NIR's neurons have one input")
        W = np.asarray(params[f"{p.name}.W"], np.float64) / gains[p.post]
        b = np.asarray(params[f"{p.name}.b"], np.float64) / gains[p.post] if p.bias else None
        chain = _shared_nodes(where, conn, W, b) if conn is not None else []
        if conn is None and len(shapes[p.pre]) > 1:
            chain.append(nir.Flatten(input_type={"input": np.array(shapes[p.pre])}, start_dim=0))
        if conn is None:
            if len(shapes[p.post]) > 1:
                raise BtcError(f"export to NIR: {where} is dense into {p.post!r}, whose neurons a convolution or pool "
                               f"holds as a {list(shapes[p.post])} map; NIR cannot reshape a vector into a map")
            chain.append(nir.Affine(weight=W.T, bias=b) if p.bias else nir.Linear(weight=W.T))
        names = [p.name] + [f"{p.name}_{k}" for k in range(1, len(chain))]
        nodes.update(zip(names, chain))
        edges += [(p.pre, names[0])] + list(zip(names, names[1:]))
        if p.delay:
            nodes[f"{p.name}_delay"] = nir.Delay(delay=np.full(shapes[p.post], p.delay * net.dt / 1000.0))
            edges += [(names[-1], f"{p.name}_delay"), (f"{p.name}_delay", p.post)]
        else:
            edges.append((names[-1], p.post))
    out = next(n for n in ("output", "output_node", "nir_output") if n not in nodes)
    nodes[out] = nir.Output(output_type=np.array(shapes[net.loss.readout]))
    edges.append((net.loss.readout, out))
    try:
        graph = nir.NIRGraph(nodes=nodes, edges=edges)
    except ValueError as e:  # nir's type inference: a shape btc's export got wrong
        raise BtcError(f"export to NIR: the graph does not type-check in nir ({e})") from None
    _check_lags(net, graph)
    return graph


def _map_shapes(net) -> dict:
    """Each input's and group's values: the map a convolution or pool reads or writes, else (n,)."""
    shapes = {n: (net.size(n),) for n in list(net.inputs) + list(net.groups)}
    seen = {}  # a group's map -> the projection that gave it
    for p in net.projections.values():
        geometry = p.connectivity.geometry if p.connectivity is not None else None
        if geometry:
            out = (geometry["out_shape"][0],) if _as_affine(geometry) else tuple(geometry["out_shape"])
            for group, shape in ((p.pre, tuple(geometry["in_shape"])), (p.post, out)):
                if group in seen and shapes[group] != shape:
                    raise BtcError(f"export to NIR: {group!r} is a {list(shapes[group])} map for projection "
                                   f"{seen[group]!r} and a {list(shape)} one for {p.name!r}; a NIR node has one shape")
                shapes[group], seen[group] = shape, p.name
    return shapes


def _as_affine(geometry: dict) -> bool:
    """A pooled map's convolution whose kernel covers it: NIR's pool, Flatten and Affine."""
    return geometry["kind"] == "conv" and "pool" in geometry and geometry["mapped"] == geometry["kernel_shape"][2:] \
        and not any(geometry["padding"]) and geometry["groups"] == 1


def _shared_nodes(where: str, conn, W: np.ndarray, b) -> list:
    """A convolution's NIR nodes: [pool], then Conv1d/Conv2d (Flatten + Affine/Linear when its
    kernel covers the pooled map), or a pool alone with a Scale for its weight."""
    import nir

    geometry = conn.geometry
    if geometry is None:
        raise BtcError(f"export to NIR: {where} shares weights in a way NIR cannot say")
    in_shape = tuple(geometry["in_shape"])
    pool = geometry if geometry["kind"] == "pool" else geometry.get("pool")
    chain = []
    if pool is not None:
        if len(in_shape) != 3:
            raise BtcError(f"export to NIR: {where} pools a 1-D map; NIR has SumPool2d and AvgPool2d only")
        kernel = np.array(pool["kernel"])
        stride = np.array(pool["stride"])
        chain.append((nir.AvgPool2d if pool["average"] else nir.SumPool2d)(kernel_size=kernel, stride=stride,
                                                                           padding=np.zeros(2, int)))
    if geometry["kind"] == "pool":
        if b is not None and np.any(b):
            raise BtcError(f"export to NIR: {where} is a pool with a bias; NIR's pools have none")
        if W[0] != 1.0:
            chain.append(nir.Scale(scale=np.full(tuple(geometry["out_shape"]), W[0])))
        return chain
    kernel = W.reshape(geometry["kernel_shape"])
    mapped = (in_shape[0],) + tuple(geometry["mapped"])
    bias = np.zeros(kernel.shape[0]) if b is None else b
    if _as_affine(geometry):
        flat = kernel.reshape(kernel.shape[0], -1)
        return chain + [nir.Flatten(input_type={"input": np.array(mapped)}, start_dim=0),
                        nir.Affine(weight=flat, bias=b) if b is not None else nir.Linear(weight=flat)]
    conv = nir.Conv1d if len(in_shape) == 2 else nir.Conv2d
    spatial = mapped[1] if len(in_shape) == 2 else mapped[1:]
    return chain + [conv(input_shape=spatial, weight=kernel, stride=geometry["stride"], padding=geometry["padding"],
                         dilation=geometry["dilation"], groups=geometry["groups"], bias=bias)]


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

"""NIR graphs (the Neuromorphic Intermediate Representation, the `nir` package) as btc networks:
`btc compile model.nir --nir-dt 0.001`, or `from_nir(graph_or_path, dt)`.

NIR is continuous time; btc steps by dt. The conventions, which `tests/test_nir.py` holds an
independent NumPy simulation of the NIR graph to:
- Every neuron ODE is integrated by forward Euler at dt, as snnTorch and Norse export it
  (beta = 1 - dt/tau): LIF `v += dt/tau * (v_leak - v + r*I)`. btc's LIF integrates exponentially, so
  its tau is set to -dt/ln(1 - dt/tau), which makes its decay exactly 1 - dt/tau; r goes into the
  incoming weights. Needs dt < tau.
- CubaLIF: first the synaptic current `I += dt/tau_syn * (w_in*S - I)` (a btc Expon synapse of decay
  1 - dt/tau_syn, the factor dt/tau_syn * w_in * r in the weights), then the membrane with the new I.
- IF: `v += dt * r * I` (a btc IF with tau = 1 s). LI: a btc readout, `v += dt/tau * (v_leak - v + r*I)`
  (dt/tau * r in the weights, dt/tau * v_leak in the bias); it must feed an Output.
- Spikes: z = v > v_threshold; then v = v_reset where z (a hard reset, before the next step).
  States start at rest: v = v_leak (LIF, CubaLIF), v_reset (IF), 0 (LI, synaptic currents).
- Edges: Affine and Linear (weight [out, in]), Scale (folded into the weights), Delay (whole steps
  of dt, one value per path), Conv1d, Conv2d, SumPool2d, AvgPool2d and Flatten between two neuron or
  input nodes make one btc projection (btc.frontend.nir_paths composes them): dense, or a convolution
  with its kernel shared across positions and one bias per channel. A pool must read a neuron node's
  spikes; a convolution reads them or their pool. An edge that closes a cycle (a back edge of a
  depth-first walk from the inputs) carries the previous step's spikes (a btc recurrent projection);
  every other edge this step's.
- An Output fed by spiking neurons reads them through a memoryless readout: the weights of the Affine or
  Linear between them (learned), or fixed identity weights. An LI must feed the Output directly.
- Time constants, thresholds, resets and leaks must be the same for every neuron of a node (btc's
  neurons take one value; r and w_in may differ: they are folded into the weights, one value per output
  channel behind a convolution). Nodes hold vectors or (channels, length) / (channels, height, width)
  maps, flat in C order. Any other node (Threshold, CubaLI, I, a subgraph) is refused by name and type.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from btc.errors import BtcError
from btc.frontend.nir_paths import PathMap
from btc.frontend.nir_paths import step as path_step

__all__ = ["from_nir", "back_edges", "walk", "SUPPORTED_NODES"]

SUPPORTED_NODES = ("Input", "Output", "Affine", "Linear", "Scale", "Delay", "Conv1d", "Conv2d", "SumPool2d",
                   "AvgPool2d", "Flatten", "LIF", "CubaLIF", "IF", "LI")
_SPIKING = ("LIF", "CubaLIF", "IF")
_EDGES = ("Affine", "Linear", "Scale", "Delay", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")


def _kind(node) -> str:
    return type(node).__name__


def _uniform(name: str, node, field: str, value) -> float:
    a = np.asarray(value, np.float64).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise BtcError(f"NIR node {name!r} ({_kind(node)}): {field} must hold finite numbers")
    if np.any(a != a[0]):
        raise BtcError(f"NIR node {name!r} ({_kind(node)}): {field} differs between neurons "
                       f"({a.min():g}..{a.max():g}); btc's neurons take one {field} per group")
    return float(a[0])


def _decay_tau(name, node, field, tau, dt) -> tuple[float, float]:
    """(dt/tau, btc's tau in ms whose exponential decay is 1 - dt/tau)."""
    tau = _uniform(name, node, field, tau)
    if not tau > dt:
        raise BtcError(f"NIR node {name!r} ({_kind(node)}): {field} = {tau:g} s must be longer than dt = {dt:g} s "
                       "(forward Euler at dt)")
    a = dt / tau
    return a, -dt * 1000.0 / math.log(1.0 - a)


def _shape(name: str, node) -> tuple:
    """A node's values: (n,), or a map (channels, *positions) that a convolution reads or writes."""
    shape = np.asarray(node.input_type["input"] if _kind(node) != "Input" else node.output_type["output"]).ravel()
    if shape.size not in (1, 2, 3) or np.any(shape < 1):
        raise BtcError(f"NIR node {name!r} ({_kind(node)}) has shape {list(shape)}; btc imports vectors and "
                       "(channels, length) or (channels, height, width) maps")
    return tuple(int(v) for v in shape)


def _size(name: str, node) -> int:
    return math.prod(_shape(name, node))


def _neuron(name: str, node, dt: float):
    """(btc neuron or readout tau, per-neuron gain on incoming currents, offset added to the bias)."""
    from btc.frontend.neurons import IF, LIF, Surrogate
    from btc.frontend.synapses import Delta, Expon

    kind = _kind(node)
    shape = _shape(name, node)
    r = np.broadcast_to(np.asarray(node.r, np.float64), shape).ravel()
    if kind == "LI":
        if math.isclose(_uniform(name, node, "tau", node.tau), dt, rel_tol=1e-9):  # forward Euler forgets all
            return 0.0, r, _uniform(name, node, "v_leak", node.v_leak)
        a, tau = _decay_tau(name, node, "tau", node.tau, dt)
        return tau, a * r, a * _uniform(name, node, "v_leak", node.v_leak)
    spiking = {"theta": _uniform(name, node, "v_threshold", node.v_threshold),
               "v_reset": _uniform(name, node, "v_reset", node.v_reset), "reset": "hard",
               "surrogate": Surrogate("sigmoid", 4.0)}
    try:
        if kind == "IF":
            return IF(tau=1000.0, **spiking), r, 0.0
        v_leak = _uniform(name, node, "v_leak", node.v_leak)
        if kind == "LIF":
            _, tau = _decay_tau(name, node, "tau", node.tau, dt)
            return LIF(tau=tau, v_rest=v_leak, synapse=Delta(), **spiking), r, 0.0
        a_syn, tau_syn = _decay_tau(name, node, "tau_syn", node.tau_syn, dt)
        _, tau_mem = _decay_tau(name, node, "tau_mem", node.tau_mem, dt)
        w_in = np.broadcast_to(np.asarray(node.w_in, np.float64), shape).ravel()
        return LIF(tau=tau_mem, v_rest=v_leak, synapse=Expon(tau=tau_syn), **spiking), a_syn * w_in * r, 0.0
    except BtcError as e:
        raise BtcError(f"NIR node {name!r} ({kind}): {e}") from None


def _paths(graph, start: str, dt: float):
    """Every path from activity node `start` through edge nodes: (target, PathMap: the linear map
    along it, delay in steps)."""
    out = []

    def walk(node_name, m, delay, seen):
        for src, dst in graph.edges:
            if src != node_name:
                continue
            node = graph.nodes[dst]
            kind = _kind(node)
            if kind == "Input":
                raise BtcError(f"NIR graph: an edge leads into the Input {dst!r}")
            if kind not in _EDGES:
                out.append((dst, m, delay))
                continue
            if dst in seen:
                raise BtcError(f"NIR graph: a cycle through {dst!r} has no neuron node on it")
            m2, d2 = m, delay
            if kind == "Delay":  # in seconds: a whole number of steps
                steps = _uniform(dst, node, "delay", node.delay) / dt
                if abs(steps - round(steps)) > 1e-6:
                    raise BtcError(f"NIR node {dst!r} (Delay): {steps * dt:g} s is not a whole number of dt = {dt:g} s")
                d2 = delay + int(round(steps))
            else:
                m2 = path_step(m, dst, node)
            walk(dst, m2, d2, seen | {dst})

    shape = _shape(start, graph.nodes[start])
    walk(start, PathMap(shape, shape), 0, {start})
    return out


def _links(graph, dt: float) -> dict:
    return {n: _paths(graph, n, dt) for n in sorted(graph.nodes)
            if _kind(graph.nodes[n]) in ("Input", "LI") + _SPIKING}


def back_edges(graph, dt: float) -> set:
    """The (source, target) neuron pairs whose edge this import makes one step late."""
    return walk(_links(graph, dt), sorted(n for n, v in graph.nodes.items() if _kind(v) == "Input"))[1]


def walk(links: dict, inputs: list) -> tuple[list, set]:
    """Depth-first from the inputs over {node: [(target, ...)]}: the nodes in a feed-forward order, and
    the back edges, the ones that carry the previous step's output (btc's recurrent projections)."""
    order, state, back = [], {}, set()

    def visit(n):
        state[n] = "open"
        for target, *_ in links.get(n, ()):
            if state.get(target) == "open":
                back.add((n, target))
            elif target not in state:
                visit(target)
        state[n] = "done"
        order.append(n)

    for n in inputs:
        visit(n)
    return order[::-1], back


def _btc_name(name: str, used: set) -> str:
    base = re.sub(r"\W", "_", str(name)) or "node"
    base = base if base[0].isalpha() else f"n_{base}"
    out, k = base, 1
    while out in used:
        k += 1
        out = f"{base}_{k}"
    used.add(out)
    return out


def from_nir(graph, dt: float = 1e-3, loss: str = "cross_entropy", seed: int = 0):
    """A btc Network from a NIR graph (or the path of a .nir file), stepped by `dt` seconds."""
    from btc.frontend.network import Network

    graph = _read(graph)
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise BtcError(f"NIR import: dt must be a positive number of seconds, got {dt!r}")
    for name, node in graph.nodes.items():
        if _kind(node) not in SUPPORTED_NODES:
            raise BtcError(f"NIR node {name!r} is a {_kind(node)}, which btc does not import; supported: "
                           f"{list(SUPPORTED_NODES)}")
    kinds = {n: _kind(v) for n, v in graph.nodes.items()}
    inputs = sorted(n for n, k in kinds.items() if k == "Input")  # a .nir file lists nodes sorted
    outputs = [n for n, k in kinds.items() if k == "Output"]
    if not inputs or len(outputs) != 1:
        raise BtcError(f"NIR graph: btc needs at least one Input and exactly one Output; it has inputs {inputs} "
                       f"and outputs {outputs}")
    net = Network(dt=dt * 1000.0, seed=seed)
    used, names = set(), {}
    for n in inputs:
        names[n] = net.input(_btc_name(n, used), _size(n, graph.nodes[n]))
    links = _links(graph, dt)
    order, back = walk(links, inputs)
    fed = [(src, m, delay) for src, paths in links.items() for dst, m, delay in paths if dst == outputs[0]]
    if len(fed) != 1:
        raise BtcError(f"NIR graph: the Output {outputs[0]!r} must be fed by one node, got {[f[0] for f in fed]}")
    fed, (source, out_map, out_delay) = [fed[0][0]], fed[0]
    identity = out_map.W is None and out_map.b is None and not out_map.structured
    if kinds[source] == "LI" and (not identity or out_delay):
        raise BtcError(f"NIR graph: the LI {source!r} reaches the Output through other nodes; btc's loss reads the "
                       "readout itself (move the Affine, Linear, Scale or Delay before the LI)")
    converted = {}
    for n in order:
        if kinds[n] in _SPIKING:
            neuron, gain, offset = _neuron(n, graph.nodes[n], dt)
            names[n] = net.group(_btc_name(n, used), _size(n, graph.nodes[n]), neuron)
            converted[n] = (gain, offset)
        elif kinds[n] == "LI":
            if n != fed[0] or any(dst != outputs[0] for dst, *_ in links[n]):
                raise BtcError(f"NIR node {n!r} (LI) must feed only the Output: btc's leaky integrators are readouts")
            tau, gain, offset = _neuron(n, graph.nodes[n], dt)
            names[n] = net.readout(_btc_name(n, used), _size(n, graph.nodes[n]), tau=tau)
            converted[n] = (gain, offset)
    unreached = [n for n, k in kinds.items() if k in ("LI",) + _SPIKING and n not in names]
    if unreached:
        raise BtcError(f"NIR graph: {unreached} cannot be reached from the inputs")
    leaked = set()  # an LI's leak term is one bias, on its first projection
    for src in order:
        for dst, m, delay in links.get(src, ()):
            if dst == outputs[0] or kinds[dst] == "Output":
                continue
            gain, offset = converted[dst]
            _project(net, names, src, dst, m, delay, gain, 0.0 if dst in leaked else offset, (src, dst) in back)
            leaked.add(dst)
    if kinds[source] in _SPIKING:  # spikes read by a memoryless readout: the path's weights, else identity
        readout = net.readout(_btc_name(f"{outputs[0]}_readout", used), out_map.width, tau=0.0)
        if identity:
            net.project(names[source], readout, weights=np.eye(out_map.width, dtype=np.float32), bias=False,
                        trainable=False, delay=out_delay)
        else:
            _project(net, names | {outputs[0]: readout}, source, outputs[0], out_map, out_delay,
                     np.ones(out_map.width), 0.0, False)
        net.set_loss(loss, readout)
    else:
        net.set_loss(loss, names[source])
    declared = np.asarray(graph.nodes[outputs[0]].output_type.get("output", [])).ravel()
    if declared.size == 1 and int(declared[0]) != net.size(net.loss.readout):
        raise BtcError(f"NIR graph: the Output {outputs[0]!r} declares {int(declared[0])} values; what feeds it "
                       f"has {net.size(net.loss.readout)}")
    return net


def _project(net, names, src, dst, m: PathMap, delay, gain, offset, recurrent) -> None:
    import dataclasses

    pre, post = net.size(names[src]), net.size(names[dst])
    if m.width != post:
        raise BtcError(f"NIR edge {src!r} -> {dst!r}: the path maps {pre} values to {m.width}, but {dst!r} has {post}")
    if m.structured:
        W, b, spec = _shared(src, dst, m, gain, offset)
        name = net.project(names[src], names[dst], connectivity=spec, weights=W.astype(np.float32),
                           bias=b is not None, recurrent=recurrent, delay=delay, trainable=m.conv is not None)
    else:
        W = np.eye(pre) if m.W is None else m.W
        if W.shape != (pre, post):
            raise BtcError(f"NIR edge {src!r} -> {dst!r}: the weights map {W.shape[0]} to {W.shape[1]} neurons, "
                           f"but the nodes have {pre} and {post}")
        has_bias = m.b is not None or offset != 0.0
        b = ((np.zeros(post) if m.b is None else m.b * gain) + offset) if has_bias else None
        name = net.project(names[src], names[dst], weights=(W * gain).astype(np.float32), bias=has_bias,
                           recurrent=recurrent, delay=delay)
    if b is not None:
        net.projections[name] = dataclasses.replace(net.projections[name], biases=b.astype(np.float32))


def _shared(src, dst, m: PathMap, gain, offset):
    """A convolution's (or a pool's) kernel and per-channel bias with the target's input gain and
    leak offset folded in: they must be one value per output channel."""
    from dataclasses import replace

    spec = m.conv if m.conv is not None else replace(m.pool, in_shape=m.start)
    channels = spec.out_shape()[0] if m.conv is not None else 1
    per = np.asarray(gain, np.float64).reshape(channels, -1)
    if np.any(per != per[:, :1]):
        raise BtcError(f"NIR edge {src!r} -> {dst!r}: the gain of {dst!r} (r, w_in) differs within an output "
                       "channel; a convolution's weights are shared across positions, so btc needs one per channel")
    per = per[:, 0]
    if m.conv is None:
        W = np.asarray([1.0 if m.kernel is None else float(m.kernel[0])]) * per[0]
    else:
        W = m.kernel * per.reshape((-1,) + (1,) * (m.kernel.ndim - 1))
    has_bias = m.bias is not None or offset != 0.0
    if has_bias and m.conv is None:
        raise BtcError(f"NIR edge {src!r} -> {dst!r}: a pool feeding an LI has no bias to carry its leak; put an "
                       "Affine or a convolution on the path")
    b = ((np.zeros(channels) if m.bias is None else m.bias * per) + offset) if has_bias else None
    return W, b, spec


def _read(graph):
    if isinstance(graph, (str, os.PathLike)):
        import nir

        if not os.path.isfile(graph):
            raise BtcError(f"NIR file {os.fspath(graph)!r} does not exist")
        try:
            return nir.read(os.fspath(graph))
        except Exception as e:  # noqa: BLE001 - h5py and nir raise many kinds for a bad file
            raise BtcError(f"{os.fspath(graph)!r} is not a readable NIR file ({type(e).__name__}: {e})") from None
    if not hasattr(graph, "nodes") or not hasattr(graph, "edges"):
        raise BtcError(f"from_nir: expected a nir.NIRGraph or a .nir path, got {type(graph).__name__}")
    return graph

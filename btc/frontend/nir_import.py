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
- Edges: Affine and Linear (weight [out, in]), Scale (folded into the weights) and Delay (whole steps
  of dt, one value per path) between two neuron or input nodes make a btc projection. An edge that
  closes a cycle (a back edge of a depth-first walk from the inputs) carries the previous step's
  spikes (a btc recurrent projection); every other edge this step's.
- An Output fed by spiking neurons reads them through a memoryless readout: the weights of the Affine or
  Linear between them (learned), or fixed identity weights. An LI must feed the Output directly.
- Time constants, thresholds, resets and leaks must be the same for every neuron of a node (btc's
  neurons take one value; r and w_in may differ: they are folded into the weights). Inputs are
  one-dimensional. Any other node (Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, Threshold, CubaLI, I,
  a subgraph) is refused by name and type.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from btc.errors import BtcError

__all__ = ["from_nir", "back_edges", "walk", "SUPPORTED_NODES"]

SUPPORTED_NODES = ("Input", "Output", "Affine", "Linear", "Scale", "Delay", "LIF", "CubaLIF", "IF", "LI")
_SPIKING = ("LIF", "CubaLIF", "IF")
_EDGES = ("Affine", "Linear", "Scale", "Delay")


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


def _size(name: str, node) -> int:
    shape = np.asarray(node.input_type["input"] if _kind(node) != "Input" else node.output_type["output"]).ravel()
    if shape.size != 1:
        raise BtcError(f"NIR node {name!r} ({_kind(node)}) has shape {list(shape)}; btc imports one-dimensional "
                       "inputs and neuron groups (no Flatten or convolutions yet)")
    return int(shape[0])


def _neuron(name: str, node, dt: float):
    """(btc neuron or readout tau, per-neuron gain on incoming currents, offset added to the bias)."""
    from btc.frontend.neurons import IF, LIF, Surrogate
    from btc.frontend.synapses import Delta, Expon

    kind = _kind(node)
    size = _size(name, node)
    r = np.broadcast_to(np.asarray(node.r, np.float64), (size,))
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
        w_in = np.broadcast_to(np.asarray(node.w_in, np.float64), (size,))
        return LIF(tau=tau_mem, v_rest=v_leak, synapse=Expon(tau=tau_syn), **spiking), a_syn * w_in * r, 0.0
    except BtcError as e:
        raise BtcError(f"NIR node {name!r} ({kind}): {e}") from None


def _paths(graph, start: str, dt: float):
    """Every path from activity node `start` through edge nodes: (target, W [pre, post] or None
    for identity, bias or None, delay in steps)."""
    out = []
    node_width = _size(start, graph.nodes[start]) if _kind(graph.nodes[start]) != "Output" else 0

    def walk(node_name, W, b, delay, seen):
        for src, dst in graph.edges:
            if src != node_name:
                continue
            node = graph.nodes[dst]
            kind = _kind(node)
            if kind == "Input":
                raise BtcError(f"NIR graph: an edge leads into the Input {dst!r}")
            if kind not in _EDGES:
                out.append((dst, W, b, delay))
                continue
            if dst in seen:
                raise BtcError(f"NIR graph: a cycle through {dst!r} has no neuron node on it")
            W2, b2, d2 = W, b, delay
            if kind == "Scale":
                s = np.asarray(node.scale, np.float64).ravel()
                if s.size != (node_width if W is None else W.shape[1]):
                    raise BtcError(f"NIR node {dst!r} (Scale): {s.size} scales for "
                                   f"{node_width if W is None else W.shape[1]} values")
                W2 = np.diag(s) if W is None else W * s
                b2 = None if b is None else b * s
            elif kind in ("Affine", "Linear"):
                weight = np.asarray(node.weight, np.float64)
                width = node_width if W is None else W.shape[1]
                if weight.ndim != 2 or weight.shape[1] != width:
                    raise BtcError(f"NIR node {dst!r} ({kind}): weight must be [out, {width}] (its input has {width} "
                                   f"values), got {list(weight.shape)}")
                W2 = weight.T if W is None else W @ weight.T
                b2 = None if b is None else b @ weight.T
                if kind == "Affine":
                    bias = np.asarray(node.bias, np.float64).ravel()
                    if bias.shape != (weight.shape[0],):
                        raise BtcError(f"NIR node {dst!r} (Affine): bias must have {weight.shape[0]} values, got "
                                       f"{bias.size}")
                    b2 = bias + (0.0 if b2 is None else b2)
            else:  # Delay, in seconds: a whole number of steps
                steps = _uniform(dst, node, "delay", node.delay) / dt
                if abs(steps - round(steps)) > 1e-6:
                    raise BtcError(f"NIR node {dst!r} (Delay): {steps * dt:g} s is not a whole number of dt = {dt:g} s")
                d2 = delay + int(round(steps))
            walk(dst, W2, b2, d2, seen | {dst})

    walk(start, None, None, 0, {start})
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
    fed = [(src, W, b, delay) for src, paths in links.items() for dst, W, b, delay in paths if dst == outputs[0]]
    if len(fed) != 1:
        raise BtcError(f"NIR graph: the Output {outputs[0]!r} must be fed by one node, got {[f[0] for f in fed]}")
    fed, (source, out_W, out_b, out_delay) = [fed[0][0]], fed[0]
    if kinds[source] == "LI" and (out_W is not None or out_b is not None or out_delay):
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
        for dst, W, b, delay in links.get(src, ()):
            if dst == outputs[0] or kinds[dst] == "Output":
                continue
            gain, offset = converted[dst]
            _project(net, names, src, dst, W, b, delay, gain, 0.0 if dst in leaked else offset, (src, dst) in back)
            leaked.add(dst)
    if kinds[source] in _SPIKING:  # spikes read by a memoryless readout: the path's weights, else identity
        size = _size(source, graph.nodes[source]) if out_W is None else out_W.shape[1]
        readout = net.readout(_btc_name(f"{outputs[0]}_readout", used), size, tau=0.0)
        if out_W is None and out_b is None:
            net.project(names[source], readout, weights=np.eye(size, dtype=np.float32), bias=False, trainable=False,
                        delay=out_delay)
        else:
            _project(net, names | {outputs[0]: readout}, source, outputs[0], out_W, out_b, out_delay,
                     np.ones(size), 0.0, False)
        net.set_loss(loss, readout)
    else:
        net.set_loss(loss, names[source])
    declared = np.asarray(graph.nodes[outputs[0]].output_type.get("output", [])).ravel()
    if declared.size == 1 and int(declared[0]) != net.size(net.loss.readout):
        raise BtcError(f"NIR graph: the Output {outputs[0]!r} declares {int(declared[0])} values; what feeds it "
                       f"has {net.size(net.loss.readout)}")
    return net


def _project(net, names, src, dst, W, b, delay, gain, offset, recurrent) -> None:
    import dataclasses

    pre, post = net.size(names[src]), net.size(names[dst])
    if W is None:
        if pre != post:
            raise BtcError(f"NIR edge {src!r} -> {dst!r}: no weights between {pre} and {post} neurons")
        W = np.eye(pre)
    if W.shape != (pre, post):
        raise BtcError(f"NIR edge {src!r} -> {dst!r}: the weights map {W.shape[0]} to {W.shape[1]} neurons, "
                       f"but the nodes have {pre} and {post}")
    has_bias = b is not None or offset != 0.0
    name = net.project(names[src], names[dst], weights=(W * gain).astype(np.float32), bias=has_bias,
                       recurrent=recurrent, delay=delay)
    if has_bias:
        bias = (np.zeros(post) if b is None else b * gain) + offset
        net.projections[name] = dataclasses.replace(net.projections[name], biases=bias.astype(np.float32))


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

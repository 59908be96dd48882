"""NIR graphs imported as btc networks: the compiled module's forward pass equals an independent NumPy
simulation of the NIR graph (forward Euler at dt, hard reset, back edges one step late), and the
imported network trains online; unsupported or malformed graphs are refused by name."""
import numpy as np
import pytest

import nir
from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend.nir_import import from_nir
from btc.runtime import load

DT = 1e-3


def _conv(v, node):
    """NIR's Conv1d/Conv2d (PyTorch's cross-correlation) on flat values v [B, n], by shifted slices."""
    w = np.asarray(node.weight, np.float64)
    d, O, groups = w.ndim - 2, w.shape[0], int(node.groups)
    spatial = tuple(np.atleast_1d(node.input_shape))
    x = v.reshape((v.shape[0], w.shape[1] * groups) + spatial)
    stride, dilation = (np.broadcast_to(np.asarray(a).ravel(), (d,)) for a in (node.stride, node.dilation))
    if isinstance(node.padding, str):  # "same" pads (dilated kernel - 1) / 2 on each side, "valid" none
        padding = [dl * (k - 1) // 2 if node.padding == "same" else 0 for dl, k in zip(dilation, w.shape[2:])]
    else:
        padding = np.broadcast_to(np.asarray(node.padding).ravel(), (d,))
    x = np.pad(x, [(0, 0), (0, 0)] + [(int(p), int(p)) for p in padding])
    out = [(x.shape[2 + i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1 for i in range(d)]
    y = np.zeros((v.shape[0], O) + tuple(out))
    Og, Cg = O // groups, w.shape[1]
    for off in np.ndindex(*w.shape[2:]):
        window = tuple(slice(off[i] * dilation[i], off[i] * dilation[i] + stride[i] * (out[i] - 1) + 1, stride[i])
                       for i in range(d))
        patch = x[(slice(None), slice(None)) + window]
        for g in range(groups):
            y[:, g * Og:(g + 1) * Og] += np.einsum("bc...,oc->bo...", patch[:, g * Cg:(g + 1) * Cg],
                                                   w[(slice(g * Og, (g + 1) * Og), slice(None)) + off])
    return (y + np.asarray(node.bias).reshape((1, O) + (1,) * d)).reshape(v.shape[0], -1)


def _pool(v, node, shape):
    """NIR's SumPool2d/AvgPool2d (no padding) of a (C, H, W) map, flat values v [B, n]."""
    k, s = np.asarray(node.kernel_size).ravel(), np.asarray(node.stride).ravel()
    x = v.reshape((v.shape[0],) + tuple(shape))
    out = [(shape[1 + i] - k[i]) // s[i] + 1 for i in range(2)]
    y = sum(x[:, :, a:a + s[0] * (out[0] - 1) + 1:s[0], b:b + s[1] * (out[1] - 1) + 1:s[1]]
            for a in range(k[0]) for b in range(k[1]))
    return (y / (k[0] * k[1]) if type(node).__name__ == "AvgPool2d" else y).reshape(v.shape[0], -1)


class _Flat:
    """A neuron node whose per-neuron arrays read flat (NIR gives a map's neurons its shape)."""

    def __init__(self, node):
        self.node = node

    def __getattr__(self, name):
        return np.ravel(getattr(self.node, name))


def reference(graph, x, dt=DT, recurrent=(), shapes=None):
    """Simulate a NIR graph of Input/Affine/Linear/Scale/Delay/Conv1d/Conv2d/SumPool2d/AvgPool2d/Flatten/
    LIF/CubaLIF/IF/LI nodes, written from NIR's equations: x [T, B, inputs] -> the Output's source node's
    values per step [T, B, n]. `recurrent`: the (source, target) neuron pairs whose edge carries the
    previous step's output; `shapes`: the map each pool reads, by pool node."""
    nodes, edges = graph.nodes, graph.edges
    kind = {n: type(v).__name__ for n, v in nodes.items()}
    neurons = [n for n in nodes if kind[n] in ("LIF", "CubaLIF", "IF", "LI")]
    T, B = x.shape[:2]

    def sources(n):
        """(source activity node, function of its output) for each path into neuron n."""
        found = []
        for src, dst in edges:
            if dst != n:
                continue
            if kind[src] in ("Input", "LIF", "CubaLIF", "IF"):
                found.append((src, lambda v: v, 0))
            else:
                node = nodes[src]
                for s, f, d in sources(src):
                    if kind[src] == "Affine":
                        found.append((s, lambda v, f=f, node=node: f(v) @ node.weight.T + node.bias, d))
                    elif kind[src] == "Linear":
                        found.append((s, lambda v, f=f, node=node: f(v) @ node.weight.T, d))
                    elif kind[src] == "Scale":
                        found.append((s, lambda v, f=f, node=node: f(v) * np.ravel(node.scale), d))
                    elif kind[src] in ("Conv1d", "Conv2d"):
                        found.append((s, lambda v, f=f, node=node: _conv(f(v), node), d))
                    elif kind[src] in ("SumPool2d", "AvgPool2d"):
                        found.append((s, lambda v, f=f, node=node, src=src: _pool(f(v), node, shapes[src]), d))
                    elif kind[src] == "Flatten":
                        found.append((s, f, d))
                    else:  # Delay
                        found.append((s, f, d + int(round(float(node.delay.ravel()[0]) / dt))))
        return found

    into = {n: sources(n) for n in neurons}
    size = {n: len(np.ravel(nodes[n].v_leak if kind[n] != "IF" else nodes[n].r)) for n in neurons}
    v = {n: np.broadcast_to(np.ravel(nodes[n].v_leak) if kind[n] in ("LIF", "CubaLIF") else
                            (np.ravel(nodes[n].v_reset) if kind[n] == "IF" else 0.0), (B, size[n])).astype(np.float64)
         for n in neurons}
    i_syn = {n: np.zeros((B, size[n])) for n in neurons}
    history = {n: [] for n in nodes if kind[n] in ("Input", "LIF", "CubaLIF", "IF")}
    out = []
    order, deps = [], {n: {s for s, _, d in into[n] if s in neurons and d == 0 and (s, n) not in recurrent}
                           for n in neurons}
    while len(order) < len(neurons):  # each neuron after those it reads in the same step
        ready = sorted(n for n in neurons if n not in order and deps[n] <= set(order))
        assert ready, f"a same-step cycle among {set(neurons) - set(order)}"
        order += ready
    for t in range(T):
        for n in nodes:
            if kind[n] == "Input":
                history[n].append(x[t])
        current = {}
        for n in order:
            total = 0.0
            for src, f, d in into[n]:
                lag = d + (1 if (src, n) in recurrent else 0)
                width = size[src] if src in size else x.shape[2]
                total = total + f(history[src][t - lag] if t - lag >= 0 else np.zeros((B, width)))
            node = _Flat(nodes[n])
            if kind[n] == "CubaLIF":
                i_syn[n] = i_syn[n] + dt / node.tau_syn * (node.w_in * total - i_syn[n])
                v[n] = v[n] + dt / node.tau_mem * (node.v_leak - v[n] + node.r * i_syn[n])
            elif kind[n] == "LIF":
                v[n] = v[n] + dt / node.tau * (node.v_leak - v[n] + node.r * total)
            elif kind[n] == "IF":
                v[n] = v[n] + dt * node.r * total
            else:
                v[n] = v[n] + dt / node.tau * (node.v_leak - v[n] + node.r * total)
            if kind[n] != "LI":
                z = (v[n] > node.v_threshold).astype(np.float64)
                history[n].append(z)
                v[n] = np.where(z > 0, node.v_reset, v[n])
            current[n] = v[n]
        source = next(src for src, dst in edges if dst == "output")
        out.append(current[source] if kind[source] == "LI" else history[source][t])
    return np.stack(out)


def ones(n, value):
    return np.full(n, value, np.float64)


def recurrent_graph(rng):
    """Input -> Affine -> CubaLIF (with a Linear self-loop) -> Affine -> LI -> Output."""
    nodes = {
        "input": nir.Input(input_type=np.array([6])),
        "fc1": nir.Affine(weight=rng.normal(0, 2.0, (10, 6)), bias=rng.normal(0, 0.5, 10)),
        "lif1": nir.CubaLIF(tau_syn=ones(10, 0.004), tau_mem=ones(10, 0.01), r=rng.uniform(0.5, 1.5, 10),
                            v_leak=ones(10, 0.0), v_threshold=ones(10, 0.5), v_reset=ones(10, -0.1),
                            w_in=rng.uniform(0.8, 1.2, 10)),
        "rec": nir.Linear(weight=rng.normal(0, 0.8, (10, 10))),
        "fc2": nir.Affine(weight=rng.normal(0, 1.0, (3, 10)), bias=rng.normal(0, 0.1, 3)),
        "li": nir.LI(tau=ones(3, 0.02), r=ones(3, 2.0), v_leak=ones(3, 0.3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "fc2"),
             ("fc2", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), {("lif1", "lif1")}


def deep_graph(rng):
    """Input -> Scale -> Linear -> LIF -> Delay -> Affine -> IF -> Linear -> LIF -> Output (spikes)."""
    nodes = {
        "input": nir.Input(input_type=np.array([5])),
        "scale": nir.Scale(scale=rng.uniform(0.5, 2.0, 5)),
        "w1": nir.Linear(weight=rng.normal(0, 3.0, (8, 5))),
        "lif": nir.LIF(tau=ones(8, 0.005), r=ones(8, 1.0), v_leak=ones(8, 0.1), v_threshold=ones(8, 1.0),
                       v_reset=ones(8, 0.0)),
        "delay": nir.Delay(delay=ones(8, 0.002)),
        "w2": nir.Affine(weight=rng.normal(0, 40.0, (7, 8)), bias=ones(7, 2.0)),
        "if": nir.IF(r=ones(7, 1.0), v_threshold=ones(7, 0.3), v_reset=ones(7, 0.0)),
        "w3": nir.Linear(weight=rng.normal(0, 3.0, (4, 7))),
        "out_lif": nir.LIF(tau=ones(4, 0.003), r=ones(4, 1.0), v_leak=ones(4, 0.0), v_threshold=ones(4, 0.4),
                           v_reset=ones(4, 0.0)),
        "output": nir.Output(output_type=np.array([4])),
    }
    edges = [("input", "scale"), ("scale", "w1"), ("w1", "lif"), ("lif", "delay"), ("delay", "w2"), ("w2", "if"),
             ("if", "w3"), ("w3", "out_lif"), ("out_lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), set()


@pytest.mark.parametrize("build", [recurrent_graph, deep_graph])
def test_imported_graph_runs_like_the_nir_reference(tmp_path, build):
    graph, recurrent = build(np.random.default_rng(0))
    nir.write(str(tmp_path / "model.nir"), graph)  # through the file format, as users hand it over
    net = from_nir(str(tmp_path / "model.nir"), dt=DT)
    compile_network(net, CompileOptions(batch=3, chunk=10), str(tmp_path / "art"))
    model = load(str(tmp_path / "art"))
    x = (np.random.default_rng(1).random((30, 3, graph.nodes["input"].output_type["output"][0])) < 0.3)
    got = model.infer_sequence(x.astype(np.float32), record=True)
    want = reference(graph, x.astype(np.float64), recurrent=recurrent)
    np.testing.assert_allclose(got["readout"], want, rtol=1e-4, atol=1e-4)
    spiking = [k for k in got if k.startswith("spikes.")]
    assert all(got[k].sum() > 0 for k in spiking), {k: got[k].sum() for k in spiking}  # the layers are active
    model.train_sequence(x.astype(np.float32), np.zeros(3, np.int32), lr=0.01)  # and it trains online
    assert any(np.any(model.params[k] != v) for k, v in load(str(tmp_path / "art")).params.items())


def test_unsupported_and_malformed_graphs_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    graph, _ = recurrent_graph(rng)
    odd = dict(graph.nodes, th=nir.Threshold(threshold=np.ones(3)))
    with pytest.raises(BtcError, match="'th' is a Threshold, which btc does not import"):
        from_nir(nir.NIRGraph(nodes=odd, edges=graph.edges, type_check=False))
    varied = dict(graph.nodes)
    varied["lif1"] = nir.CubaLIF(tau_syn=np.linspace(0.004, 0.005, 10), tau_mem=ones(10, 0.01), r=ones(10, 1.0),
                                 v_leak=ones(10, 0.0), v_threshold=ones(10, 0.5))
    with pytest.raises(BtcError, match="'lif1' \\(CubaLIF\\): tau_syn differs between neurons"):
        from_nir(nir.NIRGraph(nodes=varied, edges=graph.edges))
    with pytest.raises(BtcError, match="must be longer than dt"):
        from_nir(graph, dt=0.005)
    (tmp_path / "bad.nir").write_bytes(b"not hdf5")
    with pytest.raises(BtcError, match="not a readable NIR file"):
        from_nir(str(tmp_path / "bad.nir"))


def test_btc_compile_reads_a_nir_file(tmp_path):
    from click.testing import CliRunner

    from btc.tools.cli import main

    graph, _ = recurrent_graph(np.random.default_rng(0))
    nir.write(str(tmp_path / "model.nir"), graph)
    done = CliRunner().invoke(main, ["compile", str(tmp_path / "model.nir"), "--nir-dt", "0.001", "--batch", "4",
                                     "--chunk", "10", "-o", str(tmp_path / "art")])
    assert done.exit_code == 0, done.output
    model = load(str(tmp_path / "art"))
    assert [g["model"] for g in model.abi["groups"]] == ["lif", "readout"] and model.num_classes == 3
    assert model.manifest["model_source"].endswith("model.nir")


def _composed(graph):
    """(source, target) neuron pairs -> the weights and bias between them, as btc's import composes them."""
    from btc.frontend.nir_import import _paths

    out = {}
    for name, node in graph.nodes.items():
        if type(node).__name__ in ("Input", "LIF", "CubaLIF", "IF", "LI"):
            for dst, m, delay in _paths(graph, name, DT):
                out[name, dst] = (m.W, m.b, delay)
    return out


def test_export_then_import_gives_the_same_graph(tmp_path):
    """import -> btc (trained) -> btc export-nir -> the same nodes, the same weights along every path, and
    the same forward pass under the NIR reference simulation."""
    from click.testing import CliRunner

    from btc.tools.cli import main

    rng = np.random.default_rng(0)
    graph, recurrent = recurrent_graph(rng)
    graph.nodes["lif1"] = nir.CubaLIF(tau_syn=ones(10, 0.004), tau_mem=ones(10, 0.01), r=ones(10, 1.0),
                                      v_leak=ones(10, 0.0), v_threshold=ones(10, 0.5), v_reset=ones(10, -0.1))
    graph.nodes["li"] = nir.LI(tau=ones(3, 0.02), r=ones(3, 1.0), v_leak=ones(3, 0.0))
    nir.write(str(tmp_path / "model.nir"), graph)
    runner = CliRunner()
    done = runner.invoke(main, ["compile", str(tmp_path / "model.nir"), "--batch", "3", "--chunk", "10",
                                "-o", str(tmp_path / "art")])
    assert done.exit_code == 0, done.output
    done = runner.invoke(main, ["export-nir", str(tmp_path / "art"), "-o", str(tmp_path / "again.nir")])
    assert done.exit_code == 0, done.output
    again = nir.read(str(tmp_path / "again.nir"))
    for name in ("lif1", "li"):
        a, b = graph.nodes[name], again.nodes[name]
        assert type(a) is type(b)
        for field in ("tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
            if hasattr(a, field):
                np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-6, err_msg=f"{name}.{field}")
    before, after = _composed(graph), _composed(again)
    assert set(before) == set(after)
    for key, (W, b, delay) in before.items():
        if W is None:  # a direct edge (the readout into the Output)
            assert after[key][0] is None, key
            continue
        np.testing.assert_allclose(after[key][0], W, rtol=1e-5, atol=1e-6, err_msg=str(key))
        np.testing.assert_allclose(after[key][1] if after[key][1] is not None else 0, b if b is not None else 0,
                                   rtol=1e-5, atol=1e-6, err_msg=str(key))
    x = (np.random.default_rng(2).random((25, 3, 6)) < 0.3).astype(np.float64)
    np.testing.assert_allclose(reference(again, x, recurrent=recurrent), reference(graph, x, recurrent=recurrent),
                               rtol=1e-6, atol=1e-6)
    # trained parameters go out too; a btc-only feature is refused by name
    model = load(str(tmp_path / "art"))
    x32 = x.astype(np.float32)
    model.train_sequence(x32, np.zeros(3, np.int32), lr=0.05)
    model.save_checkpoint(str(tmp_path / "trained.npz"))
    done = runner.invoke(main, ["export-nir", str(tmp_path / "art"), "--checkpoint", str(tmp_path / "trained.npz"),
                                "-o", str(tmp_path / "trained.nir")])
    assert done.exit_code == 0, done.output
    trained = nir.read(str(tmp_path / "trained.nir"))
    assert not np.allclose(trained.nodes["input_to_lif1"].weight, again.nodes["input_to_lif1"].weight)
    from btc.frontend.nir_export import to_nir
    from btc.frontend.zoo import recurrent_lif

    with pytest.raises(BtcError, match="resets by subtraction"):
        to_nir(recurrent_lif(4, 5, 2))


def test_an_affine_into_the_output_becomes_the_readout_and_round_trips(tmp_path):
    """A spiking node -> Affine -> Output: a memoryless readout with those (learned) weights. And the
    deep graph (Scale, Delay, IF, a spiking output) exported again runs like the original, before and after
    training (the exported trained graph equals the trained module under the reference)."""
    from btc.frontend.nir_export import to_nir

    graph, _ = deep_graph(np.random.default_rng(0))
    nodes = dict(graph.nodes, head=nir.Affine(weight=np.random.default_rng(3).normal(0, 1, (3, 4)),
                                              bias=np.array([0.1, -0.2, 0.3])),
                 output=nir.Output(output_type=np.array([3])))
    edges = [e for e in graph.edges if e != ("out_lif", "output")] + [("out_lif", "head"), ("head", "output")]
    headed = nir.NIRGraph(nodes=nodes, edges=edges)
    net = from_nir(headed)
    compile_network(net, CompileOptions(batch=3, chunk=10), str(tmp_path / "art"))
    model = load(str(tmp_path / "art"))
    x = (np.random.default_rng(1).random((30, 3, 5)) < 0.3).astype(np.float32)
    spikes = reference(graph, x.astype(np.float64))  # the spiking output of the graph without the head
    np.testing.assert_allclose(model.infer_sequence(x)["readout"], spikes @ nodes["head"].weight.T + nodes["head"].bias,
                               rtol=1e-5, atol=1e-5)
    model.train_sequence(x, np.zeros(3, np.int32), lr=0.05)
    trained = to_nir(net, model.params)
    nir.write(str(tmp_path / "trained.nir"), trained)
    again = nir.read(str(tmp_path / "trained.nir"))
    np.testing.assert_allclose(reference(again, x.astype(np.float64)), model.infer_sequence(x)["readout"],
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(BtcError, match="LI 'li' reaches the Output through other nodes"):
        rec, _ = recurrent_graph(np.random.default_rng(0))
        from_nir(nir.NIRGraph(nodes=dict(rec.nodes, s=nir.Scale(scale=np.ones(3))),
                              edges=[e for e in rec.edges if e != ("li", "output")] + [("li", "s"), ("s", "output")]))


def test_lags_nir_cannot_express_are_refused():
    from btc.frontend import Network
    from btc.frontend.neurons import LIF
    from btc.frontend.nir_export import to_nir

    net = Network(dt=1.0)
    net.input("x", 3)
    net.group("a", 4, LIF(reset="hard"))
    net.group("b", 4, LIF(reset="hard"))
    net.project("x", "a")
    net.project("a", "b", recurrent=True)  # one step late, but on no cycle
    net.readout("out", 2)
    net.project("b", "out")
    net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match="NIR cannot say which edge of a cycle is late"):
        to_nir(net)


def conv_graph(rng):
    """Input (2, 8, 8) -> Conv2d (padding 1) -> CubaLIF maps (r per channel) -> SumPool2d -> Conv2d
    (padding "same", a 2 ms delay) -> LIF maps -> AvgPool2d -> Flatten -> Affine -> LI -> Output: an N-MNIST-style CSNN."""
    def maps(shape, **values):
        return {k: np.broadcast_to(np.asarray(v, np.float64), shape).copy() for k, v in values.items()}

    r1 = np.broadcast_to(np.array([1.0, 1.5, 0.8, 1.2])[:, None, None], (4, 8, 8))
    nodes = {
        "input": nir.Input(input_type=np.array([2, 8, 8])),
        "conv1": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1.5, (4, 2, 3, 3)), stride=1, padding=1,
                            dilation=1, groups=1, bias=rng.normal(0, 0.3, 4)),
        "lif1": nir.CubaLIF(**maps((4, 8, 8), tau_syn=0.004, tau_mem=0.01, v_leak=0.0, v_threshold=0.3,
                                   v_reset=0.0, w_in=1.0), r=r1),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 1.0, (6, 4, 3, 3)), stride=1, padding="same",
                            dilation=1, groups=1, bias=np.zeros(6)),
        "delay2": nir.Delay(delay=np.full((6, 4, 4), 0.002)),
        "lif2": nir.LIF(**maps((6, 4, 4), tau=0.005, r=1.0, v_leak=0.0, v_threshold=0.3, v_reset=0.0)),
        "pool2": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([6, 2, 2])}, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(0, 2.0, (5, 24)), bias=rng.normal(0, 0.1, 5)),
        "li": nir.LI(tau=ones(5, 0.02), r=ones(5, 1.0), v_leak=ones(5, 0.0)),
        "output": nir.Output(output_type=np.array([5])),
    }
    edges = [("input", "conv1"), ("conv1", "lif1"), ("lif1", "pool1"), ("pool1", "conv2"), ("conv2", "delay2"),
             ("delay2", "lif2"),
             ("lif2", "pool2"), ("pool2", "flat"), ("flat", "fc"), ("fc", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), {"pool1": (4, 8, 8), "pool2": (6, 4, 4)}


def test_a_convolutional_graph_imports_trains_and_round_trips(tmp_path):
    """Conv2d, pools, Flatten imported as convolutions with shared kernels: the compiled module runs like
    the NIR reference (whose convolution and pools are written with NumPy slices), trains online with
    its kernels shared, and exports back to Conv2d / pool / Flatten / Affine nodes that run alike."""
    from btc.frontend.nir_export import to_nir

    graph, shapes = conv_graph(np.random.default_rng(0))
    nir.write(str(tmp_path / "conv.nir"), graph)
    net = from_nir(str(tmp_path / "conv.nir"), dt=DT)
    kinds = {p.name: (p.connectivity.geometry["kind"] if p.connectivity is not None else "dense")
             for p in net.projections.values()}
    assert sorted(kinds.values()) == ["conv", "conv", "conv"], kinds  # pool, flatten, affine: a whole-map kernel
    assert {k: v.shape for k, v in net.init_params().items() if k.endswith(".W")} == {
        "input_to_lif1.W": (72,), "lif1_to_lif2.W": (216,), "lif2_to_li.W": (120,)}
    compile_network(net, CompileOptions(batch=2, chunk=10), str(tmp_path / "art"))
    model = load(str(tmp_path / "art"))
    x = (np.random.default_rng(1).random((20, 2, 128)) < 0.3).astype(np.float32)
    got = model.infer_sequence(x, record=True)
    np.testing.assert_allclose(got["readout"], reference(graph, x.astype(np.float64), shapes=shapes),
                               rtol=1e-4, atol=1e-4)
    assert got["spikes.lif1"].sum() > 0 and got["spikes.lif2"].sum() > 0
    model.train_sequence(x, np.array([1, 3], np.int32), lr=0.05)
    assert not np.allclose(model.params["lif1_to_lif2.W"], net.init_params()["lif1_to_lif2.W"])
    trained = to_nir(net, model.params)
    assert [type(trained.nodes[n]).__name__ for n in ("input_to_lif1", "lif1_to_lif2", "lif1_to_lif2_1",
                                                         "lif1_to_lif2_delay", "lif2_to_li", "lif2_to_li_1",
                                                         "lif2_to_li_2")] == [
        "Conv2d", "SumPool2d", "Conv2d", "Delay", "AvgPool2d", "Flatten", "Affine"]
    nir.write(str(tmp_path / "trained.nir"), trained)
    again = nir.read(str(tmp_path / "trained.nir"))
    again_shapes = {"lif1_to_lif2": (4, 8, 8), "lif2_to_li": (6, 4, 4)}
    np.testing.assert_allclose(reference(again, x.astype(np.float64), shapes=again_shapes),
                               model.infer_sequence(x)["readout"], rtol=1e-4, atol=1e-4)


def test_convolutions_nir_paths_compose_or_are_refused():
    graph, _ = conv_graph(np.random.default_rng(0))
    nodes = dict(graph.nodes, fc2=nir.Linear(weight=np.ones((4 * 64, 4 * 64))))
    edges = [e for e in graph.edges if e != ("conv1", "lif1")] + [("conv1", "fc2"), ("fc2", "lif1")]
    with pytest.raises(BtcError, match="'fc2' \\(Linear\\): follows a convolution"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    nodes = dict(graph.nodes, lif1=nir.CubaLIF(tau_syn=np.full((4, 8, 8), 0.004), tau_mem=np.full((4, 8, 8), 0.01),
                                               r=np.random.default_rng(0).uniform(1, 2, (4, 8, 8)),
                                               v_leak=np.zeros((4, 8, 8)), v_threshold=np.full((4, 8, 8), 0.3)))
    with pytest.raises(BtcError, match="the gain of 'lif1' \\(r, w_in\\) differs within an output channel"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    nodes = dict(graph.nodes, pool1=nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]),
                                                  padding=np.array([0, 0])))
    with pytest.raises(BtcError, match="'pool1' \\(SumPool2d\\).*pool windows overlap"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    strided = graph.nodes["conv2"]
    nodes = dict(graph.nodes, conv2=nir.Conv2d(input_shape=(4, 4), weight=strided.weight, stride=2, padding="same",
                                               dilation=1, groups=1, bias=strided.bias))
    with pytest.raises(BtcError, match="'conv2' \\(Conv2d\\): padding 'same' keeps the map's size"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    nodes = dict(graph.nodes, conv2=nir.Conv2d(input_shape=(5, 5), weight=strided.weight, stride=1, padding=1,
                                               dilation=1, groups=1, bias=strided.bias))
    with pytest.raises(BtcError, match=r"'conv2' \(Conv2d\): input_shape \[5, 5\] differs from the map it reads, "
                                       r"\[4, 4\]"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    # a Scale between a pool and a convolution (a mean pool written as sum and scale) scales the kernel
    nodes = dict(graph.nodes, s=nir.Scale(scale=np.full((4, 4, 4), 0.25)))
    edges = [e for e in graph.edges if e != ("pool1", "conv2")] + [("pool1", "s"), ("s", "conv2")]
    scaled = from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)).init_params()
    np.testing.assert_allclose(scaled["lif1_to_lif2.W"], 0.25 * from_nir(graph).init_params()["lif1_to_lif2.W"],
                               rtol=1e-6)

"""The online-algorithm family (D-RTRL, hybrid plans, learned per-neuron parameters, pp-prop's
options, in-module update schedules) against jax.grad and the plain-JAX formulas of pp-prop.md."""

import numpy as np
import pytest

import oracles
from btc.driver import CompileOptions, compile_network
from data import sequence
from nets import EXACT_NETWORKS, NETWORKS

STEPS, BATCH = 13, 3


def _rel_err(got: dict, want: dict, keys=None) -> dict:
    return {k: float(np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-12))
            for k in (keys or want)}


def _grads(model, x, target, mask) -> dict:
    model.zero_grads()
    model.train_sequence(x, target, mask)
    return model.grads


@pytest.mark.parametrize("name", sorted(EXACT_NETWORKS))
def test_d_rtrl_equals_bptt_where_every_temporal_path_stays_in_a_neuron(compiled, name):
    """pp-prop.md section 5: one layer, external input, no recurrence, memoryless readout."""
    net = EXACT_NETWORKS[name]()
    x, target, mask = sequence(net, BATCH, STEPS, rate=0.5)
    model = compiled(name, "d-rtrl", 5, BATCH)
    assert model.infer_sequence(x, record=True)["spikes.h"].sum() >= 5, "the layer must spike"
    want = oracles.bptt_grads(net, net.init_params(), x, target, mask)
    errors = _rel_err(_grads(model, x, target, mask), want)
    assert max(errors.values()) < 1e-5, errors
    assert all(np.any(want[k] != 0) for k in want)


@pytest.mark.parametrize("name", sorted(EXACT_NETWORKS))
def test_exact_traces_equal_bptt_under_pp_prop(compiled, name):
    """Biases and learned per-neuron parameters have exact traces under pp-prop too."""
    net = EXACT_NETWORKS[name]()
    x, target, mask = sequence(net, BATCH, STEPS, rate=0.5)
    # the trace decay approximates only the weights' traces: the oracle tests' module, one compile
    got = _grads(compiled(name, "pp-prop", 5, BATCH, decay=0.8), x, target, mask)
    want = oracles.bptt_grads(net, net.init_params(), x, target, mask)
    exact = [k for k in want if not k.endswith(".W")]
    assert any(not k.startswith("h_to_out") for k in exact), "a hidden bias or per-neuron parameter"
    errors = _rel_err(got, want, exact)
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("name", ["recurrent_expon", "three_layers", "shared_input_mse"])
def test_d_rtrl_equals_its_formula_where_it_is_not_bptt(compiled, name):
    """With recurrence, several layers or a leaky readout D-RTRL is not BPTT (by design); it must
    still be exactly the D-RTRL of pp-prop.md, written plainly in tests/oracles.py."""
    net = NETWORKS[name]()
    x, target, mask = sequence(net, BATCH, STEPS)
    got = _grads(compiled(name, "d-rtrl", 5, BATCH), x, target, mask)
    want = oracles.online_grads(net, net.init_params(), x, target, mask, dense=tuple(net.projections))
    errors = _rel_err(got, want)
    assert max(errors.values()) < 1e-4, errors
    bptt = oracles.bptt_grads(net, net.init_params(), x, target, mask)
    cos = oracles.cosine(got, bptt)
    norm = np.linalg.norm(np.concatenate([v.ravel() for v in got.values()])) / \
        np.linalg.norm(np.concatenate([v.ravel() for v in bptt.values()]))
    print(f"\n{name}: D-RTRL vs BPTT cosine {cos:.3f}, norm ratio {norm:.3f}")
    assert max(_rel_err(got, bptt).values()) > 1e-3, "these networks must not be in the exact setting"


def test_hybrid_override_gives_each_projection_its_algorithm(compiled):
    net = NETWORKS["shared_input_mse"]()
    dense = ("x_to_a", "a_to_b")
    model = compiled("shared_input_mse", "pp-prop", 5, BATCH, decay=0.8,
                     projection_algorithms={p: "d-rtrl" for p in dense})
    plan = model.abi["trace_plan"]["projections"]
    assert plan == {p: ("d-rtrl" if p in dense else "pp-prop") for p in net.projections}
    x, target, mask = sequence(net, BATCH, STEPS)
    got = _grads(model, x, target, mask)
    want = oracles.online_grads(net, net.init_params(), x, target, mask, alpha=0.8, correction=True, dense=dense)
    errors = _rel_err(got, want)
    assert max(errors.values()) < 1e-4, errors
    pure = oracles.online_grads(net, net.init_params(), x, target, mask, alpha=0.8, correction=True)
    assert _rel_err(got, pure)["x_to_a.W"] > 1e-2, "the overridden projection must differ from pp-prop"


def test_hybrid_budget_plan_and_buffer_sizes(tmp_path):
    """The budget admits exactly the cheapest D-RTRL trace; the manifest's plan equals the module's
    real trace buffers."""
    net = NETWORKS["shared_input_mse"]()
    base = compile_network(net, CompileOptions(algorithm="pp-prop", batch=2, chunk=4), str(tmp_path / "pp"))
    pp_bytes = base["abi"]["trace_plan"]["trace_bytes"]
    states = {g: len(oracles._names(net, g)) for g in net.groups}
    dense = {p: 4 * 2 * net.size(q.pre) * net.size(q.post) * states[q.post] for p, q in net.projections.items()}
    cheapest = min(dense, key=dense.get)
    m = compile_network(net, CompileOptions(algorithm="hybrid", batch=2, chunk=4,
                                            trace_memory_budget=pp_bytes + dense[cheapest]), str(tmp_path / "hy"))
    chosen = [p for p, a in m["abi"]["trace_plan"]["projections"].items() if a == "d-rtrl"]
    assert chosen == [cheapest]
    for manifest in (base, m):
        layout = sum(e["bytes"] for e in manifest["abi"]["layout"] if e["role"] == "trace")
        assert manifest["abi"]["trace_plan"]["trace_bytes"] == layout
    assert m["abi"]["trace_plan"]["trace_bytes"] <= pp_bytes + dense[cheapest]


@pytest.mark.parametrize("options,alphas", [({"decay_pre": 0.7, "decay_post": 0.5}, (0.7, 0.5)),
                                            ({"rank": 3}, (0.5, 0.5))])
def test_pp_prop_decay_options(compiled, options, alphas):
    net = NETWORKS["recurrent_expon"]()
    x, target, mask = sequence(net, BATCH, STEPS)
    got = _grads(compiled("recurrent_expon", "pp-prop", 5, BATCH, **options), x, target, mask)
    want = oracles.online_grads(net, net.init_params(), x, target, mask, alpha=alphas[0], alpha_post=alphas[1],
                                correction=True)
    assert max(_rel_err(got, want).values()) < 1e-4


def test_bias_correction_counts_time_steps_whatever_the_chunk(compiled):
    """The same sequence in chunks of 1, 7 and T steps gives the same corrected gradient."""
    net = NETWORKS["recurrent_expon"]()
    x, target, mask = sequence(net, BATCH, STEPS)
    grads = [_grads(compiled("recurrent_expon", "pp-prop", k, BATCH, decay=0.8), x, target, mask)
             for k in (1, 7, STEPS)]
    for other in grads[1:]:
        for k in grads[0]:
            np.testing.assert_allclose(other[k], grads[0][k], rtol=1e-6, atol=1e-9, err_msg=k)
    uncorrected = _grads(compiled("recurrent_expon", "pp-prop", 7, BATCH, decay=0.8, bias_correction=False),
                         x, target, mask)
    assert max(_rel_err(uncorrected, grads[0]).values()) > 1e-2, "the correction must change the gradient"


def _adam_reference(p, g, lr, clip, wd, b1=0.9, b2=0.999, eps=1e-8):
    """One AdamW step from zero moments, after clipping the global norm of all gradients; the decay
    applies to weights, not to biases."""
    norm = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in g.values()))
    scale = clip / max(norm, clip)
    out = {}
    for k in p:
        gk = g[k] * scale
        m, u = (1 - b1) * gk, (1 - b2) * gk * gk
        decay = wd if k.endswith(".W") else 0.0  # weights only
        out[k] = p[k] - lr * ((m / (1 - b1)) / (np.sqrt(u / (1 - b2)) + eps) + decay * p[k])
    return out


def test_apply_update_clips_and_decays(compiled):
    net = NETWORKS["one_layer_delta"]()
    x, target, mask = sequence(net, BATCH, STEPS)
    model = compiled("one_layer_delta", "pp-prop", 5, BATCH, grad_clip=0.01, weight_decay=0.1)
    p0, g = model.params, _grads(model, x, target, mask)
    norm = np.sqrt(sum(float(np.sum(v ** 2)) for v in g.values()))
    assert norm > 0.01, "the clip must bind for this test to mean anything"
    model.apply_update(0.05)
    want = _adam_reference(p0, g, 0.05, 0.01, 0.1)
    for k, v in model.params.items():
        np.testing.assert_allclose(v, want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert all(not np.any(v) for v in model.grads.values()), "an update zeroes the gradients"


def test_update_every_k_steps_inside_the_module(compiled):
    """update_every=4 with chunks of 5 (updates mid-chunk, a padded last chunk) equals updating
    from the runtime after every 4-step chunk."""
    net = NETWORKS["recurrent_expon"]()
    x, target, mask = sequence(net, BATCH, 12)
    opts = {"decay": 0.8, "grad_clip": 0.5, "weight_decay": 0.01}
    continual = compiled("recurrent_expon", "pp-prop", 5, BATCH, update_every=4, **opts)
    stepped = compiled("recurrent_expon", "pp-prop", 4, BATCH, **opts)
    continual.train_sequence(x, target, mask, lr=0.01)
    for c in range(3):
        part = slice(4 * c, 4 * c + 4)
        stepped.train_sequence(x[part], target[part], mask[part], lr=0.01, reset=c == 0)
    p0 = net.init_params()
    assert any(np.abs(v - p0[k]).max() > 1e-4 for k, v in continual.params.items()), "it must have learned"
    for k, v in stepped.params.items():
        np.testing.assert_allclose(continual.params[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    with pytest.raises(Exception, match="pass lr="):
        continual.train_sequence(x, target, mask)


def test_manifest_records_the_plan(compiled):
    model = compiled("shared_input_mse", "pp-prop", 5, BATCH)
    plan = model.abi["trace_plan"]
    assert {t["kind"] for t in plan["traces"]} == {"pre", "post", "bias"}
    # every planned trace is a buffer of the module, of the planned bytes
    buffers = {}
    for e in model.abi["layout"]:
        if e["role"] == "trace":
            name = e["name"].rsplit("[", 1)[0]
            buffers[name] = buffers.get(name, 0) + e["bytes"]
    assert buffers == {t["name"]: t["bytes"] for t in plan["traces"]}

"""Every registered pass, exercised by name: what it reads, what it must produce.

The Jacobian pass is checked numerically: its regions, evaluated by a small numpy interpreter,
must equal jax.jacfwd of the JAX simulator's neuron step at random states.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from iree.compiler import ir

from btc.dialect import attrs_of, btc_ops, parse_module
from btc.errors import BtcError
from btc.frontend import simulate as sim
from btc.frontend.emit import emit_module
from btc.passes import PASSES, default_pipeline, get_pass, pipeline_text, run_pipeline
from btc.passes.check_lowered import leftover_btc_ops
from btc.passes.lowering.text import _constants
from nets import NETWORKS
from region_eval import evaluate

EXERCISED = set()


def _module(name="recurrent_expon", upto=None, **options):
    net = NETWORKS[name]()
    module = parse_module(emit_module(net, batch=2, chunk=4))
    passes = default_pipeline(**options)
    if upto:
        passes = passes[:[p.name for p in passes].index(upto) + 1]
    run_pipeline(module, passes)
    EXERCISED.update(p.name for p in passes)
    return net, module


def _ops(module, name):
    return [op for op in btc_ops(module) if op.name == name]


def test_verify_rejects_a_malformed_op():
    text = emit_module(NETWORKS["one_layer_delta"](), 2, 4).replace('surrogate = "sigmoid"', 'surrogate = "gauss"')
    with pytest.raises(BtcError, match=r"btc-verify: btc.spike: attribute 'surrogate' is 'gauss'"):
        run_pipeline(parse_module(text), [get_pass("btc-verify")])
    EXERCISED.add("btc-verify")


def test_analyse_orders_groups_and_marks_binary_signals():
    _, module = _module("three_layers", upto="btc-analyse")
    order = [ir.StringAttr(a).value for a in ir.ArrayAttr(module.operation.attributes["btc.order"])]
    assert order == ["h1", "h2", "h3", "out"]
    binary = {attrs_of(op)["sym_name"]: attrs_of(op)["btc.binary"] for op in _ops(module, "btc.group")}
    assert binary == {"h1": True, "h2": True, "h3": True}
    (readout,) = _ops(module, "btc.readout")
    assert attrs_of(readout)["btc.binary"] is False
    _, module = _module("shared_input_mse", upto="btc-analyse")
    (x,) = _ops(module, "btc.input")
    assert attrs_of(x)["btc.binary"] is True


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_derived_jacobians_equal_jacfwd(name):
    net, module = _module(name, upto="btc-derive-jacobians")
    rng = np.random.default_rng(0)
    for op in _ops(module, "btc.derivatives"):
        g = attrs_of(op)["group"]
        group = net.groups[g]
        if not hasattr(group, "neuron"):
            continue
        names = group.neuron.state_names(net.dt)
        learned, ports = group.trainable, group.neuron.ports
        S, P, K = len(names), len(learned), len(ports)

        def step(hv, yv, qv, group=group, names=names, learned=learned, ports=ports):
            new = sim.neuron_step(group.neuron, net.dt, dict(zip(names, hv)), dict(zip(ports, yv)),
                                  dict(zip(learned, qv)))
            return jnp.stack([new[n] for n in names])

        def spike(hv, qv, group=group, names=names, learned=learned):
            return sim.spike_of(group.neuron, net.dt, dict(zip(names, hv)), dict(zip(learned, qv)))

        # compiled once per group: the same derivatives as eager JAX, for 20 samples
        step_and_jacobians = jax.jit(lambda hv, yv, qv: (step(hv, yv, qv), jax.jacfwd(step, (0, 1, 2))(hv, yv, qv)))
        spike_and_grads = jax.jit(lambda hv, qv: (spike(hv, qv), jax.grad(spike, (0, 1))(hv, qv)))
        for _ in range(20):
            h = np.array([rng.normal(*_STATE_SCALE.get((type(group.neuron).__name__, n), (0.6, 0.6))) for n in names])
            if "ref" in names:
                # ref = 1 is a tie of max(ref - 1, 0), where JAX splits the derivative 0.5/0.5
                h[names.index("ref")] = rng.choice([0.0, 2.0, 3.0])
            y = rng.normal(0.0, 1.0, K)
            # learned parameters near their model values (a threshold must stay above v_reset)
            q = np.array([group.neuron.param({}, n) * rng.uniform(0.7, 1.3) for n in learned])
            out = evaluate(op.regions[0].blocks[0], list(h) + list(y) + list(q))
            D = np.array(out[S:S + S * S]).reshape(S, S)
            Df = np.array(out[S + S * S:S + S * S + K * S]).reshape(K, S)
            Dp = np.array(out[S + S * S + K * S:]).reshape(P, S)

            hv, yv, qv = (jnp.asarray(a, jnp.float32) for a in (h, y, q))
            new, (dh, dy, dq) = step_and_jacobians(hv, yv, qv)
            np.testing.assert_allclose(out[:S], new, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(D, dh, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(Df, dy.T, rtol=1e-4, atol=1e-5)
            if P:
                np.testing.assert_allclose(Dp, dq.T, rtol=1e-4, atol=1e-5)
            s_out = evaluate(op.regions[1].blocks[0], list(h) + list(q))
            s, (ds_dh, ds_dq) = spike_and_grads(hv, qv)
            np.testing.assert_allclose(s_out[0], s, rtol=1e-6)  # a spike, or a synapse's output
            np.testing.assert_allclose(s_out[1:1 + S], ds_dh, rtol=1e-4, atol=1e-6)
            if P:
                np.testing.assert_allclose(s_out[1 + S:], ds_dq, rtol=1e-4, atol=1e-6)


# random states where a model lives (mean, std), e.g. Izhikevich's mV scale; default N(0.6, 0.6)
_STATE_SCALE = {("Izhikevich", "v"): (-50.0, 30.0), ("Izhikevich", "u"): (-10.0, 5.0)}


def test_derive_rejects_an_op_it_cannot_differentiate():
    text = emit_module(NETWORKS["one_layer_delta"](), 2, 4)
    text = text.replace("arith.mulf %t11, %t12", "math.sin %t11", 1)
    module = parse_module(text)
    with pytest.raises(BtcError, match=r"group @h \(dynamics\): cannot differentiate math.sin"):
        run_pipeline(module, default_pipeline()[:3])


def test_plan_traces_shares_presynaptic_traces():
    _, module = _module("shared_input_mse", upto="btc-plan-traces")
    traces = {attrs_of(op)["sym_name"]: attrs_of(op) for op in _ops(module, "btc.trace")}
    # x feeds a and b but has one trace; a's spikes are read this step (a->b, a->out), b's now and at t-1
    assert sorted(t for t in traces if traces[t]["kind"] == "pre") == ["eps_x_a_0", "eps_x_b_0", "eps_x_b_1",
                                                                       "eps_x_x_0"]
    assert traces["eps_f_a"]["num_states"] == 2 and traces["eps_f_b"]["num_states"] == 1
    assert traces["e_b_out"]["kind"] == "bias" and traces["e_b_out"]["decay"] == 1.0
    _, module = _module("shared_input_mse", upto="btc-plan-traces", algorithm="bptt")
    assert not _ops(module, "btc.trace")


def test_rewrite_orders_learning_signals_before_updates():
    _, module = _module("three_layers", upto="btc-rewrite-online")
    (schedule,) = _ops(module, "btc.schedule")
    steps = [(op.operation.name, attrs_of(op)) for op in schedule.regions[0].blocks[0].operations]
    signals = [a["group"] for n, a in steps if n == "btc.learning_signal"]
    assert signals == ["out", "h3", "h2", "h1"]
    last_signal = max(i for i, (n, _) in enumerate(steps) if n == "btc.learning_signal")
    first_grad = min(i for i, (n, _) in enumerate(steps) if n == "btc.accumulate_grad")
    assert last_signal < first_grad
    assert sum(n == "btc.accumulate_grad" for n, _ in steps) == 7


@pytest.mark.parametrize("algorithm", ["pp-prop", "bptt"])
def test_lowering_leaves_only_upstream_ops(algorithm):
    _, module = _module("recurrent_expon", algorithm=algorithm)
    assert leftover_btc_ops(module) == []
    text = str(module)
    training = ("train_chunk",) if algorithm == "pp-prop" else ("bptt_forward_step", "bptt_backward_step")
    for fn in training + ("infer_chunk", "record_step", "reset_state", "apply_update", "get_params", "set_params"):
        assert f"func.func @{fn}" in text
    assert "scf.for" in text and "util.global private mutable @p0" in text


def test_constant_jacobian_entries_are_splats_not_generic_outputs():
    # recurrent_expon's neuron (LIF + exponential synapse) has constant entries in its state Jacobian:
    # every generic output must vary; the constants become fills (each generic output is written whole)
    _, module = _module("recurrent_expon")
    # each generic's body by itself: the printer reuses SSA names in sibling regions
    bodies = re.findall(r"\^bb0[^\n]*\n(.*?)linalg\.yield ([^:\n]*) :", str(module), re.S)
    assert bodies
    for body, yielded in bodies:
        constants = set(re.findall(r"(%[\w]+) = arith\.constant [-+0-9.e]+ : f32", body))
        for name, a, b in re.findall(r"(%[\w]+) = arith\.(?:addf|subf|mulf|divf) (%[\w]+), (%[\w]+) : f32", body):
            if a in constants and b in constants:  # (in order: a product of such products is caught too)
                constants.add(name)
        assert not constants & set(yielded.replace(" ", "").split(",")), (yielded, body)


def test_map_folds_only_exact_ieee_arithmetic_of_constants():
    lines = ['%r1 = "arith.constant"() {value = 0.818730771 : f32} : () -> f32', "%r2 = arith.constant 1.0 : f32",
             '%r3 = "arith.mulf"(%r1, %r2) {} : (f32, f32) -> f32',
             '%r4 = "arith.mulf"(%r3, %r1) {fastmath = #arith.fastmath<none>} : (f32, f32) -> f32',
             "%r5 = arith.addf %r4, %a : f32", "%r6 = arith.subf %r4, %r2 : f32",
             '%r7 = "arith.mulf"(%r3, %r1) {fastmath = #arith.fastmath<fast>} : (f32, f32) -> f32',
             '%r8 = "math.exp"(%r1) {} : (f32) -> f32']
    known = _constants(lines)
    assert set(known) == {"%r1", "%r2", "%r3", "%r4", "%r6"}
    assert known["%r4"] == np.float32(0.818730771) * np.float32(0.818730771)
    assert known["%r6"] == known["%r4"] - np.float32(1.0)


def test_check_lowered_names_leftover_ops():
    _, module = _module("one_layer_delta", upto="btc-rewrite-online")
    with pytest.raises(BtcError, match=r"btc-check-lowered: .* btc op\(s\) were not lowered: \['btc.accumulate_bias_grad'"):
        run_pipeline(module, [get_pass("btc-check-lowered")])
    EXERCISED.add("btc-check-lowered")


def test_dump_ir_after_all_writes_every_pass(tmp_path):
    net = NETWORKS["one_layer_delta"]()
    module = parse_module(emit_module(net, 2, 4))
    passes = default_pipeline()
    run_pipeline(module, passes, str(tmp_path))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["00-input.mlir"] + [f"{i:02d}-{p.name}.mlir" for i, p in enumerate(passes, 1)]
    assert "btc.derivatives" in (tmp_path / "03-btc-derive-jacobians.mlir").read_text()
    assert pipeline_text(passes).startswith("btc-verify,btc-analyse,btc-derive-jacobians,btc-plan-traces{")


def test_unknown_pass_lists_known_ones():
    with pytest.raises(BtcError, match="unknown pass 'btc-nope'; known passes"):
        get_pass("btc-nope")


def test_every_registered_pass_is_exercised():
    """Runs last in this file (pytest keeps file order)."""
    assert EXERCISED >= set(PASSES), sorted(set(PASSES) - EXERCISED)

"""Event-driven propagation and the regrouped (event-driven) pp-prop weight gradient against the dense
computation: the same spikes, states and gradients (within 1e-5 relative) on nets.KERNEL_NETWORKS (every
kind of projection; BTC_ALL_NETWORKS=1: every network of nets.py), sequences that end mid-block, hybrid plans and BPTT; and the plan btc-plan-events makes.

Sequences are 13 steps in chunks of 5, so a regrouped block (5 steps) closes twice and the last,
padded chunk runs one too.
"""
import re
from collections import Counter

import numpy as np
import pytest

import oracles
from btc.driver import CompileOptions, compile_network, lower_network
from btc.passes._view import ModelView
from btc.passes.lowering.abi import Abi
from btc.passes.plan_events import event_block, list_capacity, projection_costs
from data import sequence
from nets import KERNEL_NETWORKS, NETWORKS

STEPS, BATCH = 13, 3


def _rel_err(got: dict, want: dict) -> dict:
    return {k: float(np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-12)) for k in want}


def _run(model, x, target, mask):
    model.zero_grads()
    model.train_sequence(x, target, mask)
    return model.grads, model.infer_sequence(x, record=True)


@pytest.mark.parametrize("name", sorted(KERNEL_NETWORKS))
def test_event_driven_equals_dense(compiled, name):
    net = NETWORKS[name]()
    x, target, mask = sequence(net, BATCH, STEPS)
    event = compiled(name, "pp-prop", 5, BATCH, decay=0.8, event_driven="on")
    dense = compiled(name, "pp-prop", 5, BATCH, decay=0.8)
    chosen = {p["name"]: (p["propagation"], p["weight_gradient"]) for p in event.abi["projections"]}
    binary = [p["name"] for p in event.abi["projections"] if p["binary"]]
    assert binary and all(chosen[p] == ("event", "event") for p in binary), chosen
    assert all(p["propagation"] == "dense" for p in dense.abi["projections"]), "tiny networks stay dense under auto"
    g_event, rec_event = _run(event, x, target, mask)
    g_dense, rec_dense = _run(dense, x, target, mask)
    for key in rec_dense:
        if key.startswith("spikes."):
            np.testing.assert_array_equal(rec_event[key], rec_dense[key], err_msg=key)
        else:  # summed in another order: conductance dynamics carry the rounding on for 13 steps
            scale = max(1.0, float(np.max(np.abs(rec_dense[key]))))
            np.testing.assert_allclose(rec_event[key], rec_dense[key], rtol=1e-4, atol=1e-4 * scale, err_msg=key)
    errors = _rel_err(g_event, g_dense)
    # Izhikevich's 0.04 v^2 at v ~ 100 mV carries the other summation order's rounding to ~5e-5
    assert max(errors.values()) < (1e-4 if name == "exact_izhikevich" else 1e-5), errors


def test_regrouped_gradient_is_pp_prop_across_blocks_and_chunks(compiled):
    """Blocks of 12 steps, two per chunk of 24, over 30 steps (the second chunk padded), against the
    plain-JAX pp-prop of pp-prop.md. The recurrent and readout projections' lists overflow, so this
    also holds the exact path past the capacity inside a loop of several iterations."""
    name = "recurrent_expon"
    net = NETWORKS[name]()
    x, target, mask = sequence(net, BATCH, 30, rate=0.3)
    model = compiled(name, "pp-prop", 24, BATCH, decay=0.7, event_driven="on")
    assert model.abi["steps_per_iteration"] == 12
    got, _ = _run(model, x, target, mask)
    want = oracles.online_grads(net, net.init_params(), x, target, mask, alpha=0.7, correction=True)
    errors = _rel_err(got, want)
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("name", ["three_layers", "cuba_dale_delays"])
def test_blocks_deferred_to_one_e0_product_equal_dense(compiled, name):
    """Chunks of 44 steps in four blocks of 11: each block's e0 term waits in loop-carried stacks and all
    four are added by one product after the loop (event_grad.GradientBlock.finish), in every train_chunk
    variant. 50 steps: the second chunk is padded. The same gradients as the dense module, from the
    optimistic variants and from the exact one."""
    net = NETWORKS[name]()
    x, target, mask = sequence(net, BATCH, 50)
    # lists roomy enough for these tiny networks' firing: an optimistic variant takes the chunks
    event = compiled(name, "pp-prop", 44, BATCH, decay=0.8, event_driven="on", activity=0.1)
    dense = compiled(name, "pp-prop", 44, BATCH, decay=0.8)
    assert event.abi["steps_per_iteration"] == 11
    regrouped = [p for p in event.abi["projections"] if p["weight_gradient"] == "event"]
    assert regrouped, event.abi["projections"]
    # each train_chunk variant's time loop carries two stacks per regrouped projection: [4 blocks * B, I], [4 * B, O]
    # (no other tensor of these networks has 4 * B = 12 rows)
    module, _ = lower_network(net, CompileOptions(batch=BATCH, chunk=44, decay=0.8, event_driven="on", activity=0.1))
    sizes = {g["name"]: g["size"] for g in event.abi["groups"]} | {n: i["size"] for n, i in event.inputs.items()}
    want = Counter(n for p in regrouped for n in (sizes[p["pre"]], sizes[p["post"]]))
    # the gathered-row sums carry their tile hint to the backend (btc.dialect.ops.TILES_ATTR)
    assert "btc.tiles = array<i64: 1, " in str(module)
    functions = str(module).split("func.func @")[1:]
    loops = {f.split("(")[0]: next(line for line in f.splitlines() if "scf.for" in line)
             for f in functions if f.startswith("train_chunk")}
    assert set(loops) == {"train_chunk", "train_chunk_fast", "train_chunk_roomy"}, sorted(loops)
    for name_, loop in loops.items():
        carried = Counter(int(n) for n in re.findall(rf"tensor<{4 * BATCH}x(\d+)xf32>", loop.split("->")[-1]))
        assert carried == want, (name_, carried, want)
    g_dense, rec_dense = _run(dense, x, target, mask)
    for tiers in (("train_chunk_fast", "train_chunk_roomy", "train_chunk"), ("train_chunk",)):
        event.tiers.names = list(tiers)  # the second time, the exact variant alone
        event.tiers.reset()
        g_event, rec_event = _run(event, x, target, mask)
        for key in rec_dense:
            if key.startswith("spikes."):
                np.testing.assert_array_equal(rec_event[key], rec_dense[key], err_msg=key)
        errors = _rel_err(g_event, g_dense)
        assert max(errors.values()) < 1e-5, (tiers, errors)
    taken = event.tiers.chunks_by
    assert taken["train_chunk_fast"] + taken["train_chunk_roomy"] == 2 and taken["train_chunk"] == 2, taken


def test_lists_longer_than_their_capacity_stay_exact(tmp_path):
    """An expected activity of 1 % gives lists of 8 entries (list_capacity); inputs at 80 % overflow them every
    step, and the exact path past the capacity must give the dense result."""
    from btc.frontend.zoo import recurrent_lif
    from btc.runtime import load

    net = recurrent_lif(inputs=40, hidden=24, classes=3)
    x, target, mask = sequence(net, BATCH, 23, rate=0.8)
    models = {}
    for mode in ("on", "off"):
        compile_network(recurrent_lif(inputs=40, hidden=24, classes=3),
                        CompileOptions(batch=BATCH, chunk=10, event_driven=mode, activity=0.01), str(tmp_path / mode))
        models[mode] = load(str(tmp_path / mode))
    g_event, rec_event = _run(models["on"], x, target, mask)
    g_dense, rec_dense = _run(models["off"], x, target, mask)
    # the input's lists overflow: per batch row (propagation) and per input over a block (gradient)
    assert models["on"].abi["steps_per_iteration"] == 10
    assert x.sum(-1).min() > list_capacity(40, 0.01) and x[:10].sum(axis=(0, 1)).min() > list_capacity(30, 0.01)
    assert rec_dense["spikes.h"].sum() > 0
    np.testing.assert_array_equal(rec_event["spikes.h"], rec_dense["spikes.h"])
    errors = _rel_err(g_event, g_dense)
    assert max(errors.values()) < 1e-5, errors
    # train_chunk_fast and train_chunk_roomy found lists they could not take and stored nothing;
    # the exact train_chunk took the chunk, and the next ones (23 steps: three chunks) went to it directly
    assert models["on"].tiers.busy_chunks == 1
    assert models["on"].tiers.chunks_by == {"train_chunk_fast": 0, "train_chunk_roomy": 0, "train_chunk": 3}
    # the gradient's lists overflow but few enough entries spill for its tiles: the fast function takes the
    # chunks, exactly
    models["on"].tiers.reset()
    taken = models["on"].tiers.chunks_by["train_chunk_fast"]
    busy = np.zeros_like(x)
    busy[:, :, :2] = np.random.default_rng(5).random(busy[:, :, :2].shape) < 0.7  # 2 inputs at 70 %, 38 silent
    assert busy[:10, :, :2].sum(axis=(0, 1)).min() > list_capacity(30, 0.01)
    g_event, rec_event = _run(models["on"], busy, target, mask)
    g_dense, rec_dense = _run(models["off"], busy, target, mask)
    assert models["on"].tiers.busy_chunks == 1 and rec_dense["spikes.h"].sum() > 0
    assert models["on"].tiers.chunks_by["train_chunk_fast"] == taken + 3
    np.testing.assert_array_equal(rec_event["spikes.h"], rec_dense["spikes.h"])
    errors = _rel_err(g_event, g_dense)
    assert max(errors.values()) < 1e-5, errors
    # more entries past the gradient lists' capacity than the fast function's tiles hold (3 per input: 120
    # entries, 15 tiles as long as a list), no propagation list too long: the fast function flags the chunk
    # for them alone, and a slower one takes it
    models["on"].tiers.reset()
    flood = np.zeros_like(x)
    flood[:, :, :7] = 1.0  # 7 inputs always on: 22 past the capacity of 8 each per block of 30 entries
    g_event, rec_event = _run(models["on"], flood, target, mask)
    g_dense, rec_dense = _run(models["off"], flood, target, mask)
    assert rec_dense["spikes.h"].sum(-1).max() <= list_capacity(24, 0.01)  # no hidden list overflows
    cap = list_capacity(30, 0.01)
    assert 7 * -(-(30 - cap) // cap) > 3 * 40 // cap and models["on"].tiers.busy_chunks == 2
    np.testing.assert_array_equal(rec_event["spikes.h"], rec_dense["spikes.h"])
    errors = _rel_err(g_event, g_dense)
    assert max(errors.values()) < 1e-5, errors
    # a burst in one batch row: 12 inputs on at three steps, past its propagation list's capacity (8) by no
    # more than a tile (the list's capacity; one tile per eighth of the batch, at least one), so the fast
    # function takes every chunk, exactly
    models["on"].tiers.reset()
    busy_before, taken = models["on"].tiers.busy_chunks, models["on"].tiers.chunks_by["train_chunk_fast"]
    burst = (np.random.default_rng(6).random(x.shape) < 0.05).astype(np.float32)
    burst[[2, 9, 15], 0, :12] = 1.0
    assert 2 * list_capacity(40, 0.01) >= burst.sum(-1).max() > list_capacity(40, 0.01)
    g_event, rec_event = _run(models["on"], burst, target, mask)
    g_dense, rec_dense = _run(models["off"], burst, target, mask)
    assert models["on"].tiers.busy_chunks == busy_before
    assert models["on"].tiers.chunks_by["train_chunk_fast"] == taken + 3
    np.testing.assert_array_equal(rec_event["spikes.h"], rec_dense["spikes.h"])
    errors = _rel_err(g_event, g_dense)
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("algorithm", ["hybrid", "bptt"])
def test_event_propagation_under_hybrid_and_bptt(compiled, algorithm):
    """Hybrid: the D-RTRL projection keeps its own exact gradient, the pp-prop ones are regrouped."""
    name = "three_layers"
    net = NETWORKS[name]()
    x, target, mask = sequence(net, BATCH, STEPS)
    options = {"projection_algorithms": {"h1_to_h2": "d-rtrl"}} if algorithm == "hybrid" else {}
    event = compiled(name, algorithm, 5, BATCH, event_driven="on", **options)
    dense = compiled(name, algorithm, 5, BATCH, **options)
    chosen = {p["name"]: (p["propagation"], p["weight_gradient"]) for p in event.abi["projections"]}
    assert all(c[0] == "event" for c in chosen.values()), chosen
    if algorithm == "hybrid":
        assert chosen["h1_to_h2"][1] == "dense" and chosen["h2_to_h3"][1] == "event", chosen
    g_event, _ = _run(event, x, target, mask)
    g_dense, _ = _run(dense, x, target, mask)
    errors = _rel_err(g_event, g_dense)
    assert max(errors.values()) < 1e-5, errors


def _plan(net, **options):
    module, _ = lower_network(net, CompileOptions(**options))
    return {p["name"]: p for p in Abi.from_module(module).projections}


def test_plan_follows_the_cost_model_and_the_flag():
    from btc.frontend.zoo import recurrent_lif

    big = _plan(recurrent_lif(inputs=100, hidden=1024, classes=10), batch=32, chunk=100)
    assert big["h_to_h"]["propagation"] == "event" and big["h_to_h"]["weight_gradient"] == "event", big
    assert big["h_to_out"]["propagation"] == "dense", "ten outputs: the lists would cost more than the matmul"
    small = _plan(recurrent_lif(inputs=10, hidden=16, classes=3), batch=4, chunk=10)
    assert all(p["propagation"] == "dense" and p["weight_gradient"] == "dense" for p in small.values()), small
    off = _plan(recurrent_lif(inputs=100, hidden=1024, classes=10), batch=32, chunk=100, event_driven="off")
    assert all(p["propagation"] == "dense" for p in off.values())
    continual = _plan(recurrent_lif(inputs=100, hidden=1024, classes=10), batch=32, chunk=100, update_every=10)
    assert all(p["weight_gradient"] == "dense" for p in continual.values()), "an in-module update reads dW every step"
    for p in big.values():
        macs = p["expected_macs_per_step"]
        assert macs["propagation"] + macs["weight_gradient"] <= macs["dense"], p


def test_non_binary_presynaptic_signals_stay_dense():
    """An AlignPre synapse group's output is its synaptic state, not spikes: never event-driven."""
    net = NETWORKS["align_pre"]()
    plan = _plan(net, batch=3, chunk=5, event_driven="on")
    synapses = {g for g, grp in net.groups.items() if getattr(grp, "driven_by", None)}
    assert synapses and {n for n, p in plan.items() if not p["binary"]} == {n for n, p in plan.items()
                                                                          if p["pre"] in synapses}, plan
    assert all((p["propagation"] == "event") == p["binary"] for p in plan.values()), plan


def test_a_dense_plan_keeps_the_time_loop_as_it_was():
    """Nothing regrouped: no block, and the loop unrolled as before the event plan existed."""
    module, _ = lower_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=3, chunk=5))
    assert ModelView(module).event_block == 1 and Abi.from_module(module).steps_per_iteration == 1


def test_cost_model_and_block():
    assert event_block(100) == 20 and event_block(7) == 7 and event_block(97) == 1
    costs = projection_costs(32, 2148, 2048, 0.02, 20)
    assert costs["propagation_event"] < costs["propagation_dense"] / 2
    assert costs["gradient_event"] < costs["gradient_dense"] * 0.6
    dense_wins = projection_costs(32, 2148, 2048, 0.5, 20)
    assert dense_wins["propagation_event"] > dense_wins["propagation_dense"]


def test_a_binary_input_refuses_other_values(compiled):
    """Event-driven work counts an active entry as a one: analog values into an input declared binary
    are refused before the first call, naming the input and the way out."""
    from btc.errors import BtcError

    net = NETWORKS["one_layer_delta"]()
    x, target, mask = sequence(net, BATCH, STEPS)
    model = compiled("one_layer_delta", "pp-prop", 5, BATCH, decay=0.8, event_driven="on")
    x[4, 1, 2] = 0.5
    with pytest.raises(BtcError, match=r"input 'x' is declared binary .* holds 0\.5.*binary=False"):
        model.train_sequence(x, target, mask)
    model.train_sequence(x.astype(bool), target, mask)  # a boolean spike train is binary by type
    # a dense module computes x @ W whatever x holds: nothing to refuse
    compiled("one_layer_delta", "pp-prop", 5, BATCH, decay=0.8).train_sequence(x, target, mask)


def test_packed_products_equal_dense(tmp_path, monkeypatch):
    """Where the backend names the CPU's matmul tile, products summed over 128 rows or more are packed for
    linalg.mmt4d (Fn.matmul_at): a dense W's plain gradient, one product per block of 20 steps x 32 rows
    (GradientBlock.add_stacked), and the e0 terms deferred to the chunk's end (4 blocks x 32 rows). Sides of
    70 and 90 leave partial tiles. This host's tile and AVX2's 8x8x1 must both give the dense module's result."""
    import btc.backends
    from btc.frontend.zoo import recurrent_lif
    from btc.runtime import load

    host = btc.backends.pack_tiles("llvm-cpu")
    if not host:
        pytest.skip("no packed-product tile for this CPU (x86 only)")
    B = 32
    net = lambda: recurrent_lif(inputs=70, hidden=90, classes=10)  # noqa: E731
    x, target, mask = sequence(net(), B, 100, rate=0.3)
    options = dict(batch=B, chunk=80, decay=0.8, activity=0.05)
    assert "linalg.mmt4d" not in str(lower_network(net(), CompileOptions(event_driven="off", **options))[0])
    compile_network(net(), CompileOptions(event_driven="off", **options), str(tmp_path / "dense"))
    g_dense, rec_dense = _run(load(str(tmp_path / "dense")), x, target, mask)
    assert rec_dense["spikes.h"].sum() > 0
    for tiles in dict.fromkeys((host, "8x8x1")):
        monkeypatch.setattr(btc.backends, "pack_tiles", lambda target, tiles=tiles: tiles)
        text = str(lower_network(net(), CompileOptions(event_driven="on", **options))[0])
        assert text.count("linalg.mmt4d") >= 2 and f"inner_tiles = [{tiles.split('x')[0]}, 1]" in text, tiles
        manifest = compile_network(net(), CompileOptions(event_driven="on", **options), str(tmp_path / tiles))
        assert f"pack_tiles={tiles}" in manifest["pipeline"]
        g_event, rec_event = _run(load(str(tmp_path / tiles)), x, target, mask)
        np.testing.assert_array_equal(rec_event["spikes.h"], rec_dense["spikes.h"])
        errors = _rel_err(g_event, g_dense)
        assert max(errors.values()) < 1e-5, (tiles, errors)

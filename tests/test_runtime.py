"""The runtime: streaming, chunking, optimizers, checkpoints, and its independence from the compiler."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from data import sequence
from nets import NETWORKS


def test_runtime_imports_neither_jax_nor_the_compiler():
    code = ("import sys, btc.runtime, btc.tasks; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'jax' or m.startswith('iree.compiler') "
            "or m.startswith(('btc.frontend', 'btc.passes', 'btc.dialect', 'btc.backends', 'btc.driver'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_stream_equals_sequence_and_state_resets(compiled):
    net = NETWORKS["recurrent_expon"]()
    model = compiled("recurrent_expon", "pp-prop", 5)
    x, target, mask = sequence(net, 3, 15)
    model.zero_grads()
    model.train_sequence(x, target, mask)
    whole = model.grads
    model.zero_grads()
    model.train_stream((x[i:i + 5], target[i:i + 5], mask[i:i + 5]) for i in range(0, 15, 5))
    streamed = model.grads
    model.zero_grads()
    model.train_sequence(x, target, mask)  # a second pass: states and traces must have been reset
    again = model.grads
    for k in whole:
        np.testing.assert_allclose(streamed[k], whole[k], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(again[k], whole[k])
        assert np.any(whole[k] != 0)


@pytest.mark.parametrize("name,optimizer,algorithm", [("one_layer_delta", "adam", "pp-prop"),
                                                      ("one_layer_delta", "sgd", "pp-prop"),
                                                      ("same_shapes", "adam", "bptt")])
def test_optimizer_step_matches_numpy(compiled, name, optimizer, algorithm):
    """same_shapes has seven parameters of one shape: their moments must not share buffers."""
    net = NETWORKS[name]()
    model = compiled(name, algorithm, 5, optimizer=optimizer)
    model.set_params(net.init_params())
    model.reset_optimizer()
    x, target, mask = sequence(net, 3, 10)
    model.zero_grads()
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    m = {k: 0.0 for k in params}
    v = {k: 0.0 for k in params}
    lr = 0.01
    for step in range(1, 4):
        model.zero_grads()
        model.train_sequence(x, target, mask)
        grads = model.grads
        model.apply_update(lr)
        for k, g in grads.items():
            if optimizer == "sgd":
                params[k] -= lr * g
            else:
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                params[k] -= lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
        for k, p in model.params.items():
            np.testing.assert_allclose(p, params[k], rtol=1e-4, atol=1e-6)
        assert not any(np.any(g) for g in model.grads.values()), "apply_update must zero the gradients"
    model.set_params(net.init_params())


def test_checkpoint_round_trip_is_atomic(compiled, tmp_path):
    net = NETWORKS["one_layer_delta"]()
    model = compiled("one_layer_delta", "pp-prop", 5)
    trained = {k: v + 0.5 for k, v in net.init_params().items()}
    model.set_params(trained)
    path = tmp_path / "ckpt.npz"
    model.save_checkpoint(str(path))
    model.save_checkpoint(str(path))  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"], "no temporary file may be left"
    model.set_params(net.init_params())
    model.load_checkpoint(str(path))
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, trained[k])
    bptt = compiled("one_layer_delta", "bptt", 8)  # same parameters, other algorithm: loads too
    bptt.load_checkpoint(str(path))
    np.testing.assert_array_equal(bptt.params["x_to_h.W"], trained["x_to_h.W"])
    model.set_params(net.init_params())
    bptt.set_params(net.init_params())


def test_a_checkpoint_resumes_training_exactly(compiled, tmp_path):
    """Adam's moments and step count are saved with the parameters: two updates, a save, a third;
    another instance loading the checkpoint makes the same third update, to the bit."""
    net = NETWORKS["shared_input_mse"]()
    x, target, mask = sequence(net, 3, 13)
    model = compiled("shared_input_mse", "pp-prop", 5)  # a new instance of the cached artifact
    for _ in range(2):
        model.train_sequence(x, target, mask, lr=0.01)
    path = str(tmp_path / "c.npz")
    model.save_checkpoint(path)
    model.train_sequence(x, target, mask, lr=0.01)
    resumed = compiled("shared_input_mse", "pp-prop", 5)
    resumed.load_checkpoint(path)
    assert resumed.optimizer_state["optimizer.step"] == 2
    resumed.train_sequence(x, target, mask, lr=0.01)
    for k, v in model.params.items():
        np.testing.assert_array_equal(resumed.params[k], v, err_msg=k)
    restarted = compiled("shared_input_mse", "pp-prop", 5)  # the parameters alone do not resume Adam
    restarted.load_checkpoint(path)
    restarted.reset_optimizer()
    restarted.train_sequence(x, target, mask, lr=0.01)
    assert not np.array_equal(restarted.params["a_to_b.W"], model.params["a_to_b.W"])


def test_manifest_describes_every_buffer(compiled):
    model = compiled("shared_input_mse", "pp-prop", 5)
    m = model.manifest
    assert m["abi"]["algorithm"] == "pp-prop" and m["target"] == "llvm-cpu" and m["iree_version"].startswith("3.13")
    for e in m["abi"]["layout"]:
        assert e["bytes"] == 4 * int(np.prod(e["shape"]))
    traces = {e["name"]: e["shape"] for e in m["abi"]["layout"] if e["role"] == "trace"}
    assert traces["eps_x_x_0[0]"] == [3, 6] and traces["eps_f_a[1]"] == [3, 7]
    assert m["abi"]["memory_bytes"]["trace"] == sum(4 * int(np.prod(s)) for s in traces.values())
    assert len(m["content_hash"]) == 64 and os.path.basename(m["pipeline"].split(",")[0]) == "btc-verify"


def test_sequences_continue_exactly_across_calls(compiled):
    """reset=False continues from the true final state; after a padded training chunk it refuses."""
    from btc.errors import BtcError

    net = NETWORKS["recurrent_expon"]()
    model = compiled("recurrent_expon", "pp-prop", 5)
    x, target, mask = sequence(net, 3, 13)
    whole = model.infer_sequence(x)["readout"]
    first = model.infer_sequence(x[:7])["readout"]
    rest = model.infer_sequence(x[7:], reset=False)["readout"]
    np.testing.assert_allclose(np.concatenate([first, rest]), whole, rtol=1e-6, atol=1e-6)
    model.train_sequence(x, target, mask)  # 13 steps: the last chunk is padded
    with pytest.raises(BtcError, match="ended in a zero-padded chunk"):
        model.train_sequence(x, target, mask, reset=False)
    model.zero_grads()


def test_stream_accepts_binary_spike_trains(compiled):
    net = NETWORKS["one_layer_delta"]()
    model = compiled("one_layer_delta", "pp-prop", 5)
    x, target, mask = sequence(net, 3, 10)
    model.zero_grads()
    model.train_stream(((x[i:i + 5] > 0), target[i:i + 5], mask[i:i + 5]) for i in (0, 5))
    as_bool = model.grads
    model.zero_grads()
    model.train_sequence(x, target, mask)
    for k, g in model.grads.items():
        np.testing.assert_allclose(as_bool[k], g, rtol=1e-6, atol=1e-7)
    model.zero_grads()


def test_cuda_target_compiles_without_a_gpu(tmp_path):
    """--target cuda needs no GPU to compile; the manifest names IREE's cuda driver."""
    from btc.driver import CompileOptions, compile_network

    m = compile_network(NETWORKS["recurrent_expon"](), CompileOptions(batch=3, chunk=5, target="cuda"),
                        str(tmp_path / "a"))
    assert m["hal_driver"] == "cuda" and m["target"] == "cuda"
    assert (tmp_path / "a" / "model.vmfb").stat().st_size > 0


def test_a_variant_that_fails_every_other_chunk_is_tried_rarely():
    """btc.runtime.tiers: each failure of the fastest variant costs a whole chunk. Failing every other try,
    it is retried after stays of 8, 16, ... 256 chunks; once it takes 8 chunks in a row, a failure costs
    a stay of 8 again."""
    from btc.runtime.tiers import MAX_STAY, STAY_AFTER_BUSY, ChunkTiers

    mode, tries = {"fail": "alternate"}, []

    def call(name, *args):
        if name != "train_chunk_tight":
            return 0.0, 0.0, 0.0
        tries.append(len(log))
        fails = {"alternate": len(tries) % 2 == 0, "never": False, "once": len(tries) == once[0]}[mode["fail"]]
        return 0.0, 0.0, float(fails)

    tiers, log, once = ChunkTiers({"train_chunk_tight", "train_chunk_fast", "train_chunk"}), [], [0]
    for _ in range(1000):
        tiers.run(call, [])
        log.append(None)
    assert tiers.busy_chunks <= 10 and tiers.chunks_by["train_chunk_fast"] > 950  # one failure per reset: ~100
    mode["fail"] = "never"
    for _ in range(MAX_STAY + STAY_AFTER_BUSY):
        tiers.run(call, [])
        log.append(None)
    mode["fail"], once[0] = "once", len(tries) + 1
    for _ in range(2 * STAY_AFTER_BUSY):
        tiers.run(call, [])
        log.append(None)
    failed_at = tries[once[0] - 1]
    assert tries[once[0]] == failed_at + 1 + STAY_AFTER_BUSY  # the next try after a stay of 8


_REUSE = """
import ctypes, resource, sys
from btc.runtime.device import keep_freed_memory
kept = keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
def faults_touching(n=int(sys.argv[1]) << 20):
    p = libc.malloc(n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ctypes.memset(p, 1, n)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    libc.free(p)
    return after - before
faults_touching()
print(kept, faults_touching())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
@pytest.mark.parametrize("mib", [64, 512])
def test_freed_memory_is_kept_for_reuse(mib):
    """The runtime's malloc parameters (btc.runtime.device.keep_freed_memory): a buffer malloc'd, written,
    freed and malloc'd again is faulted in page by page again under glibc's defaults (IREE's transient
    buffers, every call), and reused as it is once kept; 512 MB: past the pad kept at the heap's top too."""
    runs = {}
    for keep in ("1", "0"):
        env = dict(os.environ, BTC_KEEP_FREED_MEMORY=keep)
        out = subprocess.run([sys.executable, "-c", _REUSE, str(mib)], env=env, capture_output=True, text=True,
                             check=True)
        kept, faults = out.stdout.split()
        runs[keep] = (kept, int(faults))
    pages = (mib << 20) // 4096
    assert runs["0"][0] == "False" and runs["0"][1] > pages * 0.6, runs
    assert runs["1"][0] == "True" and runs["1"][1] < 1_000, runs

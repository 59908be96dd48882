"""Deployment without btc: the module's globals start from a parameter archive (.irpa), and an exported
bundle runs under IREE's own iree-run-module with the numbers btc's runtime gives."""
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.runtime import load
from btc.runtime.parameters import read_archive
from btc.tools.cli import main
from btc.tools.export import BUNDLE_FILES, export_bundle
from data import sequence
from nets import NETWORKS
from sparse_nets import sparse_variant

TOOLS = os.path.dirname(sys.executable)
LR = 0.01


def iree_run(directory: str, function: str, inputs: list, outputs: int, modules=("model.vmfb",),
             parameters: str = "params.irpa", device: str = "local-sync", replay: str = "") -> list[np.ndarray]:
    """Run one function with IREE's iree-run-module in `directory`; inputs are arrays (written as .npy)
    or iree-run-module literals; returns the results. `replay`: also record the HAL work to this file."""
    flags = []
    for i, value in enumerate(inputs):
        if isinstance(value, np.ndarray):
            np.save(os.path.join(directory, f"in{i}.npy"), value)
            flags.append(f"--input=@in{i}.npy")
        else:
            flags.append(f"--input={value}")
    flags += ["--output=@out.npy"] + ["--output=+out.npy"] * (outputs - 1)
    flags += [f"--device_replay_output={replay}"] if replay else []
    command = [os.path.join(TOOLS, "iree-run-module"), f"--device={device}", *(f"--module={m}" for m in modules),
               f"--parameters=model={parameters}", f"--function={function}", *flags]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(os.path.join(directory, "out.npy"), "rb") as f:
        return [np.load(f) for _ in range(outputs)]


def as_chunks(a: np.ndarray, chunk: int) -> np.ndarray:
    """[T, ...] -> [T / chunk, chunk, ...]"""
    return a.reshape(a.shape[0] // chunk, chunk, *a.shape[1:])


def test_the_artifact_runs_under_iree_run_module_from_its_archive(compiled, tmp_path):
    """The module's globals are its archive's values: infer_chunk under IREE's tool equals btc's runtime,
    and the archive holds the parameters, states at their initial values, and nothing else."""
    net = NETWORKS["recurrent_expon"]()
    model = compiled("recurrent_expon", "pp-prop", 5)
    x, _, _ = sequence(net, 3, 5)
    want = model.infer_sequence(x)["readout"]
    (got,) = iree_run(model.path, "infer_chunk", [x], 1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.ptp(want) > 0  # not a placeholder
    archive = read_archive(os.path.join(model.path, "params.irpa"), model.abi["layout"])
    layout = {e["global"]: e for e in model.abi["layout"] if e["role"] != "index"}
    assert set(archive) == set(layout)
    fresh = compiled("recurrent_expon", "pp-prop", 5)
    for key, e in layout.items():
        if e["role"] == "param":
            np.testing.assert_array_equal(archive[key], fresh.params[e["name"]])
        else:
            assert np.all(archive[key] == e["init"]), key


@pytest.mark.parametrize("name,options", [("one_layer_delta", {}), ("recurrent_expon", {"update_every": 5}),
                                          ("shared_input_mse", {}), ("sparse recurrent_expon", {}),
                                          ("recurrent_expon", {"event_driven": "on"})])
def test_a_bundle_trains_online_under_iree_run_module(compiled, tmp_path, name, options):
    """btc_session.train_sequences (reset, chunks, update per sequence) under iree-run-module gives btc's
    losses and trained parameters: cross-entropy and MSE, updates in the module, a sparse projection."""
    if name.startswith("sparse "):
        net = sparse_variant(NETWORKS[name.split()[1]]())
        compile_network(net, CompileOptions(batch=3, chunk=5), str(tmp_path / "artifact"))
        model = load(str(tmp_path / "artifact"))
        assert any(p["connectivity"]["layout"] != "dense" for p in model.abi["projections"])
    else:
        net = NETWORKS[name]()
        model = compiled(name, "pp-prop", 5, **options)
    bundle = str(tmp_path / "bundle")
    export_bundle(model.path, bundle)
    assert sorted(os.listdir(bundle)) == sorted(BUNDLE_FILES)
    if options.get("event_driven") == "on":  # the session runs the exact train_chunk; the README says why
        with open(os.path.join(bundle, "README.md")) as f:
            assert "train_chunk_fast" in model.functions and "`train_chunk` with the same arguments" in f.read()
    sequences = [sequence(net, 3, 10, seed=s) for s in range(3)]
    before = model.params
    want = [model.train_sequence(x, t, m, lr=LR)["loss"] for x, t, m in sequences]
    trained = model.params
    model.set_params(before)  # the cached model, as the next test expects it
    model.reset_optimizer()
    stacked = [np.stack([as_chunks(s[i], 5) for s in sequences]) for i in range(3)]
    got = iree_run(bundle, "train_sequences", [*stacked, "f32=0.01"], 1 + len(trained),
                   modules=("model.vmfb", "session.vmfb"), replay="session.ireereplay")
    np.testing.assert_allclose(got[0], want, rtol=1e-5)
    for (key, value), result in zip(trained.items(), got[1:]):
        np.testing.assert_allclose(result, value, rtol=1e-5, atol=1e-6, err_msg=key)
        assert np.any(value != before[key]) or key.endswith(".b"), key
    # arguments of different numbers of sequences are refused by the session module, not read out of bounds
    np.save(os.path.join(bundle, "short.npy"), stacked[-1][:-1])
    flags = [f"--input=@in{i}.npy" for i in range(len(stacked) - 1)] + ["--input=@short.npy", "--input=f32=0.01"]
    short = subprocess.run([os.path.join(TOOLS, "iree-run-module"), "--device=local-sync", "--module=model.vmfb",
                            "--module=session.vmfb", "--parameters=model=params.irpa", "--function=train_sequences",
                            *flags], cwd=bundle, capture_output=True, text=True)
    said = short.stdout + short.stderr  # the session's assert, or IREE's buffer check where it runs first
    assert short.returncode != 0 and ("same number of sequences (S) and chunks (C)" in said or "OUT_OF_RANGE" in said)
    # IREE's HAL replay of that whole session runs without the modules' host code
    replayed = subprocess.run([os.path.join(TOOLS, "iree-run-replay"), "--device=local-sync", "session.ireereplay"],
                              cwd=bundle, capture_output=True, text=True)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


def test_a_checkpoint_exported_gives_the_trained_model(compiled, tmp_path):
    """`btc export --checkpoint`: the trained parameters and optimizer state are the archive's, and
    infer_sequences over several sequences equals btc's inference with the checkpoint loaded."""
    net = NETWORKS["one_layer_delta"]()
    model = compiled("one_layer_delta", "pp-prop", 5, batch=2)
    before = model.params
    for s in range(3):
        model.train_sequence(*sequence(net, 2, 10, seed=s), lr=0.05)
    checkpoint = str(tmp_path / "trained.npz")
    model.save_checkpoint(checkpoint)
    xs = [sequence(net, 2, 10, seed=10 + s)[0] for s in range(2)]
    want = np.stack([as_chunks(model.infer_sequence(x)["readout"], 5) for x in xs])
    bundle = str(tmp_path / "bundle")
    done = CliRunner().invoke(main, ["export", model.path, "--checkpoint", checkpoint, "-o", bundle])
    assert done.exit_code == 0, done.output
    archive = read_archive(os.path.join(bundle, "params.irpa"), model.abi["layout"])
    globals_ = {(e["role"], e["name"]): e["global"] for e in model.abi["layout"]}
    for name, value in model.params.items():
        np.testing.assert_array_equal(archive[globals_["param", name]], value)
    for key, value in model.optimizer_state.items():
        np.testing.assert_array_equal(archive[globals_[tuple(key.split(".", 1))]], value)
    (got,) = iree_run(bundle, "infer_sequences", [np.stack([as_chunks(x, 5) for x in xs])], 1,
                      modules=("model.vmfb", "session.vmfb"))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    model.set_params(before)
    model.reset_optimizer()
    document = open(os.path.join(bundle, "README.md")).read()
    for function in model.functions:
        assert f"### btc_model.{function}" in document
    assert "--function=train_sequences" in document and "trained.npz" in document


def test_bptt_bundle_infers_and_export_refuses_bad_outputs(compiled, tmp_path):
    model = compiled("one_layer_delta", "bptt", 5)
    bundle = tmp_path / "bundle"
    export_bundle(model.path, str(bundle))
    x, _, _ = sequence(NETWORKS["one_layer_delta"](), 3, 10)
    (got,) = iree_run(str(bundle), "infer_sequences", [as_chunks(x, 5)[None]], 1, modules=("model.vmfb", "session.vmfb"))
    np.testing.assert_allclose(got[0], as_chunks(model.infer_sequence(x)["readout"], 5), rtol=1e-6, atol=1e-7)
    assert "inference only" in (bundle / "README.md").read_text()
    # a directory that is not a bundle is never replaced; a checkpoint of another model is refused; nothing written
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(BtcError, match="not a btc bundle"):
        export_bundle(model.path, str(other))
    assert os.listdir(other) == ["notes.txt"]
    stranger = compiled("recurrent_expon", "pp-prop", 5)
    stranger.save_checkpoint(str(tmp_path / "stranger.npz"))
    with pytest.raises(BtcError, match="another model"):
        export_bundle(model.path, str(tmp_path / "new"), checkpoint=str(tmp_path / "stranger.npz"))
    assert not (tmp_path / "new").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".btc-bundle-")] == []

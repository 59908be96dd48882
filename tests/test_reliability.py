"""Nothing lost, nothing silently wrong (issue 11, items 1-6): divergence is caught with the last good
parameters kept, checkpoints never land on what is not a checkpoint, the artifact's parameters come
from the bytes that were hashed, a refused sequence adds no gradient, float32 overflow is refused."""
import numpy as np
import pytest

import btc.runtime.model as runtime_model
from btc.errors import BtcError
from btc.runtime import load
from btc.runtime.parameters import archive_entries, write_archive
from data import sequence
from nets import NETWORKS

BATCH = 3


def _zero(grads: dict) -> bool:
    return all(not np.any(g) for g in grads.values())


def test_divergence_keeps_the_last_good_parameters(compiled):
    model = compiled("one_layer_delta", "pp-prop", 5)
    x, target, mask = sequence(NETWORKS["one_layer_delta"](), BATCH, 13, rate=0.5)
    huge = {n: np.full_like(p, 1e37) for n, p in model.params.items()}  # finite; the readout overflows
    model.set_params(huge)
    with pytest.raises(BtcError, match="diverged"):
        for _ in range(3):
            model.train_sequence(x, target, mask, lr=1e-3)
    assert _zero(model.grads), "the diverged sequence's gradients must not wait for the next update"
    assert all(np.all(np.isfinite(p)) for p in model.params.values())
    model.reset_optimizer()


def test_an_update_that_overflows_is_undone(compiled):
    model = compiled("one_layer_delta", "pp-prop", 5, optimizer="sgd")
    x, target, mask = sequence(NETWORKS["one_layer_delta"](), BATCH, 13, rate=0.5)
    before = model.params
    model.zero_grads()
    model.train_sequence(x, target, mask)
    assert any(np.any(g) for g in model.grads.values())
    with pytest.raises(BtcError, match="NaN or infinite; the parameters before it are restored"):
        model.apply_update(3e38)  # SGD: p - lr*g leaves float32
    for n, p in model.params.items():
        np.testing.assert_array_equal(p, before[n])
    assert _zero(model.grads)


def test_checkpoints_refuse_nan_artifacts_and_foreign_files(compiled, tmp_path):
    model = compiled("one_layer_delta", "pp-prop", 5)
    good = tmp_path / "good.npz"
    model.save_checkpoint(str(good))
    model.save_checkpoint(str(good))  # a btc checkpoint may be replaced
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(BtcError, match="not a btc checkpoint"):
        model.save_checkpoint(str(notes))
    assert notes.read_text() == "mine"
    artifact = model.path
    with pytest.raises(BtcError, match="inside the artifact directory"):
        model.save_checkpoint(f"{artifact}/manifest.json")
    with pytest.raises(BtcError, match="inside the artifact directory"):
        model.save_checkpoint(f"{artifact}/extra.npz")
    with pytest.raises(BtcError, match="directory"):
        model.save_checkpoint(str(tmp_path))
    load(artifact)  # untouched
    from btc.runtime.checkpoint import save_checkpoint
    bad = {n: np.full_like(p, np.nan) for n, p in model.params.items()}
    data = good.read_bytes()
    with pytest.raises(BtcError, match="NaN or infinite parameters"):
        save_checkpoint(bad, "hash", str(good))
    assert good.read_bytes() == data
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(BtcError, match="not a readable btc checkpoint|not a btc checkpoint"):
        model.load_checkpoint(str(tmp_path / "empty.npz"))


def test_parameters_come_from_the_bytes_that_were_hashed(compiled, monkeypatch, tmp_path):
    """An artifact republished between the hash check and the read must not mix in its new parameters.
    (On a copy: the shared compiled artifact, rewritten, failed its hash check in the other xdist worker.)"""
    import shutil

    model = compiled("one_layer_delta", "pp-prop", 5)
    want = model.params
    path = str(tmp_path / "artifact")
    shutil.copytree(model.path, path)
    read = runtime_model.read_artifact

    def read_then_republish(path):
        manifest, blobs = read(path)
        layout = manifest["abi"]["layout"]  # someone replaces the file right after
        write_archive(f"{path}/params.irpa", layout,
                      archive_entries(layout, {n: np.zeros_like(p) for n, p in want.items()}))
        return manifest, blobs

    monkeypatch.setattr(runtime_model, "read_artifact", read_then_republish)
    again = runtime_model.Model(path)
    for n, p in again.params.items():
        np.testing.assert_array_equal(p, want[n])


def test_a_refused_sequence_adds_no_gradient(compiled):
    model = compiled("one_layer_delta", "pp-prop", 5)
    x, target, mask = sequence(NETWORKS["one_layer_delta"](), BATCH, 13)
    x[10, 0, 0] = np.nan  # in the third chunk
    model.zero_grads()
    with pytest.raises(BtcError, match="NaN or infinity"):
        model.train_sequence(x, target, mask)
    assert _zero(model.grads)


def test_values_beyond_float32_are_refused(compiled):
    model = compiled("one_layer_delta", "pp-prop", 5)
    x, target, mask = sequence(NETWORKS["one_layer_delta"](), BATCH, 13)
    x = x.astype(np.float64)
    x[3, 1, 2] = 1e300
    with pytest.raises(BtcError, match="beyond float32's range"):
        model.infer_sequence(x)
    params = model.params
    name = next(iter(params))
    with pytest.raises(BtcError, match=f"parameter {name}: contains NaN or infinity .*float32"):
        model.set_params(dict(params, **{name: params[name].astype(np.float64) * 1e300}))
    with pytest.raises(BtcError, match="mask: contains NaN or infinity"):
        model.train_sequence(np.clip(x, 0, 1), target, np.full(13, 1e300))


# ---- issue 11, items 7-14: every one a clear BtcError before anything is written
def _small(tmp_path, name="a", **options):
    from btc.driver import CompileOptions, compile_network

    out = str(tmp_path / name)
    compile_network(NETWORKS["one_layer_delta"](), CompileOptions(**{"batch": BATCH, "chunk": 5, **options}), out)
    return out


def _edit_manifest(path, edit):
    import json

    with open(f"{path}/manifest.json") as f:
        manifest = json.load(f)
    manifest = edit(manifest)
    with open(f"{path}/manifest.json", "w") as f:
        json.dump(manifest, f)


@pytest.mark.parametrize("edit, message", [
    (lambda m: {**m, "abi": {**m["abi"], "batch": 7}}, "was edited"),
    (lambda m: {**m, "abi": {**m["abi"], "num_classes": 99}}, "was edited"),
    (lambda m: {**m, "abi": {k: v for k, v in m["abi"].items() if k != "functions"}}, "was edited"),
    (lambda m: [m], "is not a btc artifact manifest"),
    (lambda m: {**m, "files": None}, "is not a btc artifact manifest"),
])
def test_an_edited_manifest_is_refused(tmp_path, edit, message):
    path = _small(tmp_path)
    _edit_manifest(path, edit)
    with pytest.raises(BtcError, match=message):
        load(path)


def test_bad_load_arguments_are_clear_errors(tmp_path):
    for bad in (None, "", 3):
        with pytest.raises(BtcError, match="artifact path must be a directory name"):
            load(bad)
    with pytest.raises(BtcError, match="driver 'no-such-driver' is not available"):
        load(_small(tmp_path), hal_driver="no-such-driver")


def test_a_checkpoint_of_another_model_needs_to_be_asked_for(tmp_path):
    from btc.driver import CompileOptions, compile_network
    from btc.frontend import LIF

    a = load(_small(tmp_path, "a"))
    same_model = load(_small(tmp_path, "b", decay=0.5, chunk=3))  # another artifact of the same model
    other = NETWORKS["one_layer_delta"]()
    other.groups["h"] = type(other.groups["h"])("h", other.groups["h"].size, LIF(tau=7.0))  # same shapes
    compile_network(other, CompileOptions(batch=BATCH, chunk=5), str(tmp_path / "c"))
    b = load(str(tmp_path / "c"))
    a.set_params({n: v + 0.25 for n, v in a.params.items()})
    a.save_checkpoint(str(tmp_path / "a.npz"))
    before = b.params
    with pytest.raises(BtcError, match="holds the parameters of another model"):
        b.load_checkpoint(str(tmp_path / "a.npz"))
    assert all(np.array_equal(before[n], v) for n, v in b.params.items())
    b.load_checkpoint(str(tmp_path / "a.npz"), other_model=True)
    assert all(np.array_equal(a.params[n], v) for n, v in b.params.items())
    same_model.load_checkpoint(str(tmp_path / "a.npz"))  # another compile of this model: no question asked
    a.load_checkpoint(str(tmp_path / "a.npz"))
    np.save(str(tmp_path / "x.npy"), np.zeros(3))
    for bad in ("x.npy", "missing.npz"):
        with pytest.raises(BtcError, match="checkpoint|not a"):
            a.load_checkpoint(str(tmp_path / bad))


def test_negative_masks_and_bad_stream_chunks_are_refused(compiled):
    model = compiled("one_layer_delta", "pp-prop", 5)
    net = NETWORKS["one_layer_delta"]()
    x, target, mask = sequence(net, BATCH, 5)
    model.zero_grads()
    with pytest.raises(BtcError, match="mask: weights must be >= 0"):
        model.train_sequence(x, target, -mask)
    with pytest.raises(BtcError, match=r"chunk 0 must be a tuple \(x, target, mask\)"):
        model.train_stream([(x, target)])
    assert _zero(model.grads)


def test_model_level_mistakes_are_refused_in_the_frontend(tmp_path):
    from btc.driver import CompileOptions, compile_network
    from btc.frontend import LIF, CustomNeuron, Network, spike_fn
    from btc.frontend.zoo import recurrent_lif

    net = Network()
    net.input("x", 3)
    net.readout("out", 1)
    with pytest.raises(BtcError, match="cross-entropy over one class is always 0"):
        net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match="delay 65 is longer than btc supports"):
        net.project("x", "out", delay=65)
    odd = CustomNeuron(lambda st, ys, p: {"v m": st["v m"] + ys["y"]}, lambda st, p: spike_fn(st["v m"] - 1.0, "sigmoid"),
                       {"v m": 0.0})
    with pytest.raises(BtcError, match="state name 'v m' must be an identifier"):
        Network().group("h", 2, odd)
    learns_w = CustomNeuron(lambda st, ys, p: {"v": st["v"] * p["W"] + ys["y"]},
                            lambda st, p: spike_fn(st["v"] - 1.0, "sigmoid"), {"v": 0.0}, params={"W": 0.9})
    net = Network()
    net.input("x", 3)
    net.group("p", 4, learns_w, trainable=("W",))
    net.readout("out", 2)
    net.project("x", "p")
    net.project("p", "out", name="q")
    net.project("x", "out", name="p")  # its weights would be "p.W", as the group's parameter
    net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match="has the name of a parameter of projection 'p'"):
        net.check()
    net = Network()
    net.input("x", 3)
    net.group("h", 4, LIF(theta=1e300))
    net.readout("out", 2)
    net.project("x", "h")
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match="does not fit float32"):
        compile_network(net, CompileOptions(batch=2, chunk=2), str(tmp_path / "big"))
    with pytest.raises(BtcError, match=r"needs at least [\d,.]+ GiB"):
        compile_network(recurrent_lif(100, 10**6, 10), CompileOptions(batch=2, chunk=2), str(tmp_path / "huge"))
    with pytest.raises(BtcError, match="needs at least"):
        compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=10**9, chunk=2), str(tmp_path / "wide"))
    assert not list(tmp_path.iterdir())


def test_bad_output_locations_are_refused_before_compiling(tmp_path):
    import os

    from btc.driver import CompileOptions, compile_network

    (tmp_path / "file").write_text("x")
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "dangling"))
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    cases = [(tmp_path / "file" / "out", "is not a directory"),
             (tmp_path / "dangling" / "out", "is a dangling symbolic link"),
             (tmp_path / "link", "is a symbolic link")]
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        cases.append((tmp_path / "ro" / "out", "is not writable"))
    for out, message in cases:
        with pytest.raises(BtcError, match=message):
            compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=2, chunk=2), str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["file", "dangling", "real", "link"] +
                                                                 (["ro"] if os.geteuid() != 0 else []))
    assert os.path.islink(tmp_path / "link") and not list((tmp_path / "real").iterdir())


def test_stale_checkpoint_temporaries_are_removed_and_races_lose_cleanly(compiled, tmp_path, monkeypatch):
    import os
    import time

    import btc.driver as driver

    model = compiled("one_layer_delta", "pp-prop", 5)
    stale, fresh = tmp_path / ".ckpt-killed.npz", tmp_path / ".ckpt-running.npz"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    model.save_checkpoint(str(tmp_path / "c.npz"))
    assert not stale.exists() and fresh.exists()
    # the losing side of a race: the other compile publishes the directory between our two renames
    out = tmp_path / "art"
    real_rename = os.rename

    def racing_rename(src, dst):
        if str(dst) == str(out) and not out.exists():
            out.mkdir()
            (out / "manifest.json").write_text("{}")  # the winner's artifact
        return real_rename(src, dst)

    monkeypatch.setattr(driver.os, "rename", racing_rename)
    with pytest.raises(BtcError, match="another compile published"):
        _small(tmp_path, "art")
    assert (out / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt-running.npz", "art", "c.npz"]


def test_a_full_disk_is_one_error_and_leaves_nothing(compiled, tmp_path, monkeypatch):
    """ENOSPC while writing an artifact or a checkpoint: one BtcError naming the file; no temporary
    directory or file stays, and a previous checkpoint is unchanged."""
    import errno

    from btc.driver import CompileOptions, compile_network
    from btc.errors import BtcError
    from nets import NETWORKS

    model = compiled("one_layer_delta", "pp-prop", 5)
    good = tmp_path / "good.npz"
    model.save_checkpoint(str(good))
    before = good.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(BtcError, match=r"could not write checkpoint .*good.npz.*No space left on device"):
        model.save_checkpoint(str(good))
    assert good.read_bytes() == before
    out = tmp_path / "artifact"
    with pytest.raises(BtcError, match=r"could not write the artifact .*artifact.*No space left on device"):
        compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=2, chunk=3), str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz"]

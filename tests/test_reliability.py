"""Nothing lost, nothing silently wrong (issue 11, items 1-6): divergence is caught with the last good
parameters kept, checkpoints never land on what is not a checkpoint, the artifact's parameters come
from the bytes that were hashed, a refused sequence adds no gradient, float32 overflow is refused."""
import numpy as np
import pytest

import btc.runtime.model as runtime_model
from btc.errors import BtcError
from btc.runtime import load
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


def test_parameters_come_from_the_bytes_that_were_hashed(compiled, monkeypatch):
    """An artifact republished between the hash check and the read must not mix in its new parameters."""
    model = compiled("one_layer_delta", "pp-prop", 5)
    want = model.params
    read = runtime_model.read_artifact

    def read_then_republish(path):
        manifest, blobs = read(path)
        with open(f"{path}/init_params.npz", "wb") as f:  # someone replaces the file right after
            np.savez(f, **{n: np.zeros_like(p) for n, p in want.items()})
        return manifest, blobs

    monkeypatch.setattr(runtime_model, "read_artifact", read_then_republish)
    with open(f"{model.path}/init_params.npz", "rb") as f:
        original = f.read()
    try:
        again = runtime_model.Model(model.path)
        for n, p in again.params.items():
            np.testing.assert_array_equal(p, want[n])
    finally:
        with open(f"{model.path}/init_params.npz", "wb") as f:
            f.write(original)


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

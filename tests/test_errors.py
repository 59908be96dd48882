"""Bad input, tried as a new user would: each gets one clear BtcError naming what and what was expected,
raised before anything is written."""
import os

import numpy as np
import pytest

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend import LIF, Expon, Network, Normal, Surrogate
from btc.runtime import load
from nets import NETWORKS


def test_negative_tau():
    with pytest.raises(BtcError, match=r"LIF: tau must be a positive number, got -5"):
        LIF(tau=-5.0)
    with pytest.raises(BtcError, match=r"Expon synapse: tau must be a positive number, got 0"):
        Expon(tau=0)
    with pytest.raises(BtcError, match=r"readout 'out': tau must be a number of ms >= 0 \(0: memoryless\), got -1"):
        Network().readout("out", 3, tau=-1)


def test_unknown_options():
    with pytest.raises(BtcError, match=r"unknown surrogate 'gauss'; expected one of \['arctan', 'fast_sigmoid'"):
        Surrogate("gauss")
    with pytest.raises(BtcError, match=r"unknown algorithm 'rtrl'; expected one of \['pp-prop', 'd-rtrl', 'hybrid', 'bptt'\]"):
        CompileOptions(algorithm="rtrl").check()
    with pytest.raises(BtcError, match=r"unknown target 'tpu'; known targets: \['cuda', 'llvm-cpu', 'metal-spirv', 'rocm', 'vmvx', 'vulkan-spirv'\]"):
        CompileOptions(target="tpu").check()
    with pytest.raises(BtcError, match=r"decay must be a number in \[0, 1\), got 1.5"):
        CompileOptions(decay=1.5).check()
    with pytest.raises(BtcError, match=r"LIF: reset must be 'soft' or 'hard', got 'zero'"):
        LIF(reset="zero")
    with pytest.raises(BtcError, match=r"unknown loss 'hinge'"):
        NETWORKS["one_layer_delta"]().set_loss("hinge", "out")


def test_projection_size_mismatch():
    net = Network()
    net.input("x", 4)
    net.group("h", 3)
    with pytest.raises(BtcError, match=r"projection 'x_to_h': weights have shape \[3, 4\], expected \[4, 3\] "
                                       r"\('x' has 4, 'h' has 3 neurons\)"):
        net.project("x", "h", weights=np.zeros((3, 4)))
    with pytest.raises(BtcError, match=r"projection x->nowhere: unknown postsynaptic group 'nowhere'"):
        net.project("x", "nowhere")


def test_incomplete_network():
    net = Network()
    net.input("x", 4)
    net.group("h", 3)
    with pytest.raises(BtcError, match="network has no loss"):
        net.check()
    net.readout("out", 2)
    net.project("h", "out")
    net.set_loss("cross_entropy", "out")
    with pytest.raises(BtcError, match=r"group 'h' receives no projection"):
        net.check()
    net.group("g", 2)
    net.project("x", "h")
    net.project("h", "g")
    net.project("g", "h")
    with pytest.raises(BtcError, match=r"feed-forward projections form a cycle among groups \['g', 'h'\]"):
        net.check()


def test_bad_compile_leaves_nothing_on_disk(tmp_path):
    net = Network()
    net.input("x", 4)
    net.group("h", 3)
    out = tmp_path / "artifact"
    with pytest.raises(BtcError):
        compile_network(net, CompileOptions(batch=2, chunk=3), str(out))
    with pytest.raises(BtcError, match="batch must be a positive integer, got 0"):
        compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=0, chunk=3), str(out))
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BtcError, match="is not empty and holds no btc artifact"):
        compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=2, chunk=3), str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_wrong_input_shapes(compiled):
    model = compiled("one_layer_delta", "pp-prop", 5)
    with pytest.raises(BtcError, match=r"input 'x': expected shape \[T, 3, 7\] \(time, batch, channels\), got \[10, 2, 7\]"):
        model.infer_sequence(np.zeros((10, 2, 7)))
    with pytest.raises(BtcError, match=r"target: class labels must be in \[0, 4\), got range \[0, 9\]"):
        model.train_sequence(np.zeros((10, 3, 7)), np.array([0, 9, 1]))
    with pytest.raises(BtcError, match=r"target: expected integer class labels of shape \[3\] or \[10, 3\]"):
        model.train_sequence(np.zeros((10, 3, 7)), np.zeros((10, 3), np.float32))
    with pytest.raises(BtcError, match=r"mask: expected shape \[10\], got \[9\]"):
        model.train_sequence(np.zeros((10, 3, 7)), np.array([0, 1, 2]), np.ones(9))
    with pytest.raises(BtcError, match=r"input 'x': contains NaN or infinity"):
        model.infer_sequence(np.full((4, 3, 7), np.nan))
    with pytest.raises(BtcError, match=r"parameter x_to_h.W: expected shape \[7, 9\], got \[9, 7\]"):
        model.set_params({**model.params, "x_to_h.W": np.zeros((9, 7))})


def _artifact(tmp_path):
    out = tmp_path / "artifact"
    compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=2, chunk=3), str(out))
    return out


def test_missing_and_tampered_artifact_files(tmp_path):
    with pytest.raises(BtcError, match="does not exist"):
        load(str(tmp_path / "nothing"))
    out = _artifact(tmp_path)
    load(str(out))
    vmfb = out / "model.vmfb"
    data = bytearray(vmfb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vmfb.write_bytes(bytes(data))
    with pytest.raises(BtcError, match=r"model.vmfb does not match the hash in manifest.json"):
        load(str(out))
    os.remove(vmfb)
    with pytest.raises(BtcError, match=r"is missing \['model.vmfb'\]"):
        load(str(out))


def test_compile_entry_point_names_unknown_options(tmp_path):
    import btc

    with pytest.raises(BtcError, match=r"unknown compile option\(s\) \['chunks'\]; expected some of \['algorithm'"):
        btc.compile(NETWORKS["one_layer_delta"](), str(tmp_path / "a"), chunks=4)
    manifest = btc.compile(NETWORKS["one_layer_delta"](), str(tmp_path / "b"), batch=2, chunk=4)
    assert manifest["abi"]["batch"] == 2 and (tmp_path / "b" / "model.vmfb").exists()


def test_never_replaces_a_directory_that_only_looks_like_an_artifact(tmp_path):
    (tmp_path / "manifest.json").write_text('{"name": "my web app"}')
    (tmp_path / "index.html").write_text("<html></html>")
    with pytest.raises(BtcError, match="holds no btc artifact"):
        compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=2, chunk=3), str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "manifest.json"]


def test_bad_numbers_fail_before_compiling():
    with pytest.raises(BtcError, match=r"Normal: scale must be a finite number >= 0, got nan"):
        Normal(float("nan"))
    with pytest.raises(BtcError, match=r"Network: seed must be an integer >= 0, got -1"):
        Network(seed=-1)
    with pytest.raises(BtcError, match=r"LIF: R must be a finite number, got nan"):
        LIF(R=float("nan"))

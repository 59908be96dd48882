"""compile_module: IREE's diagnostics reach the BtcError, and BTC_SAVE_TEMPS keeps a reproducer."""
import os
import subprocess

import numpy as np
import pytest

from btc.backends import compile_module
from btc.errors import BtcError

OK = "func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {\n  return %a : tensor<4xf32>\n}\n"
# Parses and verifies, but IREE 3.13's lowering has no pattern for tensor.splat: fails in execute().
FAILS_IN_IREE = ("func.func @f(%x: f32) -> tensor<4xf32> {\n  %t = tensor.splat %x : tensor<4xf32>\n"
                 "  return %t : tensor<4xf32>\n}\n")
# Fails to verify while parsing: arith.addf on an integer.
FAILS_TO_PARSE = "func.func @f(%a: i32) -> i32 {\n  %b = arith.addf %a, %a : i32\n  return %b : i32\n}\n"


@pytest.fixture(autouse=True)
def _no_temps(monkeypatch):
    monkeypatch.delenv("BTC_SAVE_TEMPS", raising=False)


def test_execute_failure_carries_iree_message_and_hint():
    with pytest.raises(BtcError) as e:
        compile_module(FAILS_IN_IREE, "llvm-cpu")
    msg = str(e.value)
    assert "failed to legalize operation 'tensor.splat'" in msg
    assert "error: input.mlir:2:" in msg  # IREE's location, in the file BTC_SAVE_TEMPS would keep
    assert "llvm-cpu" in msg and "--iree-hal-target-device=local" in msg
    assert "BTC_SAVE_TEMPS" in msg


def test_parse_failure_carries_iree_message():
    with pytest.raises(BtcError) as e:
        compile_module(FAILS_TO_PARSE, "llvm-cpu")
    msg = str(e.value)
    assert "could not parse" in msg
    assert "input.mlir:2:" in msg and "must be floating-point-like" in msg


def test_bad_flag_is_a_btc_error():
    with pytest.raises(BtcError, match="option not found: iree-no-such-flag"):
        compile_module(OK, "llvm-cpu", ("--iree-no-such-flag",))


def test_failing_compile_saves_reproducer(tmp_path, monkeypatch):
    monkeypatch.setenv("BTC_SAVE_TEMPS", str(tmp_path / "t"))
    with pytest.raises(BtcError) as e:
        compile_module(FAILS_IN_IREE, "llvm-cpu")
    d = tmp_path / "t"
    assert str(d) in str(e.value)
    assert (d / "input.mlir").read_text() == FAILS_IN_IREE
    flags = (d / "flags.txt").read_text().splitlines()
    assert "--iree-hal-target-device=local" in flags
    assert "tensor.splat" in (d / "diagnostics.txt").read_text()
    assert not (d / "model.vmfb").exists()


def test_success_saves_vmfb_and_pasted_command_reproduces_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BTC_SAVE_TEMPS", str(tmp_path / "t"))
    vmfb = compile_module(OK, "llvm-cpu")
    d = tmp_path / "t"
    assert (d / "model.vmfb").read_bytes() == vmfb
    assert (d / "input.mlir").read_text() == OK
    command = (d / "flags.txt").read_text().strip().splitlines()[-1]
    (d / "model.vmfb").unlink()
    subprocess.run(command, shell=True, check=True, cwd=tmp_path, timeout=120)
    assert (d / "model.vmfb").read_bytes() == vmfb


def test_id_placeholder_keeps_each_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("BTC_SAVE_TEMPS", str(tmp_path / "c-{id}"))
    compile_module(OK, "llvm-cpu")
    with pytest.raises(BtcError):
        compile_module(FAILS_IN_IREE, "llvm-cpu")
    dirs = sorted(os.listdir(tmp_path))
    assert len(dirs) == 2 and all(n.startswith("c-") for n in dirs)
    assert sum((tmp_path / n / "model.vmfb").exists() for n in dirs) == 1


def test_without_placeholder_a_failure_drops_the_previous_vmfb(tmp_path, monkeypatch):
    monkeypatch.setenv("BTC_SAVE_TEMPS", str(tmp_path))
    compile_module(OK, "llvm-cpu")
    with pytest.raises(BtcError):
        compile_module(FAILS_IN_IREE, "llvm-cpu")
    assert not (tmp_path / "model.vmfb").exists()
    assert (tmp_path / "input.mlir").read_text() == FAILS_IN_IREE


def test_unwritable_temps_dir_is_named(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BTC_SAVE_TEMPS", str(blocker / "sub"))
    with pytest.raises(BtcError, match=str(blocker / "sub")):
        compile_module(OK, "llvm-cpu")


def test_temps_do_not_change_the_bytes(tmp_path, monkeypatch):
    plain = compile_module(OK, "llvm-cpu")
    monkeypatch.setenv("BTC_SAVE_TEMPS", str(tmp_path))
    assert compile_module(OK, "llvm-cpu") == plain


# a gathered-row sum as btc's event-driven lowering writes it, with its tile hint
# (btc.passes.lowering.events._summed_rows): out[r, o] = sum over c of table[idx[r, c], o]
_HINTED = """func.func @f(%table: tensor<9x40xf32>, %idx: tensor<6x3xi32>) -> tensor<6x40xf32> {
  %e = tensor.empty() : tensor<6x3x40xf32>
  %rows = iree_linalg_ext.gather dimension_map = [0] ins(%table, %idx : tensor<9x40xf32>, tensor<6x3xi32>)
          outs(%e : tensor<6x3x40xf32>) -> tensor<6x3x40xf32>
  %z = arith.constant 0.0 : f32
  %o = tensor.empty() : tensor<6x40xf32>
  %zeros = linalg.fill ins(%z : f32) outs(%o : tensor<6x40xf32>) -> tensor<6x40xf32>
  %sum = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>],
                         iterator_types = ["parallel", "parallel", "reduction"]}
         ins(%rows : tensor<6x3x40xf32>) outs(%zeros : tensor<6x40xf32>) attrs = {btc.tiles = array<i64: 1, 32, 0>} {
  ^bb0(%a: f32, %b: f32):
    %s = arith.addf %b, %a : f32
    linalg.yield %s : f32
  } -> tensor<6x40xf32>
  return %sum : tensor<6x40xf32>
}
"""


def test_tile_hints_configure_the_host_cpu_and_leave_other_targets_alone(tmp_path, monkeypatch):
    """compile_module hands IREE, on this host, the hint turned into IREE's CPU configuration (32-column
    workgroups, a partial last one here), and the kernel still sums right; a cross-compiled CPU and a GPU
    target get the module with the hint dropped. Read from the input BTC_SAVE_TEMPS keeps: what IREE saw."""
    import iree.runtime as ireert
    from iree.compiler import ir

    printed = str(ir.Module.parse(_HINTED, ir.Context()))  # the form compile_module receives
    rng = np.random.default_rng(0)
    table, idx = rng.standard_normal((9, 40)).astype(np.float32), rng.integers(0, 9, (6, 3)).astype(np.int32)
    for target in ("llvm-cpu", "llvm-cpu:aarch64-linux-gnu", "vulkan-spirv"):
        temps = tmp_path / target.replace(":", "_")
        monkeypatch.setenv("BTC_SAVE_TEMPS", str(temps))
        compile_module(printed, target)
        seen = (temps / "input.mlir").read_text()
        assert "btc.tiles" not in seen and "linalg.generic" in seen, (target, seen)
        assert ("distribution = [1, 32, 0]" in seen) == (target == "llvm-cpu"), (target, seen)
    got = ireert.load_vm_flatbuffer((tmp_path / "llvm-cpu" / "model.vmfb").read_bytes(),
                                    driver="local-sync").f(table, idx)
    np.testing.assert_allclose(np.asarray(got), table[idx].sum(1), rtol=1e-6)


def test_a_tile_hint_leaves_the_other_attributes_of_its_op():
    from btc.backends.common import tile_hints

    line = "x = linalg.generic {} ins() outs() attrs =  {a.x = 1 : i64, btc.tiles = array<i64: 1, 8, 0>, z.y} {"
    assert tile_hints(line) == "x = linalg.generic {} ins() outs() attrs =  {a.x = 1 : i64, z.y} {"
    assert tile_hints(line, lambda t, v: f"c = {t[1]}") == line.replace("btc.tiles = array<i64: 1, 8, 0>", "c = 8")
    both = line.replace("0>,", "0>, btc.vector_tiles = array<i64: 1, 4, 0>,")
    assert tile_hints(both, lambda t, v: f"c = {t[1]} {v}") == line.replace("btc.tiles = array<i64: 1, 8, 0>",
                                                                         "c = 8 (1, 4, 0)")
    assert tile_hints(both) == tile_hints(line)
    alone = "x = linalg.generic {} ins() outs() attrs =  {btc.tiles = array<i64: 1, 8, 0>} {"
    assert tile_hints(alone) == "x = linalg.generic {} ins() outs() {"

"""Every IREE target btc offers compiles a real model without its device: the vmfb holds the expected
executable format (read with IREE's own iree-dump-module). Loading one whose device or CPU is absent
is one BtcError; vmvx (IREE's portable interpreter) runs here and gives the llvm-cpu module's numbers."""
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.runtime import load
from btc.tools.cli import main
from data import sequence
from nets import NETWORKS

DUMP = os.path.join(os.path.dirname(sys.executable), "iree-dump-module")
TARGETS = {  # target -> (executable format in the vmfb, runs on this machine)
    "vmvx": ("vmvx-bytecode-fb", True),
    "llvm-cpu:aarch64-linux-gnu": ("embedded-elf-arm_64", False),
    "llvm-cpu:riscv64-linux-gnu": ("embedded-elf-riscv_64", False),
    "cuda:sm_86": ("cuda-nvptx-fb", False),
    "rocm:gfx90a": ("rocm-hsaco-fb", False),
    "vulkan-spirv": ("vulkan-spirv-fb", False),
    "metal-spirv:ios": ("metal-msl-fb", False),
}


def _formats(vmfb: str) -> str:
    return subprocess.run([DUMP, vmfb], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_compiles_without_its_device(compiled, tmp_path, target):
    out = str(tmp_path / "a")
    manifest = compile_network(NETWORKS["one_layer_delta"](), CompileOptions(batch=3, chunk=5, target=target), out)
    fmt, runs_here = TARGETS[target]
    assert f"`{fmt}`" in _formats(os.path.join(out, "model.vmfb")) and manifest["target"] == target
    if not runs_here:
        with pytest.raises(BtcError, match=rf"compiled for target '{target}'.*(cannot run here|is not available)"):
            load(out)
        return
    net = NETWORKS["one_layer_delta"]()
    x, target_, mask = sequence(net, 3, 13)
    here, cpu = load(out), compiled("one_layer_delta", "pp-prop", 5)
    np.testing.assert_allclose(here.infer_sequence(x)["readout"], cpu.infer_sequence(x)["readout"], rtol=1e-5,
                               atol=1e-6)
    here.train_sequence(x, target_, mask)
    cpu.zero_grads()
    cpu.train_sequence(x, target_, mask)
    for k, v in cpu.grads.items():
        np.testing.assert_allclose(here.grads[k], v, rtol=1e-4, atol=1e-6 * np.max(np.abs(v)), err_msg=k)


@pytest.mark.parametrize("args, message", [
    (["--target", "vmvx", "--target-arch", "x86"], "takes no architecture"),
    (["--target", "rocm", "--target-arch", "gfx 90a"], "the architecture after ':' must be a name"),
    (["--target", "tpu"], "Invalid value for '--target'"),
])
def test_bad_targets_are_refused(tmp_path, args, message):
    result = CliRunner().invoke(main, ["compile", "examples/lif_digits.py", *args, "-o", str(tmp_path / "a")])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not os.path.exists(tmp_path / "a")

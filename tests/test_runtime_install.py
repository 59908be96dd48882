"""The runtime-only install of a deployment host (requirements-runtime.txt: numpy, IREE's runtime, click),
made in a fresh virtual environment: it trains an artifact to the same numbers as the full install, and
refuses to compile with one clear error."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from data import sequence
from nets import NETWORKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = """
import sys, importlib.util, numpy as np
from btc.runtime import load
assert importlib.util.find_spec("jax") is None and importlib.util.find_spec("iree.compiler") is None
model = load(sys.argv[1])
data = np.load(sys.argv[2])
loss = model.train_sequence(data["x"], data["target"], data["mask"], lr=0.01)["loss"]
np.savez(sys.argv[3], loss=loss, **model.params)
"""


def _requirements() -> list[str]:
    with open(os.path.join(ROOT, "requirements-runtime.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def test_runtime_requirements_are_the_projects_own():
    """One set of version bounds: every runtime requirement is a dependency of pyproject.toml, verbatim."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        declared = re.findall(r'^\s*"([^"]+)",?\s*$', f.read().split("[project.optional-dependencies]")[0], re.M)
    assert set(_requirements()) <= set(declared), (_requirements(), declared)


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("runtime-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for args in (["--no-deps", ROOT], ["-r", os.path.join(ROOT, "requirements-runtime.txt")]):
        done = subprocess.run(pip + args, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return venv


def test_a_runtime_only_host_trains_like_the_full_install(compiled, runtime_venv, tmp_path):
    net = NETWORKS["recurrent_expon"]()
    model = compiled("recurrent_expon", "pp-prop", 5)
    x, target, mask = sequence(net, 3, 10)
    np.savez(tmp_path / "data.npz", x=x, target=target, mask=mask)
    before = model.params
    want = model.train_sequence(x, target, mask, lr=0.01)["loss"]
    trained = model.params
    done = subprocess.run([str(runtime_venv / "bin" / "python"), "-c", SCRIPT, model.path, str(tmp_path / "data.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with np.load(tmp_path / "out.npz") as got:
        np.testing.assert_allclose(got["loss"], want, rtol=1e-6)
        for name, value in trained.items():
            np.testing.assert_array_equal(got[name], value)
            assert np.any(value != before[name]) or name.endswith(".b")
    btc = str(runtime_venv / "bin" / "btc")
    inspect = subprocess.run([btc, "inspect", model.path], capture_output=True, text=True)
    assert inspect.returncode == 0 and "algorithm pp-prop" in inspect.stdout, inspect.stdout + inspect.stderr
    from btc.driver import CompileOptions, compile_network
    from btc.frontend.zoo import recurrent_lif

    compile_network(recurrent_lif(inputs=100, hidden=16, classes=2), CompileOptions(batch=8, chunk=10),
                    str(tmp_path / "cue"))
    trained = subprocess.run([btc, "train", str(tmp_path / "cue"), "--task", "cue", "--epochs", "1", "--checkpoint",
                              str(tmp_path / "cue.npz")], capture_output=True, text=True)
    assert trained.returncode == 0 and "final:" in trained.stdout, trained.stdout + trained.stderr
    digits = subprocess.run([btc, "train", str(tmp_path / "cue"), "--task", "digits"], capture_output=True, text=True)
    assert digits.returncode != 0 and "pip install scikit-learn" in digits.stderr and "Traceback" not in digits.stderr
    refused = subprocess.run([btc, "compile", os.path.join(ROOT, "examples", "lif_digits.py"), "-o",
                              str(tmp_path / "never")], capture_output=True, text=True)
    assert refused.returncode != 0 and "runtime-only install" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "never").exists()

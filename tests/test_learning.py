"""Learning, measured: pp-prop vs BPTT on digits, and the gradient alignment at initialisation.

The printed numbers are the ones reported in the README (run with `pytest -s tests/test_learning.py`).
"""
import os

import numpy as np

from btc.driver import CompileOptions, compile_network
from btc.frontend.zoo import recurrent_lif
from btc.runtime import load
from btc.tasks import DigitsTask, train

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def _example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lif_digits", os.path.join(EXAMPLES, "lif_digits.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


def test_pp_prop_learns_digits_as_well_as_bptt(tmp_path):
    accuracy = {}
    for algorithm, chunk in (("pp-prop", 20), ("bptt", 20)):
        out = tmp_path / algorithm
        compile_network(_example(), CompileOptions(algorithm=algorithm, batch=32, chunk=chunk), str(out))
        result = train(load(str(out)), DigitsTask(steps=40), epochs=10, lr=2e-3, seed=0)
        accuracy[algorithm] = result["test_acc"]
        print(f"\ndigits {algorithm}: test accuracy {result['test_acc']:.4f} "
              f"(train {result['epochs'][-1]['train_acc']:.4f}, {result['train_seconds']:.1f} s)")
    assert accuracy["pp-prop"] >= 0.85
    assert accuracy["bptt"] - accuracy["pp-prop"] <= 0.03


def _cos(a, b):
    return float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_pp_prop_aligns_with_bptt_at_init(tmp_path):
    """Both gradients from btc's own modules, on the same 100-step sequence of Bernoulli(0.1) input."""
    batch, steps = 16, 100
    rng = np.random.default_rng(0)
    x = (rng.random((steps, batch, 100)) < 0.1).astype(np.float32)
    target = rng.integers(0, 10, batch).astype(np.int32)
    mask = np.full(steps, 1.0 / steps, np.float32)
    grads = {}
    for algorithm, chunk in (("pp-prop", 25), ("bptt", steps)):
        out = tmp_path / algorithm
        net = recurrent_lif(inputs=100, hidden=64, classes=10, input_scale=2.0, recurrent_scale=0.2)
        compile_network(net, CompileOptions(algorithm=algorithm, batch=batch, chunk=chunk),
                        str(out))
        model = load(str(out))
        model.train_sequence(x, target, mask)
        grads[algorithm] = model.grads
    pp, bp = grads["pp-prop"], grads["bptt"]
    per_projection = {k: _cos(pp[k], bp[k]) for k in bp}
    norm_ratio = {k: float(np.linalg.norm(pp[k]) / np.linalg.norm(bp[k])) for k in bp}
    overall = _cos(np.concatenate([pp[k].ravel() for k in bp]), np.concatenate([bp[k].ravel() for k in bp]))
    print(f"\ncosine(pp-prop, BPTT) per parameter: { {k: round(v, 4) for k, v in per_projection.items()} }")
    print(f"norm ratio pp-prop/BPTT per parameter: { {k: round(v, 4) for k, v in norm_ratio.items()} }")
    print(f"cosine of the concatenated gradient: {overall:.4f}")
    assert min(per_projection.values()) >= 0.9, per_projection

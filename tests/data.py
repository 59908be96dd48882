"""Deterministic inputs, targets and masks for the oracle comparisons."""
import numpy as np


def sequence(net, batch: int, steps: int, seed: int = 0, rate: float = 0.3):
    rng = np.random.default_rng(seed)
    size = net.inputs["x"].size
    x = (rng.random((steps, batch, size)) < rate).astype(np.float32)
    C = net.groups[net.loss.readout].size
    if net.loss.kind == "cross_entropy":
        target = np.broadcast_to(rng.integers(0, C, (batch,)), (steps, batch)).astype(np.int32)
    else:
        target = rng.random((steps, batch, C)).astype(np.float32)
    mask = np.zeros(steps, np.float32)
    mask[steps // 3:] = 1.0 / (steps - steps // 3)  # only the later steps count
    return x, target, mask

"""Sparse variants of the networks in nets.py: every projection keeps a random half of its pairs
(`sparse_variant`), and its dense twin holds the same weights with zeros elsewhere (`masked_twin`).
The two compute the same thing; the sparse one has weights only at the pairs."""
import dataclasses

import numpy as np

from btc.frontend.connectivity import connectivity_of


def sparse_variant(net, density: float = 0.5, seed: int = 7):
    """`net` with every projection sparse (each pair kept with probability `density`), its initial
    weights those of the dense network at the kept pairs."""
    W0 = net.init_params()
    rng = np.random.default_rng(seed)
    for name, p in list(net.projections.items()):
        shape = W0[f"{name}.W"].shape
        mask = rng.random(shape) < density
        mask[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = True  # never empty
        conn = connectivity_of(mask, shape, name, 0)
        net.projections[name] = dataclasses.replace(p, connectivity=conn,
                                                    weights=W0[f"{name}.W"][conn.pre, conn.post].copy())
    return net


def masked_twin(sparse_net, dense_net):
    """`dense_net` with each projection's initial weights the sparse one's, zero off its pairs."""
    for name, p in list(sparse_net.projections.items()):
        conn = p.connectivity
        W = np.zeros(conn.shape, np.float32)
        W[conn.pre, conn.post] = p.weights
        dense_net.projections[name] = dataclasses.replace(dense_net.projections[name], weights=W)
    return dense_net


def at_pairs(sparse_net, dense_params: dict) -> dict:
    """Dense [pre, post] weight arrays (parameters or gradients) read at each sparse projection's pairs."""
    out = dict(dense_params)
    for name, p in sparse_net.projections.items():
        if p.connectivity is None:
            continue
        out[f"{name}.W"] = dense_params[f"{name}.W"][p.connectivity.pre, p.connectivity.post]
    return out

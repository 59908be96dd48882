"""Independent oracles for the compiled module: exact BPTT by jax.grad of the JAX simulator, and
pp-prop written plainly from ../shared/docs/pp-prop.md (section 4) with jax.jacfwd for D and Df.

Nothing here reads btc's IR or passes.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from btc.frontend import simulate as sim
from btc.frontend.network import Network, Readout


def bptt_grads(net: Network, params: dict, x: np.ndarray, target, mask) -> dict:
    p = {k: jnp.asarray(v) for k, v in params.items()}
    g = jax.grad(lambda p: sim.loss(net, p, {"x": jnp.asarray(x)}, jnp.asarray(target), jnp.asarray(mask)))(p)
    return {k: np.asarray(v) for k, v in g.items()}


def _names(net: Network, g: str) -> tuple[str, ...]:
    grp = net.groups[g]
    return ("r",) if isinstance(grp, Readout) else grp.neuron.state_names(net.dt)


def _group_step(net: Network, g: str, states: dict, y):
    grp = net.groups[g]
    if isinstance(grp, Readout):
        return {"r": states["r"] * math.exp(-net.dt / grp.tau) + y}
    return sim.neuron_step(grp.neuron, net.dt, states, y)


def _jacobians(net: Network, g: str, states: dict, y):
    """D [B,N,S,S] (D[..., s, s'] = dh'_s/dh_s') and Df [B,N,S] of one group's elementwise step."""
    names = _names(net, g)

    def f(hvec, yy):
        out = _group_step(net, g, {n: hvec[i] for i, n in enumerate(names)}, yy)
        return jnp.stack([out[n] for n in names])

    hstack = jnp.stack([states[n] for n in names], -1)
    flat_h, flat_y = hstack.reshape(-1, len(names)), y.reshape(-1)
    D = jax.vmap(jax.jacfwd(f, argnums=0))(flat_h, flat_y)
    Df = jax.vmap(jax.jacfwd(f, argnums=1))(flat_h, flat_y)
    return D.reshape(*y.shape, len(names), len(names)), Df.reshape(*y.shape, len(names))


def pp_prop_grads(net: Network, params: dict, x: np.ndarray, target, mask, alpha: float) -> dict:
    """pp-prop.md section 4: eps_x = a*eps_x + x; eps_f = a*D eps_f + (1-a)*Df;
    grad W += eps_x^T (sum_s eps_f*delta); biases use the exact trace e = D e + Df."""
    p = {k: jnp.asarray(v) for k, v in params.items()}
    T, B = x.shape[:2]
    state = sim.initial_state(net, B)
    order = net.order()
    spiking = [g for g in order if not isinstance(net.groups[g], Readout)]
    eps_x = {}
    eps_f = {g: jnp.zeros((B, net.size(g), len(_names(net, g)))) for g in order}
    e_b = {g: jnp.zeros_like(eps_f[g]) for g in order}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(T):
        prev_spikes = {g: sim.spike_of(net.groups[g].neuron, net.dt, state[g]) for g in spiking}

        def within_step(perturb, state=state, prev_spikes=prev_spikes, t=t):
            """This step's loss with h_g^t shifted by perturb[g]: its gradient at 0 is delta^t."""
            new, spikes, ys, pres = {}, {}, {}, {}
            for g in order:
                y = 0.0
                for proj in net.into(g):
                    if proj.pre in net.inputs:
                        pre = jnp.asarray(x[t])
                    else:
                        pre = (prev_spikes if proj.recurrent else spikes)[proj.pre]
                    pres[proj.name] = pre
                    y = y + pre @ p[f"{proj.name}.W"] + (p[f"{proj.name}.b"] if proj.bias else 0.0)
                ys[g] = y
                out = _group_step(net, g, state[g], y)
                new[g] = {n: out[n] + perturb[g][..., i] for i, n in enumerate(_names(net, g))}
                if g in spiking:
                    spikes[g] = sim.spike_of(net.groups[g].neuron, net.dt, new[g])
            r = new[net.loss.readout]["r"]
            return sim.step_loss(net, r, jnp.asarray(target[t]), mask[t]), (new, ys, pres)

        zeros = {g: jnp.zeros((B, net.size(g), len(_names(net, g)))) for g in order}
        delta, (new, ys, pres) = jax.grad(within_step, has_aux=True)(zeros)
        sources = {(q.pre, q.recurrent): pres[q.name] for q in net.projections.values()}
        for key, value in sources.items():  # one trace per distinct presynaptic signal
            eps_x[key] = alpha * eps_x.get(key, 0.0) + value
        for g in order:
            D, Df = _jacobians(net, g, state[g], ys[g])
            eps_f[g] = alpha * jnp.einsum("bnij,bnj->bni", D, eps_f[g]) + (1 - alpha) * Df
            e_b[g] = jnp.einsum("bnij,bnj->bni", D, e_b[g]) + Df
            post = jnp.sum(eps_f[g] * delta[g], -1)
            post_b = jnp.sum(e_b[g] * delta[g], -1)
            for proj in net.into(g):
                pre_trace = eps_x[(proj.pre, proj.recurrent)]
                grads[f"{proj.name}.W"] += np.asarray(pre_trace.T @ post)
                if proj.bias:
                    grads[f"{proj.name}.b"] += np.asarray(post_b.sum(0))
        state = new
    return grads


def cosine(a: dict, b: dict) -> float:
    va = np.concatenate([a[k].ravel() for k in sorted(a)])
    vb = np.concatenate([b[k].ravel() for k in sorted(b)])
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))

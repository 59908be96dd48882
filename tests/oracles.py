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


def _group_step(net: Network, g: str, states: dict, y, params: dict):
    grp = net.groups[g]
    if isinstance(grp, Readout):
        return {"r": states["r"] * net.readout_decay(g) + y}
    return sim.neuron_step(grp.neuron, net.dt, states, y, sim.elementwise(net, params, g))


def _jacobians(net: Network, g: str, states: dict, y, params: dict):
    """D [B,N,S,S] (D[..., s, s'] = dh'_s/dh_s'), Df [B,N,S] and, per learned per-neuron parameter
    q, Dp[q] [B,N,S] = dh'/dq of one group's elementwise step."""
    names = _names(net, g)
    grp = net.groups[g]
    learned = tuple(getattr(grp, "trainable", ()))

    def f(hvec, yy, pvec):
        elem = {q: pvec[j] for j, q in enumerate(learned)}
        if isinstance(grp, Readout):
            out = {"r": hvec[0] * net.readout_decay(g) + yy}
        else:
            out = sim.neuron_step(grp.neuron, net.dt, {n: hvec[i] for i, n in enumerate(names)}, yy, elem)
        return jnp.stack([out[n] for n in names])

    hstack = jnp.stack([states[n] for n in names], -1)
    flat_h, flat_y = hstack.reshape(-1, len(names)), y.reshape(-1)
    B, N = y.shape
    pstack = (jnp.stack([jnp.broadcast_to(params[f"{g}.{q}"], (B, N)) for q in learned], -1).reshape(B * N, -1)
              if learned else jnp.zeros((B * N, 0)))
    D = jax.vmap(jax.jacfwd(f, argnums=0))(flat_h, flat_y, pstack)
    Df = jax.vmap(jax.jacfwd(f, argnums=1))(flat_h, flat_y, pstack)
    Dp = jax.vmap(jax.jacfwd(f, argnums=2))(flat_h, flat_y, pstack)  # [BN, S, P]
    S = len(names)
    return (D.reshape(B, N, S, S), Df.reshape(B, N, S),
            {q: Dp[:, :, j].reshape(B, N, S) for j, q in enumerate(learned)})


def online_grads(net: Network, params: dict, x: np.ndarray, target, mask, alpha: float = 0.9,
                 alpha_post: float | None = None, correction: bool = False, dense: tuple = ()) -> dict:
    """pp-prop.md section 4, step by step:
      pp-prop:  eps_x = a_x*eps_x + x;  eps_f = a_f*D eps_f + (1-a_f)*Df;
                grad W += eps_x^T (sum_s eps_f*delta) / (1 - a_f^(k+1) if correction, k = step index)
      D-RTRL (projections named in `dense`): e[b,i,o,s] = sum_s' D[s,s'] e[b,i,o,s'] + Df[s] x[b,i];
                grad W += sum_b sum_s e*delta
      biases: the exact trace e = D e + Df; learned per-neuron parameters q: e_q = D e_q + dh/dq,
                grad q += sum_b (sum_s e_q*delta + dL/ds * ds/dq)."""
    a_x, a_f = alpha, alpha if alpha_post is None else alpha_post
    p = {k: jnp.asarray(v) for k, v in params.items()}
    T, B = x.shape[:2]
    state = sim.initial_state(net, B)
    order = net.order()
    spiking = [g for g in order if not isinstance(net.groups[g], Readout)]
    eps_x = {}
    eps_f = {g: jnp.zeros((B, net.size(g), len(_names(net, g)))) for g in order}
    e_b = {g: jnp.zeros_like(eps_f[g]) for g in order}
    e_q = {(g, q): jnp.zeros_like(eps_f[g]) for g in spiking for q in net.groups[g].trainable}
    e_w = {q: jnp.zeros((B, net.size(net.projections[q].pre), net.size(net.projections[q].post),
                         len(_names(net, net.projections[q].post)))) for q in dense}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    elem = {g: sim.elementwise(net, p, g) for g in spiking}
    for t in range(T):
        prev_spikes = {g: sim.spike_of(net.groups[g].neuron, net.dt, state[g], elem[g]) for g in spiking}

        def within_step(perturb, spike_elem, state=state, prev_spikes=prev_spikes, t=t):
            """This step's loss with h_g^t shifted by perturb[g]: its gradient at 0 is delta^t.
            Its gradient by spike_elem (the parameters as this step's spike function sees them)
            is the direct dL/ds * ds/dq."""
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
                out = _group_step(net, g, state[g], y, p)
                new[g] = {n: out[n] + perturb[g][..., i] for i, n in enumerate(_names(net, g))}
                if g in spiking:
                    spikes[g] = sim.spike_of(net.groups[g].neuron, net.dt, new[g], spike_elem[g])
            r = new[net.loss.readout]["r"]
            return sim.step_loss(net, r, jnp.asarray(target[t]), mask[t]), (new, ys, pres)

        zeros = {g: jnp.zeros((B, net.size(g), len(_names(net, g)))) for g in order}
        (delta, direct), (new, ys, pres) = jax.grad(within_step, argnums=(0, 1), has_aux=True)(zeros, elem)
        sources = {(q.pre, q.recurrent): pres[q.name] for q in net.projections.values()}
        for key, value in sources.items():  # one trace per distinct presynaptic signal
            eps_x[key] = a_x * eps_x.get(key, 0.0) + value
        corr = (1.0 - a_f ** (t + 1)) if correction else 1.0
        for g in order:
            D, Df, Dp = _jacobians(net, g, state[g], ys[g], p)
            eps_f[g] = a_f * jnp.einsum("bnij,bnj->bni", D, eps_f[g]) + (1 - a_f) * Df
            e_b[g] = jnp.einsum("bnij,bnj->bni", D, e_b[g]) + Df
            post = jnp.sum(eps_f[g] * delta[g], -1) / corr
            post_b = jnp.sum(e_b[g] * delta[g], -1)
            for proj in net.into(g):
                if proj.name in dense:
                    e = jnp.einsum("bnij,bknj->bkni", D, e_w[proj.name])
                    e_w[proj.name] = e + jnp.einsum("bi,bnj->binj", pres[proj.name], Df)
                    grads[f"{proj.name}.W"] += np.asarray(jnp.einsum("bins,bns->in", e_w[proj.name], delta[g]))
                else:
                    pre_trace = eps_x[(proj.pre, proj.recurrent)]
                    grads[f"{proj.name}.W"] += np.asarray(pre_trace.T @ post)
                if proj.bias:
                    grads[f"{proj.name}.b"] += np.asarray(post_b.sum(0))
            for q in Dp:
                e_q[(g, q)] = jnp.einsum("bnij,bnj->bni", D, e_q[(g, q)]) + Dp[q]
                grads[f"{g}.{q}"] += np.asarray(jnp.sum(e_q[(g, q)] * delta[g], (0, 2)) + direct[g][q])
        state = new
    return grads


def pp_prop_grads(net: Network, params: dict, x: np.ndarray, target, mask, alpha: float) -> dict:
    """pp-prop without bias correction (the form the core tests use)."""
    return online_grads(net, params, x, target, mask, alpha)


def cosine(a: dict, b: dict) -> float:
    va = np.concatenate([a[k].ravel() for k in sorted(a)])
    vb = np.concatenate([b[k].ravel() for k in sorted(b)])
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))

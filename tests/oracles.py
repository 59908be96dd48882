"""Independent oracles for the compiled module: exact BPTT by jax.grad of the JAX simulator, and
pp-prop written plainly from ../shared/docs/pp-prop.md (section 4) with jax.jacfwd for D and Df.

Nothing here reads btc's IR or passes.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from btc.frontend import simulate as sim
from btc.frontend.network import Network, Readout


def bptt_grads(net: Network, params: dict, x: np.ndarray, target, mask) -> dict:
    p = {k: jnp.asarray(v) for k, v in params.items()}
    grad = jax.jit(jax.grad(lambda p, x, target, mask: sim.loss(net, p, {"x": x}, target, mask)))
    g = grad(p, jnp.asarray(x), jnp.asarray(target), jnp.asarray(mask))
    return {k: np.asarray(v) for k, v in g.items()}


def _names(net: Network, g: str) -> tuple[str, ...]:
    grp = net.groups[g]
    return ("r",) if isinstance(grp, Readout) else grp.neuron.state_names(net.dt)


def _ports(net: Network, g: str) -> tuple[str, ...]:
    grp = net.groups[g]
    return ("y",) if isinstance(grp, Readout) else grp.neuron.ports


def _jacobians(net: Network, g: str, states: dict, ys: dict, params: dict):
    """D [B,N,S,S] (D[..., s, s'] = dh'_s/dh_s'), Df[port] [B,N,S] and, per learned per-neuron
    parameter q, Dp[q] [B,N,S] = dh'/dq of one group's elementwise step."""
    names, ports = _names(net, g), _ports(net, g)
    learned = tuple(getattr(net.groups[g], "trainable", ()))

    def f(hvec, yvec, pvec):
        p = dict(params, **{f"{g}.{q}": pvec[j] for j, q in enumerate(learned)})
        out = sim.group_step(net, g, p, {n: hvec[i] for i, n in enumerate(names)},
                             {port: yvec[k] for k, port in enumerate(ports)})
        return jnp.stack([out[n] for n in names])

    B, N = states[names[0]].shape
    flat_h = jnp.stack([states[n] for n in names], -1).reshape(B * N, -1)
    flat_y = jnp.stack([jnp.broadcast_to(ys[port], (B, N)) for port in ports], -1).reshape(B * N, -1)
    flat_p = (jnp.stack([jnp.broadcast_to(params[f"{g}.{q}"], (B, N)) for q in learned], -1).reshape(B * N, -1)
              if learned else jnp.zeros((B * N, 0)))
    D = jax.vmap(jax.jacfwd(f, argnums=0))(flat_h, flat_y, flat_p)
    Df = jax.vmap(jax.jacfwd(f, argnums=1))(flat_h, flat_y, flat_p)  # [BN, S, ports]
    Dp = jax.vmap(jax.jacfwd(f, argnums=2))(flat_h, flat_y, flat_p)  # [BN, S, P]
    S = len(names)
    return (D.reshape(B, N, S, S), {port: Df[:, :, k].reshape(B, N, S) for k, port in enumerate(ports)},
            {q: Dp[:, :, j].reshape(B, N, S) for j, q in enumerate(learned)})


def online_grads(net: Network, params: dict, x: np.ndarray, target, mask, alpha: float = 0.9,
                 alpha_post: float | None = None, correction: bool = False, dense: tuple = ()) -> dict:
    """pp-prop.md section 4, step by step:
      pp-prop:  eps_x = a_x*eps_x + x (one per presynaptic signal and lag);
                eps_f = a_f*D eps_f + (1-a_f)*Df (one per group and port);
                grad W += eps_x^T (sum_s eps_f*delta) / (1 - a_f^(k+1) if correction, k = step index)
      D-RTRL (projections named in `dense`): e[b,i,o,s] = sum_s' D[s,s'] e[b,i,o,s'] + Df[s] x[b,i];
                grad W += sum_b sum_s e*delta
      biases: the exact trace e = D e + Df; learned per-neuron parameters q: e_q = D e_q + dh/dq,
                grad q += sum_b (sum_s e_q*delta + dL/ds * ds/dq)
      Dale's law (W = sign*|W_raw|): the gradient by W_raw is sign*sgn(W_raw) times that by W."""
    a_x, a_f = alpha, alpha if alpha_post is None else alpha_post
    p = {k: jnp.asarray(v) for k, v in params.items()}
    T, B = x.shape[:2]
    state = sim.initial_state(net, B)
    order = net.order()
    spiking = [g for g in order if not isinstance(net.groups[g], Readout)]
    zeros = {g: jnp.zeros((B, net.size(g), len(_names(net, g)))) for g in order}
    eps_x = {}
    eps_f = {(g, port): zeros[g] for g in order for port in _ports(net, g)}
    e_b = dict(eps_f)
    e_q = {(g, q): zeros[g] for g in spiking for q in net.groups[g].trainable}
    e_w = {q: jnp.zeros((B, net.size(net.projections[q].pre), net.size(net.projections[q].post),
                         len(_names(net, net.projections[q].post)))) for q in dense}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    elem = {g: sim.elementwise(net, p, g) for g in spiking}
    def within_step(perturb, spike_elem, state, x_t, target_t, mask_t):
        """This step's loss with h_g^t shifted by perturb[g]: its gradient at 0 is delta^t.
        Its gradient by spike_elem (the parameters as this step's spike function sees them)
        is the direct dL/ds * ds/dq."""
        new, spikes, ys, pres = {}, {}, {}, {}
        for g in order:
            ys[g] = {port: jnp.zeros(()) for port in _ports(net, g)}
            source = getattr(net.groups[g], "driven_by", None)
            if source:
                ys[g]["y"] = x_t[source] if source in x_t else spikes[source]
            for proj in net.into(g):
                pre = sim.presynaptic(proj, x_t, spikes, state["_history"])
                pres[proj.name] = pre
                ys[g][proj.port] = ys[g][proj.port] + pre @ sim.weight(proj, p) + \
                    (sim.bias(proj, p) if proj.bias else 0.0)
            out = sim.group_step(net, g, p, state[g], ys[g])
            new[g] = {n: out[n] + perturb[g][..., i] for i, n in enumerate(_names(net, g))}
            if g in spiking:
                spikes[g] = sim.spike_of(net.groups[g].neuron, net.dt, new[g], spike_elem[g])
        r = new[net.loss.readout]["r"]
        return sim.step_loss(net, r, target_t, mask_t), (new, ys, pres, spikes)

    # compiled once per call: the same arithmetic as eager JAX, without its per-op dispatch (~10x)
    step_grad = jax.jit(jax.grad(within_step, argnums=(0, 1), has_aux=True))
    jacobians = jax.jit(lambda g, h, y: _jacobians(net, g, h, y, p), static_argnums=0)
    for t in range(T):
        x_t = {"x": jnp.asarray(x[t])}
        (delta, direct), (new, ys, pres, spikes) = step_grad(zeros, elem, state, x_t, jnp.asarray(target[t]),
                                                             jnp.asarray(mask[t]))
        sources = {(q.pre, q.lag): pres[q.name] for q in net.projections.values()}
        for key, value in sources.items():  # one trace per distinct presynaptic signal and lag
            eps_x[key] = a_x * eps_x.get(key, 0.0) + value
        corr = (1.0 - a_f ** (t + 1)) if correction else 1.0
        for g in order:
            D, Df, Dp = jacobians(g, state[g], ys[g])
            for port in _ports(net, g):
                eps_f[(g, port)] = a_f * jnp.einsum("bnij,bnj->bni", D, eps_f[(g, port)]) + (1 - a_f) * Df[port]
                e_b[(g, port)] = jnp.einsum("bnij,bnj->bni", D, e_b[(g, port)]) + Df[port]
            for proj in net.into(g):
                if proj.name in dense:
                    e = jnp.einsum("bnij,bknj->bkni", D, e_w[proj.name])
                    e_w[proj.name] = e + jnp.einsum("bi,bnj->binj", pres[proj.name], Df[proj.port])
                    gW = jnp.einsum("bins,bns->in", e_w[proj.name], delta[g])
                else:
                    post = jnp.sum(eps_f[(g, proj.port)] * delta[g], -1) / corr
                    gW = eps_x[(proj.pre, proj.lag)].T @ post
                gW = _at_weights(proj, np.asarray(gW))
                if proj.sign:
                    gW = gW * proj.sign * np.sign(p[f"{proj.name}.W"])
                grads[f"{proj.name}.W"] += np.asarray(gW)
                if proj.bias:
                    gb = np.asarray(jnp.sum(e_b[(g, proj.port)] * delta[g], -1).sum(0))
                    grads[f"{proj.name}.b"] += gb if proj.connectivity is None else \
                        gb.reshape(-1, proj.connectivity.bias_block).sum(1)
            for q in Dp:
                e_q[(g, q)] = jnp.einsum("bnij,bnj->bni", D, e_q[(g, q)]) + Dp[q]
                grads[f"{g}.{q}"] += np.asarray(jnp.sum(e_q[(g, q)] * delta[g], (0, 2)) + direct[g][q])
        new["_history"] = sim.advance_history(net, state["_history"], x_t, spikes)
        state = new
    return grads


def _at_weights(proj, gW: np.ndarray) -> np.ndarray:
    """A dense [pre, post] gradient read at a sparse projection's pairs; a convolution's summed over
    the pairs that share each kernel entry (times the pairs' scale): the chain rule of W[tie]."""
    conn = proj.connectivity
    if conn is None:
        return gW
    at_pairs = gW[conn.pre, conn.post]
    if conn.tie is None:
        return at_pairs
    return np.bincount(conn.tie, weights=at_pairs * conn.scale, minlength=conn.n_weights).astype(np.float32)


def cosine(a: dict, b: dict) -> float:
    va = np.concatenate([a[k].ravel() for k in sorted(a)])
    vb = np.concatenate([b[k].ravel() for k in sorted(b)])
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))

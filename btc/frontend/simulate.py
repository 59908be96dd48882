"""A plain-JAX simulator of a Network: the oracle the compiled module is tested against.

It is written from the model definitions directly, not from the IR, so a bug in emission or in a
pass shows up as a disagreement. `loss` is differentiable: `jax.grad(loss)` is exact BPTT.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from btc.frontend.models import LIF, Surrogate
from btc.frontend.network import Network, Readout

__all__ = ["heaviside", "neuron_step", "spike_of", "elementwise", "initial_state", "run", "loss", "step_loss"]


def _surrogate_grad(sg: Surrogate, x):
    a = sg.slope
    if sg.kind == "sigmoid":
        z = jax.nn.sigmoid(a * x)
        return a * z * (1 - z)
    if sg.kind == "fast_sigmoid":
        return 1.0 / (a * jnp.abs(x) + 1.0) ** 2
    if sg.kind == "arctan":
        return (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)
    if sg.kind == "triangle":
        return jnp.maximum(0.0, 1.0 - jnp.abs(x) / a) / a
    raise AssertionError(sg.kind)


def heaviside(x, sg: Surrogate):
    """H(x) > 0 in the forward pass, the surrogate's derivative in the backward pass."""

    @jax.custom_jvp
    def spike(x):
        return (x > 0).astype(x.dtype)

    @spike.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return spike(x), _surrogate_grad(sg, x) * dx

    return spike(x)


def _param(neuron: LIF, elem: dict | None, name: str):
    """A per-neuron parameter: the learned vector if the group trains it, else the model's number."""
    return elem[name] if elem and name in elem else getattr(neuron, name)


def spike_of(neuron: LIF, dt: float, states: dict, elem: dict | None = None):
    theta = _param(neuron, elem, "theta")
    s = heaviside((states["v"] - theta) / (theta - neuron.v_reset), neuron.surrogate)
    if "ref" in states:
        s = jnp.where(states["ref"] > 0, 0.0, s)
    return s


def neuron_step(neuron: LIF, dt: float, states: dict, y, elem: dict | None = None):
    """One exponential-Euler step of a LIF group; `states` holds the values of step t-1 and `elem`
    the group's learned per-neuron parameters (name -> [N]), if any."""
    v = states["v"]
    theta = _param(neuron, elem, "theta")
    s_last = spike_of(neuron, dt, states, elem)
    s_reset = jax.lax.stop_gradient(s_last) if neuron.detach_reset else s_last
    if neuron.reset == "soft":
        v_r = v - s_reset * (theta - neuron.v_reset)
    else:
        v_r = v * (1 - s_reset) + s_reset * neuron.v_reset
    new = {}
    if "i" in states:
        new["i"] = states["i"] * math.exp(-dt / neuron.synapse.tau) + y
        current = new["i"]
    else:
        current = y
    tau = _param(neuron, elem, "tau")
    decay = math.exp(-dt / tau) if isinstance(tau, float) else jnp.exp(-dt / tau)
    v_new = neuron.v_rest + (v_r - neuron.v_rest) * decay + neuron.R * (1 - decay) * current
    if "ref" in states:
        new["ref"] = jnp.where(s_last > 0.5, float(neuron.refractory_steps(dt)),
                               jnp.maximum(states["ref"] - 1.0, 0.0))
        v_new = jnp.where(new["ref"] > 0, v_r, v_new)
    new["v"] = v_new
    return {k: new[k] for k in states}


def initial_state(net: Network, batch: int) -> dict:
    state = {}
    for name, g in net.groups.items():
        if isinstance(g, Readout):
            state[name] = {"r": jnp.zeros((batch, g.size), jnp.float32)}
        else:
            state[name] = {n: jnp.full((batch, g.size), v, jnp.float32)
                           for n, v in zip(g.neuron.state_names(net.dt), g.neuron.initial_state(net.dt))}
    return state


def elementwise(net: Network, params: dict, group: str) -> dict:
    """The group's learned per-neuron parameters, name -> [N] (empty if it learns none)."""
    return {p: params[f"{group}.{p}"] for p in getattr(net.groups[group], "trainable", ())}


def _spikes(net: Network, params: dict, state: dict) -> dict:
    return {name: spike_of(g.neuron, net.dt, state[name], elementwise(net, params, name))
            for name, g in net.groups.items() if not isinstance(g, Readout)}


def step(net: Network, params: dict, state: dict, x_t: dict):
    """Advance every group one step; returns the new state and this step's spikes."""
    prev_spikes = _spikes(net, params, state)
    new_state, spikes = {}, {}
    for name in net.order():
        g = net.groups[name]
        y = 0.0
        for p in net.into(name):
            pre = x_t[p.pre] if p.pre in net.inputs else (prev_spikes if p.recurrent else spikes)[p.pre]
            y = y + pre @ params[f"{p.name}.W"]
            if p.bias:
                y = y + params[f"{p.name}.b"]
        if isinstance(g, Readout):
            new_state[name] = {"r": state[name]["r"] * net.readout_decay(name) + y}
        else:
            elem = elementwise(net, params, name)
            new_state[name] = neuron_step(g.neuron, net.dt, state[name], y, elem)
            spikes[name] = spike_of(g.neuron, net.dt, new_state[name], elem)
    return new_state, spikes


def step_loss(net: Network, r, target, weight):
    if net.loss.kind == "cross_entropy":
        logp = jax.nn.log_softmax(r, axis=-1)
        nll = -jnp.take_along_axis(logp, target[:, None].astype(jnp.int32), axis=-1)[:, 0]
        return weight * jnp.mean(nll)
    return weight * jnp.mean((r - target) ** 2)


def run(net: Network, params: dict, xs: dict, state: dict | None = None):
    """Simulate T steps. `xs` maps input name -> [T, B, I]. Returns (final state, per-step records)."""
    batch = next(iter(xs.values())).shape[1]
    state = initial_state(net, batch) if state is None else state

    def body(state, x_t):
        new_state, spikes = step(net, params, state, x_t)
        return new_state, {"states": new_state, "spikes": spikes}

    return jax.lax.scan(body, state, xs)


def loss(net: Network, params: dict, xs: dict, target, mask, state: dict | None = None):
    """Sum over steps of mask[t] * loss(readout_t, target_t): differentiate it for exact BPTT."""
    _, rec = run(net, params, xs, state)
    rs = rec["states"][net.loss.readout]["r"]
    return jnp.sum(jax.vmap(lambda r, tg, w: step_loss(net, r, tg, w))(rs, target, mask))

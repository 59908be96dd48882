"""A plain-JAX simulator of a Network: the oracle the compiled module is tested against.

It is written from the model definitions directly, not from the IR, so a bug in emission or in a
pass shows up as a disagreement. `loss` is differentiable: `jax.grad(loss)` is exact BPTT.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from btc.frontend.neurons import LIF, Surrogate
from btc.frontend.synapses import Delta, Expon
from btc.frontend.network import Network, Readout

__all__ = ["heaviside", "neuron_step", "spike_of", "elementwise", "weight", "bias", "presynaptic", "group_step",
           "initial_state", "run", "loss", "step_loss"]


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


def _param(neuron, elem: dict | None, name: str):
    """A per-neuron parameter: the learned vector if the group trains it, else the model's number."""
    return elem[name] if elem and name in elem else getattr(neuron, name)


def _hand_written(neuron) -> bool:
    """LIF with a Delta or Expon synapse is simulated by the code below, written independently of the
    model's own JAX `step` (which is what the compiler traces); every other neuron runs its `step`."""
    return type(neuron) is LIF and isinstance(neuron.synapse, (Delta, Expon))


def spike_of(neuron, dt: float, states: dict, elem: dict | None = None):
    if not _hand_written(neuron):
        return neuron.spike(dt, states, elem or {})
    theta = _param(neuron, elem, "theta")
    s = heaviside((states["v"] - theta) / (theta - neuron.v_reset), neuron.surrogate)
    if "ref" in states:
        s = jnp.where(states["ref"] > 0, 0.0, s)
    return s


def neuron_step(neuron, dt: float, states: dict, y, elem: dict | None = None):
    """One step of a group; `states` holds the values of step t-1, `y` this step's input (a dict
    port -> input, or one array for a single-port neuron) and `elem` the learned per-neuron
    parameters (name -> [N]), if any."""
    ys = y if isinstance(y, dict) else {neuron.ports[0]: y}
    if not _hand_written(neuron):
        return neuron.step(dt, states, ys, elem or {})
    y = ys["y"]
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


def max_lags(net: Network) -> dict:
    """pre -> the longest lag any projection reads it with (spikes/inputs kept that many steps)."""
    lags: dict = {}
    for p in net.projections.values():
        if p.lag:
            lags[p.pre] = max(lags.get(p.pre, 0), p.lag)
    return lags


def initial_state(net: Network, batch: int) -> dict:
    state = {}
    for name, g in net.groups.items():
        if isinstance(g, Readout):
            state[name] = {"r": jnp.zeros((batch, g.size), jnp.float32)}
        else:
            state[name] = {n: jnp.full((batch, g.size), v, jnp.float32)
                           for n, v in zip(g.neuron.state_names(net.dt), g.neuron.initial_state(net.dt))}
    # history[pre][k] = its spikes (or input) of step t-1-k, for delayed and recurrent projections
    state["_history"] = {pre: [jnp.zeros((batch, net.size(pre)), jnp.float32)] * lag
                         for pre, lag in max_lags(net).items()}
    return state


def elementwise(net: Network, params: dict, group: str) -> dict:
    """The group's learned per-neuron parameters, name -> [N] (empty if it learns none)."""
    return {p: params[f"{group}.{p}"] for p in getattr(net.groups[group], "trainable", ())}


def weight(proj, params: dict):
    """The weights a projection applies: sign * |W_raw| under Dale's law, else W; a sparse
    projection's vector scattered into its dense [pre, post] matrix (a convolution's kernel read at
    every pair first)."""
    W = params[f"{proj.name}.W"]
    W = proj.sign * jnp.abs(W) if proj.sign else W
    conn = proj.connectivity
    if conn is not None and conn.tie is not None:
        W = conn.scale * W[conn.tie]
    return W if conn is None else jnp.zeros(conn.shape, W.dtype).at[conn.pre, conn.post].set(W)


def bias(proj, params: dict):
    """The bias a projection adds to every postsynaptic neuron (a convolution's: one per channel)."""
    b = params[f"{proj.name}.b"]
    return b if proj.connectivity is None else jnp.repeat(b, proj.connectivity.bias_block)


def presynaptic(proj, x_t: dict, spikes: dict, history: dict):
    """What a projection reads at this step: an input or this step's spikes (lag 0), or the past."""
    if proj.lag:
        return history[proj.pre][proj.lag - 1]
    return x_t[proj.pre] if proj.pre in x_t else spikes[proj.pre]


def advance_history(net: Network, history: dict, x_t: dict, spikes: dict) -> dict:
    return {pre: [x_t[pre] if pre in x_t else spikes[pre]] + old[:-1] for pre, old in history.items()}


def group_step(net: Network, name: str, params: dict, state: dict, ys: dict):
    g = net.groups[name]
    if isinstance(g, Readout):
        return {"r": state["r"] * net.readout_decay(name) + ys["y"]}
    return neuron_step(g.neuron, net.dt, state, ys, elementwise(net, params, name))


def step(net: Network, params: dict, state: dict, x_t: dict):
    """Advance every group one step; returns the new state and this step's spikes."""
    history = state["_history"]
    new_state, spikes = {}, {}
    for name in net.order():
        g = net.groups[name]
        ports = ("y",) if isinstance(g, Readout) else g.neuron.ports
        ys = {port: 0.0 for port in ports}
        if getattr(g, "driven_by", None):  # an AlignPre synapse, driven one-to-one
            ys["y"] = x_t[g.driven_by] if g.driven_by in x_t else spikes[g.driven_by]
        for p in net.into(name):
            ys[p.port] = ys[p.port] + presynaptic(p, x_t, spikes, history) @ weight(p, params)
            if p.bias:
                ys[p.port] = ys[p.port] + bias(p, params)
        new_state[name] = group_step(net, name, params, state[name], ys)
        if not isinstance(g, Readout):
            spikes[name] = spike_of(g.neuron, net.dt, new_state[name], elementwise(net, params, name))
    new_state["_history"] = advance_history(net, history, x_t, spikes)
    return new_state, spikes


def step_loss(net: Network, r, target, w):
    if net.loss.kind == "cross_entropy":
        logp = jax.nn.log_softmax(r, axis=-1)
        nll = -jnp.take_along_axis(logp, target[:, None].astype(jnp.int32), axis=-1)[:, 0]
        return w * jnp.mean(nll)
    return w * jnp.mean((r - target) ** 2)


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

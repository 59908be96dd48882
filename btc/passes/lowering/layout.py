"""The module's globals: every buffer the compiled model keeps between calls, with its role.

Roles (the manifest's `memory_bytes` sums by them): param, grad, adam_m, adam_v, optimizer, state,
trace, counter (time steps since reset, for pp-prop's bias correction), adjoint (BPTT's carry).
"""
from __future__ import annotations

from btc.algorithm import Algorithm
from btc.passes.lowering.context import Lowering

__all__ = ["declare_globals"]


def declare_globals(lw: Lowering) -> None:
    v, B = lw.v, lw.B
    for i, (name, shape) in enumerate(lw.params):
        lw.declare(f"p{i}", shape, "param", name, init=None)
        lw.declare(f"g{i}", shape, "grad", name)
        if lw.options.optimizer == "adam":
            lw.declare(f"m{i}", shape, "adam_m", name)
            lw.declare(f"u{i}", shape, "adam_v", name)
    lw.declare("opt_step", (), "optimizer", "step")
    if lw.options.update_every:  # time steps since the last in-module update
        lw.declare("t_upd", (), "optimizer", "steps since update")
    for g in v.order:
        info = v.groups[g]
        for s, value in zip(info.states, info.init):
            lw.declare(f"h_{g}_{s}", (B, info.size), "state", f"{g}.{s}", init=float(value))
    for pre, lags in lw.histories.items():
        for k in range(lags):
            lw.declare(f"hist_{pre}_{k}", (B, v.size(pre)), "state", f"{pre}.past{k + 1}")
    for t in v.traces.values():
        for s in range(t.num_states):
            lw.declare(f"tr_{t.name}_{s}", t.shape(B), "trace", f"{t.name}[{s}]")
    if lw.corrected:  # pp-prop's bias correction counts time steps since the last reset
        lw.declare("t_seq", (), "counter", "steps since reset")
    if lw.algorithm is Algorithm.BPTT:  # adjoints carried from step t+1 to t during the reverse sweep
        for g in v.order:
            for s in v.groups[g].states:
                lw.declare(f"fut_{g}_{s}", (B, v.groups[g].size), "adjoint", f"{g}.{s}")
        for g, lags in lw.spike_histories().items():
            for k in range(lags):  # credit for the spikes of step t-k from steps after t
                lw.declare(f"futs_{g}_{k}", (B, v.groups[g].size), "adjoint", f"{g}.spikes-{k}")

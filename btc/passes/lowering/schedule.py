"""The online schedule: one lowering rule per schedule op, run in the order `btc.schedule` lists.

A rule is registered with `@lowers("btc.<op>")` beside its code (trace_rules.py, grad_rules.py,
and the learning signal below); it gets the typed op (btc.dialect.typed), reads this step's values
from `StepValues` and writes the next values of the globals it owns into `sv.nxt`. A new schedule op
needs its declaration (dialect/ops.py), its place in the schedule (btc-rewrite-online) and one rule
here or in a module listed in `_RULE_MODULES`; no other lowering code changes.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from btc.dialect.ops import SCHEDULE_OPS
from btc.errors import BtcError
from btc.passes.lowering.backward import backward
from btc.passes.lowering.context import Lowering
from btc.passes.lowering.event_grad import GradientBlock
from btc.passes.lowering.forward import Step
from btc.passes.lowering.text import Fn, tt

__all__ = ["RULES", "lowers", "StepValues", "run_schedule"]

RULES: dict[str, Callable] = {}
_RULE_MODULES = ("trace_rules", "grad_rules")


def lowers(op_name: str):
    """Register the decorated function as the lowering rule of schedule op `op_name`."""
    if op_name not in SCHEDULE_OPS:
        raise AssertionError(f"{op_name} is not a schedule op; schedule ops: {SCHEDULE_OPS}")

    def register(rule):
        RULES[op_name] = rule
        return rule
    return register


@dataclass
class StepValues:
    """One time step as the schedule's rules see it: the forward values, the loss gradient, this
    step's inputs, the values at the start of the step (`cur`) and the next ones (`nxt`)."""

    fn: Fn
    st: Step
    dLdr: str
    W: dict
    xt: dict
    cur: dict
    nxt: dict
    a_h: dict = field(default_factory=dict)  # learning signal per group, once a rule asked for it
    a_s: dict = field(default_factory=dict)  # dL_t/ds per spiking group
    signals: dict | None = None  # the within-step backward, computed once for every group
    post_sum: dict = field(default_factory=dict)  # sum_s eps'[s]*delta[s] per post/bias/elem trace
    inv_corr: dict = field(default_factory=dict)  # 1 / (1 - alpha^(k+1)) per bias-corrected trace
    block: GradientBlock | None = None  # the loop iteration's regrouped (event-driven) weight gradients


def run_schedule(lw: Lowering, sv: StepValues) -> None:
    """Lower every op of the schedule, in order, for one time step."""
    for module in _RULE_MODULES:
        importlib.import_module(f"btc.passes.lowering.{module}")
    sv.inv_corr = _inverse_corrections(lw, sv.fn, sv.cur, sv.nxt)
    for op in lw.schedule:
        name = op.DECL.name
        if name not in RULES:
            raise BtcError(f"no lowering rule for {name}; rules exist for {sorted(RULES)}")
        RULES[name](lw, sv, op)


@lowers("btc.learning_signal")
def learning_signal(lw: Lowering, sv: StepValues, op) -> None:
    """delta = dL_t/dh_t of one group; one within-step backward serves every group."""
    if sv.signals is None:
        sv.signals, _, sv.a_s = backward(lw, sv.fn, sv.st, sv.dLdr, sv.W)
    sv.a_h[op.group] = sv.signals[op.group]


def _inverse_corrections(lw: Lowering, fn: Fn, cur: dict, nxt: dict) -> dict:
    """1 / (1 - alpha_f^(k+1)) per bias-corrected trace, k = steps since reset; advances k."""
    if not lw.corrected:
        return {}
    k, k1 = fn.name("k"), fn.name("k")
    fn.emit(f"{k} = tensor.extract {cur['t_seq']}[] : {tt()}")
    fn.emit(f"{k1} = arith.addf {k}, {fn.const(1.0)} : f32")
    out = {}
    for t in lw.corrected:
        pw, c, inv = fn.name("bc"), fn.name("bc"), fn.name("bc")
        fn.emit(f"{pw} = math.powf {fn.const(t.decay)}, {k1} : f32")
        fn.emit(f"{c} = arith.subf {fn.const(1.0)}, {pw} : f32")
        fn.emit(f"{inv} = arith.divf {fn.const(1.0)}, {c} : f32")
        out[t.name] = inv
    kt = fn.name("kt")
    fn.emit(f"{kt} = tensor.from_elements {k1} : {tt()}")
    nxt["t_seq"] = kt
    return out

"""The rules of btc-lower-to-linalg, one module per concern (the pass itself is lower_to_linalg.py).

  context.py     Lowering: shapes, globals, exported functions and their ABI (Arg, export)
  layout.py      the module's globals and their roles
  text.py        Fn: linalg/tensor/arith/scf text for one function body
  bodies.py      scalar bodies of elementwise generics shared by several rules
  forward.py     the forward step (matmuls, each group's derivative region) and the time loop
  sparse.py      sparse projections: index tables, and products dense or sparse alike at the call site
  loss.py        one rule per btc.loss kind: the loss and dL/dr
  backward.py    the within-step backward (the learning signal)
  schedule.py    the rule registry of btc.schedule ops (@lowers), the learning-signal rule
  trace_rules.py rules of btc.update_*_trace
  grad_rules.py  rules of btc.accumulate_*grad
  online.py      train_chunk (the K-step loop running the schedule; in-module updates)
  bptt.py        bptt_forward_step / bptt_begin_backward / bptt_backward_step, the tape
  inference.py   infer_chunk, record_step, peek_step
  optimizer.py   Adam/SGD, clipping, weight decay, apply_update
  state_io.py    reset_state, zero_grads, reset_optimizer, get/set_params, get_grads
  abi.py         the ABI record the lowering attaches to the module
"""
from __future__ import annotations

from btc.algorithm import Algorithm
from btc.errors import BtcError
from btc.passes._view import ModelView
from btc.passes.lowering.abi import PARAMETER_SCOPE, Abi, abi_of, step_macs
from btc.passes.lowering.bptt import bptt_backward_step, bptt_begin_backward, bptt_forward_step
from btc.passes.lowering.context import Lowering, LoweringOptions
from btc.passes.lowering.inference import infer_chunk, peek_step, record_step
from btc.passes.lowering.layout import declare_globals
from btc.passes.lowering.online import train_chunk
from btc.passes.lowering.optimizer import OPTIMIZERS, apply_update
from btc.passes.lowering.state_io import params_io, reset_state
from btc.passes.plan_events import SPIKE_DRIVEN

__all__ = ["lower", "Abi", "PARAMETER_SCOPE", "Lowering", "LoweringOptions", "OPTIMIZERS", "LARGE_STEP_MACS", "FUNCTIONS"]

# Above this many multiply-accumulates per step the matmuls dominate: train_chunk is not unrolled
# (unrolling 4 steps ran 1.35x faster at N=128 and 1.55x slower at N=2048) and the runtime uses
# the multi-threaded driver (python benchmarks/bench_drivers.py).
LARGE_STEP_MACS = 1 << 22

_ONLINE = lambda lw: lw.algorithm.online  # noqa: E731
_BPTT = lambda lw: lw.algorithm is Algorithm.BPTT  # noqa: E731
_ALWAYS = lambda lw: True  # noqa: E731

# The exported functions, in module order, each with the condition under which the module has it
# (train_chunk also writes train_chunk_fast and train_chunk_roomy, and in some modules train_chunk_tight, for a
# module with event-driven work: online.py).
FUNCTIONS = [
    (train_chunk, _ONLINE),
    (bptt_forward_step, _BPTT), (bptt_begin_backward, _BPTT), (bptt_backward_step, _BPTT),
    (infer_chunk, _ALWAYS), (record_step, _ALWAYS), (reset_state, _ALWAYS), (params_io, _ALWAYS),
    (apply_update, _ALWAYS), (peek_step, lambda lw: lw.options.partitioned),
]


def lower(view: ModelView, options: LoweringOptions) -> tuple[Lowering, Abi]:
    """Declare the globals and write every function; returns the lowering and its ABI record."""
    lw = Lowering(view, options)
    small = step_macs(view) < LARGE_STEP_MACS
    regrouped = any(p.weight_gradient in SPIKE_DRIVEN for p in view.projections.values())
    if regrouped and options.update_every:
        raise BtcError("a weight gradient regrouped per block (btc-plan-events) cannot be read by an in-module "
                       f"update every {options.update_every} steps; plan the events with the same update_every")
    lw.unroll = options.unroll or (view.event_block if regrouped else
                                   next(u for u in ((4, 2, 1) if small else (1,)) if view.chunk % u == 0))
    declare_globals(lw)
    for build, applies in FUNCTIONS:
        if applies(lw):
            build(lw)
    return lw, abi_of(lw)

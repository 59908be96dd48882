"""btc-plan-events: reads the analysed model (which signals are spike trains) and the trace plan;
annotates every projection with how its step is computed, dense or event-driven, by a cost model,
and every input and group with its expected activity (`btc.activity`, sizing its active lists).

`propagation = "event"`: pre @ W sums the rows of W that the active (non-zero) inputs of each
batch row select, exact for a binary presynaptic signal. `weight_gradient = "event"`: pp-prop's
dW = sum_t eps_x^T L^t is regrouped over blocks of `btc.event_block` steps (pp-prop.md section 7):
one dense outer product per block plus, per presynaptic spike, one row of the block's backward
filter. Both are exact rearrangements (equal up to float summation order). A sparse projection
(pre_index/post_index) is "sparse" for both: its work follows its connected pairs; "sparse-event"
where its signal is binary and the cost model finds it cheaper: the active inputs push their pairs
(propagation) and the block's spikes push their pairs' entries of the backward filter (gradient), in
the optimistic train_chunk variants (lowering/sparse_events.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iree.compiler import ir

from btc.dialect import make_attribute, set_module_attribute
from btc.dialect.ops import ANNOTATIONS
from btc.errors import BtcError
from btc.passes._view import ModelView

__all__ = ["PlanEventsPass", "EVENT_MODES", "DEFAULT_ACTIVITY", "projection_costs", "event_block", "list_capacity",
           "SPIKE_DRIVEN", "spike_driven", "push_width",
           "step_list_capacity", "first_step_list_capacity", "TIGHT_SWING", "TIGHT_LISTS"]

EVENT_MODES = ("auto", "on", "off")

DEFAULT_ACTIVITY = ANNOTATIONS["btc.activity"].default

# The cost model, in dense multiply-accumulates (one MAC of linalg.matmul), measured on the 2-core
# CI machine kind with llvm-cpu (benchmarks/README.md, "Where the time goes"): summing a gathered table
# entry costs about 6 MACs (the gather is bound by memory, the matmul by arithmetic); listing the active
# entries (flags, prefix sum, binary search) about 20 MACs per entry of the binary tensor. The costs are
# those of the first optimistic variant, which runs unless a list overflows (train_chunk_tight for a sparse
# projection's whole-batch lists, else train_chunk_fast; btc.runtime.tiers): the exact path past a list's
# capacity costs ~3x the whole chunk, and the roomier variants come first.
GATHER_MACS = 6.0
# a scattered update (a sparse projection's pushed pair: the value's and destination's reads and the scatter)
# about 7 gathers: 1.0 M updates took 7-8 ms at N=16,384, 1 %, B=32, against ~1 ns per pulled slot
SCATTER_MACS = 42.0
LIST_MACS_PER_ENTRY = 20.0
FIXED_MACS = 500_000  # the extra dispatches of an event-driven projection
MAX_BLOCK = 20  # steps per regrouped gradient block: one loop iteration holds them all (compile time grows)
MIN_BLOCK = 4  # below this the per-block dense outer product saves too little


def list_capacity(n: int, activity: float) -> int:
    """Entries per active list over n positions: twice the expected count plus 4, a multiple of 4.
    A longer list stays exact but takes a slow path (a binary search per entry and output), or in an
    optimistic function spills (events._spilled). (Plus 8, a multiple of 8, gave a regrouped gradient's
    per-neuron lists 16 entries for 3.2 expected at 0.5 % firing over 640 (step, batch) rows: 80 % of
    its gathered rows were padding.)"""
    return min(n, 4 * math.ceil((2.0 * activity * n + 4) / 4))


# train_chunk_tight's margin over the declared activity, for a recurrent network's swing from step to step:
# bench_sparse.py's network, told 0.5 %, fires 0.41 % on average at N=16,384 (0.34 % at N=65,536) and 0.52 %
# in its busiest step at both sizes. So it fits a declared activity near the busiest steps, not the mean
# (told 0.34 % at N=65,536, its lists would hold 9,256 against 10,965 spikes: train_chunk_fast takes those)
TIGHT_SWING = 1.25


def step_list_capacity(n: int, activity: float) -> int:
    """Entries of a list over a whole step's batch (n = B x I positions, sparse_events.step_lists) in
    train_chunk_tight: TIGHT_SWING times the expected count plus 4 binomial standard deviations plus 4,
    rounded up to a multiple of 4, and at most list_capacity's. Over many entries the count is far from 2x
    its expectation; list_capacity's 2x is for an activity that drifts or was declared low, which
    train_chunk_fast still takes."""
    mu = activity * n
    return min(list_capacity(n, activity), 4 * math.ceil((TIGHT_SWING * mu + 4 * math.sqrt(mu) + 4) / 4))


# train_chunk_tight is written where some whole-batch list is at most this fraction of train_chunk_fast's
# (from about 130 expected entries a step; below, the standard deviations leave little to save)
TIGHT_LISTS = 0.8


def first_step_list_capacity(n: int, activity: float) -> int:
    """A whole-batch list's capacity in the first optimistic variant that its own sizes call for:
    train_chunk_tight's where that is at most TIGHT_LISTS of train_chunk_fast's, else train_chunk_fast's."""
    tight, fast = step_list_capacity(n, activity), list_capacity(n, activity)
    return tight if tight <= TIGHT_LISTS * fast else fast


def push_width(fan_out: int) -> int:
    """Slots per row of a sparse projection's push tables: its largest fan-out, rounded up to a multiple of 8.
    IREE tiles the row copies by a divisor of the width: a prime one (101 at N=65,536, 0.1 %) gave workgroups
    one column wide, and the copies took 21-31 ms instead of 1.2-1.5 ms (a 97-, 101-, 221-wide table against
    100, 104, 216; benchmarks/README.md)."""
    return 8 * math.ceil(max(fan_out, 1) / 8)


# Entries past a list's capacity that the optimistic variants spill into tiles (events._spilled) instead of
# failing the chunk. Propagation: one tile (a list's capacity) per eighth of the batch; a burst in a few batch
# rows (recurrent_lif N=8192 at 0.4 % firing: 33 active inputs per row on average, up to 98 in one row and
# step). Regrouped gradient: three entries per presynaptic neuron; as recurrent_lif N=2048 trains (lr 1e-3)
# its firing drifts from 0.39 % to 0.58 % in 8 updates and the tiles of 12 it spills from 270 to 505 a
# block: two per neuron allow 341, three 512 (0.61 %: 543).
GRADIENT_SPILL_PER_INPUT = 3


def propagation_spill_tiles(batch: int) -> int:
    return max(1, batch // 8)


def event_block(chunk: int) -> int:
    """The largest divisor of the chunk up to MAX_BLOCK: a block never straddles two calls."""
    return max(d for d in range(1, min(chunk, MAX_BLOCK) + 1) if chunk % d == 0)


SPIKE_DRIVEN = ("event", "sparse-event")


def spike_driven(p) -> bool:
    """Whether some of a projection's work follows its presynaptic spikes (its signal must be 0/1)."""
    return p.propagation in SPIKE_DRIVEN or p.weight_gradient in SPIKE_DRIVEN


def projection_costs(B: int, I: int, O: int, activity: float, block: int, slots: int = 0,
                     width: int = 0) -> dict[str, float]:
    """Expected MACs per step of each way to compute one projection, for inputs of this activity;
    `slots`: a sparse projection's padded pairs (each product gathers a batch row per slot), `width`: its push
    tables' slots per presynaptic neuron (push_width: each listed spike pushes that many)."""
    dense = float(B * I * O)
    if slots:
        pulled = GATHER_MACS * B * slots
        pushed = SCATTER_MACS * first_step_list_capacity(B * I, activity) * width + LIST_MACS_PER_ENTRY * B * I
        return {"propagation_sparse": pulled, "gradient_sparse": pulled,
                "propagation_sparse-event": pushed + FIXED_MACS,
                "gradient_sparse-event": pulled / block + pushed + FIXED_MACS / block,
                "propagation_dense": dense, "gradient_dense": dense}
    # each batch row's list, and the tiles its bursts spill into
    step_lists = (GATHER_MACS * (B + propagation_spill_tiles(B)) * list_capacity(I, activity) * O
                  + LIST_MACS_PER_ENTRY * B * I)
    # per block: the lists, their spilled entries' tiles and hot sums (about 1 per presynaptic neuron), the pull
    block_lists = (GATHER_MACS * I * (list_capacity(block * B, activity) + GRADIENT_SPILL_PER_INPUT + 1) * O + I * O
                   + LIST_MACS_PER_ENTRY * block * B * I) / block
    return {"propagation_dense": dense,
            "propagation_event": step_lists + FIXED_MACS,
            "gradient_dense": dense,
            "gradient_event": dense / block + block_lists + FIXED_MACS / block}


@dataclass(frozen=True)
class PlanEventsPass:
    name = "btc-plan-events"
    mode: str = "auto"  # auto: the cost model decides; on: event-driven wherever exact; off: dense
    activity: float = DEFAULT_ACTIVITY  # expected fraction of a spike train's entries active per step
    activities: tuple = ()  # ("name=fraction", ...): an input's or group's own expected activity
    update_every: int = 0  # an in-module update reads the gradient every k steps: no regrouping then
    partitioned: bool = False  # one rank of a partitioned network: no optimistic train_chunk variants

    def __post_init__(self):
        if self.mode not in EVENT_MODES:
            raise BtcError(f"{self.name}: mode must be one of {list(EVENT_MODES)}, got {self.mode!r}")
        if isinstance(self.activity, bool) or not 0.0 < float(self.activity) <= 1.0:
            raise BtcError(f"{self.name}: activity must be a fraction in (0, 1], got {self.activity!r}")

    def run(self, module) -> None:
        view = ModelView(module)
        own = self._activities(view)
        block = event_block(view.chunk) if not self.update_every else 1
        any_gradient = False
        with module.context, ir.Location.unknown():
            for name in [*view.inputs, *view.groups]:
                view.source_op(name).attributes["btc.activity"] = make_attribute("float", own.get(name, self.activity))
            for p in view.projections.values():
                p_op = view.projection_ops[p.name]
                if p.sparse:  # its storage decides: work over the connected pairs, pulled or pushed by spikes
                    propagate, regroup = self._sparse_choice(view, p, own, block)
                    any_gradient |= regroup
                    p_op.attributes["propagation"] = make_attribute("str", "sparse-event" if propagate else "sparse")
                    p_op.attributes["weight_gradient"] = make_attribute("str", "sparse-event" if regroup else "sparse")
                    continue
                binary = view.binary(p.pre)
                costs = projection_costs(view.batch, view.size(p.pre), view.size(p.post),
                                         own.get(p.pre, self.activity), block)
                propagate = binary and self._choose(costs["propagation_event"] < costs["propagation_dense"])
                regroup = (binary and _learns_by_pp_prop(view, p) and block > 1
                           and self._choose(block >= MIN_BLOCK and costs["gradient_event"] < costs["gradient_dense"]))
                any_gradient |= regroup
                p_op.attributes["propagation"] = make_attribute("str", "event" if propagate else "dense")
                p_op.attributes["weight_gradient"] = make_attribute("str", "event" if regroup else "dense")
        set_module_attribute(module, "btc.event_block", block if any_gradient else 1)

    def _sparse_choice(self, view: ModelView, p, own: dict, block: int) -> tuple[bool, bool]:
        """(push by spikes in propagation, in the regrouped gradient) for a sparse projection. Not for shared
        weights (a convolution: its gradient sums over the pairs of each weight) nor partitioned ranks, whose
        train_chunk has no optimistic variant to run the pushes in."""
        if p.tie is not None or self.partitioned or not view.binary(p.pre):
            return False, False
        degrees = np.bincount(p.post_index, minlength=view.size(p.post))
        slots = int(degrees.max()) * degrees.size  # the pull side's padded pairs (a single table)
        width = push_width(int(np.bincount(p.pre_index).max()))
        costs = projection_costs(view.batch, view.size(p.pre), view.size(p.post), own.get(p.pre, self.activity),
                                 block, min(slots, 2 * p.nnz), width)
        # (an in-module update re-reads W every step: the push table is gathered before the loop only)
        propagate = not self.update_every and self._choose(costs["propagation_sparse-event"] < costs["propagation_sparse"])
        regroup = (_learns_by_pp_prop(view, p) and block > 1 and not self.update_every
                   and self._choose(block >= MIN_BLOCK and costs["gradient_sparse-event"] < costs["gradient_sparse"]))
        return propagate, regroup

    def _activities(self, view: ModelView) -> dict[str, float]:
        out = {}
        for item in self.activities:
            name, sep, value = item.partition("=")
            try:
                out[name] = float(value) if sep else -1.0
            except ValueError:
                out[name] = -1.0
            if not 0.0 < out[name] <= 1.0:
                raise BtcError(f"activity {item!r}: expected NAME=FRACTION with a fraction in (0, 1], e.g. x=0.1")
            if name not in view.inputs and name not in view.groups:
                raise BtcError(f"activity {item!r}: no input or group {name!r}; "
                               f"inputs and groups: {sorted([*view.inputs, *view.groups])}")
        return out

    def _choose(self, cheaper: bool) -> bool:
        return self.mode == "on" or (self.mode == "auto" and cheaper)


def _learns_by_pp_prop(view: ModelView, p) -> bool:
    """The trace plan gave this projection's signal a presynaptic trace and the projection no D-RTRL
    trace (BPTT plans no traces)."""
    pre_trace = any(t.kind == "pre" and t.of == p.pre and t.delay == p.lag for t in view.traces.values())
    return pre_trace and p.learns and view.dense_trace(p.name) is None

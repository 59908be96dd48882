"""pp-prop's weight gradient regrouped over a block of steps (pp-prop.md section 7), for projections
whose `weight_gradient` is "event".

Over the block t0..t1 of one loop iteration, with e0 the presynaptic trace carried into it and
L^t the per-step postsynaptic factor,

    sum_t (eps_x^t)^T L^t = alpha e0^T M^t0 + sum_tau (x^tau)^T M^tau,   M^tau = L^tau + alpha M^(tau+1).

The first term is one dense outer product per block (over the pairs of a sparse projection); for a dense W
it is deferred to the chunk's end instead, where the blocks' e0 and alpha M^t0 stacked make it one matmul
(`deferred`, online._deferred_e0: loops of two blocks or more, while the stacks fit a byte budget; per block
it was a 32-deep product fused with a pass over the gradient). The second
adds, per presynaptic spike (b, i, tau), the row M^tau[b, :] to row i of the gradient (a sparse
projection's spikes push their pairs' entries of M^tau instead: sparse_events.event_gradient). The block's values are SSA values of one
loop iteration, so nothing per step is carried through the loop (IREE copies carried tensors).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from btc.passes.lowering.bodies import decay_body, scale_body
from btc.passes.lowering.active_lists import ActiveLists, active_lists
from btc.passes.lowering.events import gather_rows_sum, list_capacity_of
from btc.passes.lowering.products import weight_outer
from btc.passes.lowering.sparse import SparseWeights
from btc.passes.lowering.sparse_events import event_gradient, step_lists
from btc.passes.lowering.text import PACK_MIN_ROWS, Fn, tt
from btc.passes.plan_events import GRADIENT_SPILL_PER_INPUT

__all__ = ["GradientBlock"]

# a dense W's plain gradient is stacked per block only if both its sides are at least this wide
STACKED_MIN_SIDE = 64


@dataclass
class _Pending:
    trace: str  # the presynaptic trace: its spikes' lists are shared by every projection reading it
    alpha: float
    e0: str
    rows: int  # I
    cols: int  # O
    sparse: SparseWeights | None  # a sparse projection's weights: its gradient is a vector over the pairs
    L: list = field(default_factory=list)


class GradientBlock:
    """Collects, step by step, what the regrouped gradients need; `flush` adds them at the block's end."""

    def __init__(self, fn: Fn, batch: int, activity: dict[str, float], steps: int = 1, blocks: int = 1,
                 deferred: dict[str, tuple[int, int]] | None = None, stacks_dense: bool = False):
        self.fn, self.B, self.activity = fn, batch, activity  # per trace: its signal's expected activity
        self.pending: dict[str, _Pending] = {}  # gradient key -> its block
        self.spikes: dict[str, list[str]] = {}  # trace -> x^t of each step of the block, shared by its projections
        self.listed: dict[str, list] = {}  # trace -> each step's lists of x^t its propagation made (or None)
        # gradient key -> (I, O) of the dense W whose e0 terms wait for the chunk's end, in carried stacks of
        # `blocks` blocks of `steps` steps; t0: the loop index at the block's first step (its rows in them)
        self.steps, self.blocks, self.deferred, self.t0 = steps, blocks, deferred or {}, None
        # gradient key -> ([eps_x^t], [L^t], I, O): a dense W's plain gradient, one packed product per block
        self.stacked: dict[str, tuple[list, list, int, int]] = {}
        self.stacks_dense = stacks_dense and steps * batch >= PACK_MIN_ROWS and bool(fn.pack_tiles)

    def carried(self) -> list[tuple[str, str, str]]:
        """(key, initial value, type) of the stacks a time loop carries for the deferred e0 terms."""
        rows = self.blocks * self.B
        return [(f"{kind}_{grad}", self.fn.full((rows, n), 0.0), tt(rows, n))
                for grad, (I, O) in self.deferred.items() for kind, n in (("e0s", I), ("m0s", O))]

    def finish(self, out: dict) -> dict:
        """After the loop: each deferred gradient plus its stacked e0^T (alpha M^t0), one matmul."""
        rows = self.blocks * self.B
        for grad, (I, O) in self.deferred.items():
            out[grad] = self.fn.matmul_at(out[f"e0s_{grad}"], out[f"m0s_{grad}"], rows, I, O, out[grad], packed=True)
        return out

    def add(self, grad: str, trace: str, alpha: float, e0: str, x: str, L: str, rows: int, cols: int,
            sparse: SparseWeights | None = None, listed: ActiveLists | None = None) -> None:
        """Step j of gradient `grad`'s block: e0 is kept from the block's first step. `listed`: x's
        whole-batch lists (sparse_events.step_lists), if this step's propagation made them."""
        entry = self.pending.setdefault(grad, _Pending(trace, alpha, e0, rows, cols, sparse))
        step = len(entry.L)
        entry.L.append(L)
        steps = self.spikes.setdefault(trace, [])
        if len(steps) == step:  # the first projection of this trace to reach step j records x^j
            steps.append(x)
            self.listed.setdefault(trace, []).append(listed)

    def stacks(self, rows: int, cols: int) -> bool:
        """Whether a dense W of this shape has its plain gradient summed once per block (add_stacked): both
        sides wide enough to fill the packed product's tiles (the readout's 10 columns are not)."""
        return self.stacks_dense and min(rows, cols) >= STACKED_MIN_SIDE

    def add_stacked(self, grad: str, trace: str, L: str, rows: int, cols: int) -> None:
        """Step j of a dense W's plain (not regrouped) gradient, sum_t (eps_x^t)^T L^t, added at the block's
        end as one packed product over its steps x batch rows (Fn.matmul_at). Per step it is a 32-deep
        product, which IREE runs at about half the packed one's rate (recurrent_lif N=16,384, x -> h)."""
        xs, Ls, _, _ = self.stacked.setdefault(grad, ([], [], rows, cols))
        xs.append(trace)
        Ls.append(L)

    def flush(self, cur: dict) -> dict:
        fn, B = self.fn, self.B
        out = dict(cur)
        for grad, (xs, Ls, I, O) in self.stacked.items():
            out[grad] = fn.matmul_at(_stack(fn, xs, B, I), _stack(fn, Ls, B, O), len(xs) * B, I, O, cur[grad],
                                     packed=True)
        self.stacked = {}
        stacks, lists = {}, {}  # per trace: its block's signal [steps*B, I]; its spikes listed per input
        # ("input") or, for sparse projections, per step (sparse_events.step_lists)

        def spikes_of(e: _Pending, kind: str):
            if e.trace not in stacks:
                stacks[e.trace] = _stack(fn, self.spikes[e.trace], B, e.rows)
            if (e.trace, kind) not in lists:
                steps, activity = len(self.spikes[e.trace]), self.activity[e.trace]
                lists[e.trace, kind] = (step_lists(fn, stacks[e.trace], steps, B, e.rows, activity) if kind == "step"
                                        else active_lists(fn, stacks[e.trace], (steps * B, e.rows), 0,
                                                          list_capacity_of(fn, steps * B, activity)))
            return lists[e.trace, kind]

        filters: dict = {}  # projections into one group share its L^t: one backward filter per (L, alpha)
        for grad, e in self.pending.items():
            key = (tuple(e.L), e.alpha)
            if key not in filters:
                filters[key] = self._backward_filter(e)
            first, stacked = filters[key]
            if grad in self.deferred:  # this block's rows of the stacks; its e0 term added after the loop
                row = self._block_row()
                for kind, value, n in (("e0s", e.e0, e.rows), ("m0s", first, e.cols)):
                    out[f"{kind}_{grad}"] = _insert_rows(fn, value, cur[f"{kind}_{grad}"], row, B,
                                                         self.blocks * B, n)
                g = cur[grad]
            else:
                g = weight_outer(fn, e.sparse, e.e0, first, B, e.rows, e.cols, cur[grad])  # (dense W: e.sparse None)
            if e.sparse:
                shared = self.listed[e.trace]  # the propagation's lists, if every step has them: no stack to list
                out[grad] = event_gradient(fn, e.sparse, shared if all(shared) else [spikes_of(e, "step")],
                                           stacked, g, B)
                continue
            # entries past the capacity: a few per presynaptic neuron on average (times the headroom)
            out[grad] = gather_rows_sum(fn, spikes_of(e, "input"), stacked, len(e.L) * B, e.cols, g,
                                        spill=int(GRADIENT_SPILL_PER_INPUT * e.rows * fn.headroom), padded=True)
        self.pending, self.spikes, self.listed, self.t0 = {}, {}, {}, None
        return out

    def _block_row(self) -> str:
        """The first row of this block in the deferred stacks: (t0 / steps) * B, an index."""
        fn = self.fn
        q, row = fn.name("blk"), fn.name("blk")
        fn.emit(f"{q} = arith.divui {self.t0}, {fn.index(self.steps)} : index")
        fn.emit(f"{row} = arith.muli {q}, {fn.index(self.B)} : index")
        return row

    def _backward_filter(self, e: _Pending) -> tuple[str, str]:
        """(alpha M^t0, the block's M^tau stacked step-major), M^tau = L^tau + alpha M^(tau+1)."""
        fn, B = self.fn, self.B
        M = [e.L[-1]]
        for L in reversed(e.L[:-1]):
            M.insert(0, fn.map([M[0], L], [(B, e.cols)] * 2, (B, e.cols), 1, decay_body(e.alpha))[0])
        first = fn.map([M[0]], [(B, e.cols)], (B, e.cols), 1, scale_body(e.alpha))[0]
        return first, _stack(fn, M, B, e.cols, zero_row=True)


def _insert_rows(fn: Fn, value: str, into: str, row, B: int, rows: int, cols: int) -> str:
    """value[B, cols] into into[rows, cols] at `row` (an index value or an int)."""
    n = fn.name("stk")
    fn.emit(f"{n} = tensor.insert_slice {value} into {into}[{row}, 0] [{B}, {cols}] [1, 1] : "
            f"{tt(B, cols)} into {tt(rows, cols)}")
    return n


def _stack(fn: Fn, values: list[str], B: int, cols: int, zero_row: bool = False) -> str:
    """[B, cols] values, one per step, as one [steps*B, cols] tensor (step-major); `zero_row`: and a
    row of zeros after them (events.padded_table)."""
    rows = len(values) * B + (1 if zero_row else 0)
    acc = fn.empty((rows, cols))
    if zero_row:
        acc = _insert_rows(fn, fn.full((1, cols), 0.0), acc, rows - 1, 1, rows, cols)
    for j, v in enumerate(values):
        acc = _insert_rows(fn, v, acc, j * B, B, rows, cols)
    return acc

"""btc-plan-traces: reads the analysed model and the algorithm options; produces one `btc.trace` op
per online trace buffer, and so decides, per projection, whether it learns by pp-prop or D-RTRL.

pp-prop projections share a presynaptic trace per distinct signal and a postsynaptic trace per
receiving group; a D-RTRL projection owns a per-weight trace [batch, pre, post] per state. Biases
and learned per-neuron parameters get exact [batch, size] traces under every algorithm.
BPTT keeps no traces: its memory is the stored sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from iree.compiler import ir

from btc.algorithm import ONLINE, Algorithm
from btc.dialect import TraceOp
from btc.errors import BtcError
from btc.passes._view import ModelView, TraceInfo

__all__ = ["PlanTracesPass", "post_trace_name", "bias_trace_name"]


def post_trace_name(group: str, port: str) -> str:
    return f"eps_f_{group}" if port == "y" else f"eps_f_{group}_{port}"


def bias_trace_name(group: str, port: str) -> str:
    return f"e_b_{group}" if port == "y" else f"e_b_{group}_{port}"


@dataclass(frozen=True)
class PlanTracesPass:
    name = "btc-plan-traces"
    algorithm: Algorithm = Algorithm.PP_PROP  # or its spelling, e.g. "hybrid"
    decay_pre: float = 0.9
    decay_post: float = 0.9
    correction: bool = True  # pp-prop's bias correction of eps_f, counted in time steps
    budget: int = 0  # hybrid: bytes all traces may use (0: D-RTRL wherever it is no larger than pp-prop)
    overrides: tuple = ()  # ("projection=algorithm", ...): a user's choice, which every rule respects

    def __post_init__(self):
        object.__setattr__(self, "algorithm", Algorithm.parse(self.algorithm))

    def run(self, module) -> None:
        for name, value in (("decay_pre", self.decay_pre), ("decay_post", self.decay_post)):
            if not 0.0 <= value < 1.0:
                raise BtcError(f"pp-prop {name} must be in [0, 1), got {value}")
        if not self.algorithm.online:
            return
        view = ModelView(module)
        if view.traces:
            raise BtcError("the module already has btc.trace ops: btc-plan-traces runs once")
        chosen = self._choose(view)
        traces = self._traces(view, chosen)
        names = [t.name for t in traces]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:  # e.g. group E with port exc and group E_exc with port y
            raise BtcError(f"trace names {clash} are produced twice by these group, port and parameter names; "
                           "rename a group")
        with module.context, ir.Location.unknown(), ir.InsertionPoint(module.body):
            for t in traces:  # attributes that do not apply to the kind are left out (None)
                TraceOp.build(sym_name=t.name, kind=t.kind, of=t.of, delay=t.delay, size=t.size,
                              num_states=t.num_states, decay=t.decay, rows=t.rows or None, param=t.param or None,
                              correction=t.correction if t.kind == "post" else None,
                              port=t.port if t.kind in ("post", "bias") else None)

    # ---------------------------------------------------------------- per-projection choice
    def _overrides(self, view: ModelView) -> dict[str, Algorithm]:
        out = {}
        for item in self.overrides:
            proj, _, alg = item.partition("=")
            if proj not in view.projections:
                raise BtcError(f"per-projection algorithm {item!r}: no projection {proj!r}; "
                               f"projections: {sorted(view.projections)}")
            if alg not in ONLINE:
                raise BtcError(f"per-projection algorithm {item!r}: {alg!r} is not one of "
                               f"{[a.value for a in ONLINE]}")
            out[proj] = Algorithm(alg)
        return out

    def _choose(self, view: ModelView) -> dict[str, Algorithm]:
        fixed = self._overrides(view)
        if self.algorithm in ONLINE:
            return {p: fixed.get(p, self.algorithm) for p in view.projections}
        assert self.algorithm is Algorithm.HYBRID, self.algorithm  # bptt plans nothing
        chosen = {p: fixed.get(p, Algorithm.PP_PROP) for p in view.projections}
        free = sorted((p for p in view.projections if p not in fixed and view.projections[p].learns), key=lambda p: self._dense_bytes(view, p))
        if not self.budget:
            # D-RTRL where its trace is no larger than the pp-prop pair this projection alone would need
            for p in free:
                info = view.projections[p]
                pair = 4 * view.batch * (view.size(info.pre) + view.size(info.post) * view.groups[info.post].num_states)
                if self._dense_bytes(view, p) <= pair:
                    chosen[p] = Algorithm.D_RTRL
            return chosen
        total = self._total(view, chosen)
        if total > self.budget:
            raise BtcError(f"trace memory budget {self.budget:,} B is below what the plan needs with every "
                           f"free projection on pp-prop: {total:,} B")
        for p in free:  # cheapest exact traces first, while the whole plan fits the budget
            trial = dict(chosen, **{p: Algorithm.D_RTRL})
            if self._total(view, trial) <= self.budget:
                chosen = trial
        return chosen

    @staticmethod
    def _dense_bytes(view: ModelView, proj: str) -> int:
        p = view.projections[proj]
        return 4 * view.batch * _trace_rows(view, p) * view.size(p.post) * view.groups[p.post].num_states

    def _total(self, view: ModelView, chosen: dict[str, Algorithm]) -> int:
        return sum(t.bytes(view.batch) for t in self._traces(view, chosen))

    # ---------------------------------------------------------------- the traces of a choice
    def _traces(self, view: ModelView, chosen: dict[str, Algorithm]) -> list[TraceInfo]:
        traces = []
        pp = [view.projections[p] for p in view.projections if chosen[p] is Algorithm.PP_PROP and view.projections[p].learns]
        for src in view.sources():
            if any(p.source == src for p in pp):
                pre, lag = src.split("@")
                traces.append(TraceInfo(f"eps_x_{pre}_{lag}", "pre", pre, int(lag), view.size(pre), 1,
                                        self.decay_pre))
        for g in view.order:
            info = view.groups[g]
            for port in info.ports:
                if any(p.post == g and p.port == port for p in pp):
                    traces.append(TraceInfo(post_trace_name(g, port), "post", g, 0, info.size, info.num_states,
                                            self.decay_post, correction=self.correction, port=port))
            for p in view.learning(g):
                if chosen[p.name] is Algorithm.D_RTRL:
                    traces.append(TraceInfo(f"e_W_{p.name}", "dense", p.name, 0, info.size, info.num_states, 1.0,
                                            rows=_trace_rows(view, p)))
            for port in info.ports:
                if view.learned_biases(g, port):
                    traces.append(TraceInfo(bias_trace_name(g, port), "bias", g, 0, info.size, info.num_states, 1.0,
                                            port=port))
            for q in info.params:
                traces.append(TraceInfo(f"e_p_{g}_{q}", "elem", g, 0, info.size, info.num_states, 1.0, param=q))
        return traces


def _trace_rows(view: ModelView, p) -> int:
    """Rows of a D-RTRL trace: the presynaptic size, or for a sparse projection its largest fan-in
    (one trace per pull slot, btc/passes/lowering/sparse.py)."""
    if p.sparse:
        return int(np.bincount(p.post_index, minlength=view.size(p.post)).max())
    return view.size(p.pre)

"""btc-rewrite-online: reads the trace plan; produces a `btc.schedule` op listing, in execution
order, the update ops of one training step (online algorithms) or the reverse sweep (BPTT).

Online step, after the forward step: learning signals in reverse group order (the within-step
backward), presynaptic traces, then per group its postsynaptic, bias and per-neuron-parameter
traces and the gradient of every projection into it, each by the algorithm its trace says
(pp-prop: the pre/post pair; D-RTRL: its own per-weight trace).
"""
from __future__ import annotations

from dataclasses import dataclass

from iree.compiler import ir

from btc.algorithm import Algorithm
from btc.dialect import (AccumulateBiasGradOp, AccumulateDenseGradOp, AccumulateElemGradOp, AccumulateGradOp,
                         BpttBackwardOp, LearningSignalOp, ScheduleOp, UpdateBiasTraceOp, UpdateDenseTraceOp,
                         UpdateElemTraceOp, UpdatePostTraceOp, UpdatePreTraceOp, YieldOp)
from btc.errors import BtcError
from btc.passes._view import ModelView, source_key
from btc.passes.plan_traces import bias_trace_name, post_trace_name

__all__ = ["RewriteOnlinePass"]


@dataclass(frozen=True)
class RewriteOnlinePass:
    name = "btc-rewrite-online"
    algorithm: Algorithm = Algorithm.PP_PROP  # or its spelling, e.g. "bptt"

    def __post_init__(self):
        object.__setattr__(self, "algorithm", Algorithm.parse(self.algorithm))

    def run(self, module) -> None:
        view = ModelView(module)
        if view.schedule is not None:
            raise BtcError("the module already has a btc.schedule: btc-rewrite-online runs once")
        with module.context, ir.Location.unknown():
            schedule = ScheduleOp.build(algorithm=self.algorithm, ip=ir.InsertionPoint(module.body))
            with ir.InsertionPoint(schedule.regions[0].blocks.append()):
                if self.algorithm.online:
                    self._online(view)
                else:
                    BpttBackwardOp.build()
                YieldOp.build()  # IRDL-registered regions need a terminator

    @staticmethod
    def _online(view: ModelView) -> None:
        for g in reversed(view.order):
            LearningSignalOp.build(group=g)
        pre_traces = {source_key(t.of, t.delay): t.name for t in view.traces.values() if t.kind == "pre"}
        for name in pre_traces.values():
            UpdatePreTraceOp.build(trace=name)
        for g in view.order:
            for port in view.groups[g].ports:
                if post_trace_name(g, port) in view.traces:
                    UpdatePostTraceOp.build(trace=post_trace_name(g, port), group=g)
                if view.learned_biases(g, port):
                    UpdateBiasTraceOp.build(trace=bias_trace_name(g, port), group=g)
            for q in view.groups[g].params:
                UpdateElemTraceOp.build(trace=f"e_p_{g}_{q}", group=g)
                AccumulateElemGradOp.build(trace=f"e_p_{g}_{q}", group=g)
            for p in view.learning(g):
                dense = view.dense_trace(p.name)
                if dense:
                    UpdateDenseTraceOp.build(trace=dense.name, projection=p.name)
                    AccumulateDenseGradOp.build(projection=p.name, trace=dense.name)
                else:
                    AccumulateGradOp.build(projection=p.name, pre_trace=pre_traces[p.source],
                                           post_trace=post_trace_name(g, p.port))
                if p.bias:
                    AccumulateBiasGradOp.build(projection=p.name, trace=bias_trace_name(g, p.port))

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

from btc.passes._view import ModelView, source_key
from btc.passes.plan_traces import bias_trace_name, post_trace_name

__all__ = ["RewriteOnlinePass"]


def _sym(name: str):
    return ir.FlatSymbolRefAttr.get(name)


@dataclass(frozen=True)
class RewriteOnlinePass:
    name = "btc-rewrite-online"
    algorithm: str = "pp-prop"

    def run(self, module) -> None:
        view = ModelView(module)
        with module.context, ir.Location.unknown():
            schedule = ir.Operation.create("btc.schedule",
                                           attributes={"algorithm": ir.StringAttr.get(self.algorithm)},
                                           regions=1, ip=ir.InsertionPoint(module.body))
            block = schedule.regions[0].blocks.append()
            with ir.InsertionPoint(block):
                def stmt(name, **attrs):
                    ir.Operation.create(name, attributes={k: _sym(v) for k, v in attrs.items()})

                if self.algorithm == "bptt":
                    stmt("btc.bptt_backward")
                else:
                    self._online(view, stmt)
                ir.Operation.create("btc.yield")  # IRDL-registered regions need a terminator

    @staticmethod
    def _online(view: ModelView, stmt) -> None:
        for g in reversed(view.order):
            stmt("btc.learning_signal", group=g)
        pre_traces = {source_key(t.of, t.delay): t.name for t in view.traces.values() if t.kind == "pre"}
        for name in pre_traces.values():
            stmt("btc.update_pre_trace", trace=name)
        for g in view.order:
            for port in view.groups[g].ports:
                if post_trace_name(g, port) in view.traces:
                    stmt("btc.update_post_trace", trace=post_trace_name(g, port), group=g)
                if view.biased(g, port):
                    stmt("btc.update_bias_trace", trace=bias_trace_name(g, port), group=g)
            for q in view.groups[g].params:
                stmt("btc.update_elem_trace", trace=f"e_p_{g}_{q}", group=g)
                stmt("btc.accumulate_elem_grad", trace=f"e_p_{g}_{q}", group=g)
            for p in view.into(g):
                dense = view.dense_trace(p.name)
                if dense:
                    stmt("btc.update_dense_trace", trace=dense.name, projection=p.name)
                    stmt("btc.accumulate_dense_grad", projection=p.name, trace=dense.name)
                else:
                    stmt("btc.accumulate_grad", projection=p.name, pre_trace=pre_traces[p.source],
                         post_trace=post_trace_name(g, p.port))
                if p.bias:
                    stmt("btc.accumulate_bias_grad", projection=p.name, trace=bias_trace_name(g, p.port))

"""btc-lower-to-linalg: reads the model, its `btc.derivatives`, `btc.trace`s and `btc.schedule`;
produces upstream MLIR in place of every btc op: `util.global`s for parameters, gradients, optimizer
moments, states, traces and BPTT adjoints, and the functions

  pp-prop:  train_chunk(x[K,B,I]..., target, mask[K]) -> (loss, sum_t mask_t*readout_t [B,C])
            (the K-step time loop is an scf.for inside the module)
  BPTT:     bptt_forward_step(x_t, target_t, mask_t) -> (loss_t, readout_t, tape entries...)
            bptt_begin_backward(), bptt_backward_step(x_t, tape entries...)
  both:     infer_chunk(x[K,B,I]...) -> readout[K,B,C]; record_step(x_t) -> (readout, spikes, states)
            reset_state, zero_grads, reset_optimizer, apply_update(lr), get/set_params, get_grads

Per-step outputs are never stacked inside a loop: IREE 3.13 copies a tensor carried through scf.for
on every tensor.insert_slice (quadratic in K), so BPTT keeps its tape in the runtime, one step's
entries per call. The module attribute `btc.layout` (JSON) records every global's role and bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from iree.compiler import ir

from btc.dialect import attrs_of
from btc.passes._linalg_text import Fn, tt
from btc.passes._lower_step import (Step, StepLowering, _adam_body, _decay_body, _dense_grad,
                                    _dense_trace_update, _dot_body, _fma_body, _post_trace_body, _sgd_body,
                                    _transpose_apply_body)
from btc.passes._view import ModelView, source_key

__all__ = ["LowerToLinalgPass", "OPTIMIZERS", "LARGE_STEP_MACS", "tape_entries", "trace_plan"]

OPTIMIZERS = ("adam", "sgd")
# Above this many multiply-accumulates per step the matmuls dominate: train_chunk is not unrolled
# (unrolling 4 steps ran 1.35x faster at N=128 and 1.55x slower at N=2048) and the runtime uses
# the multi-threaded driver (python benchmarks/bench_drivers.py).
LARGE_STEP_MACS = 1 << 22


def step_macs(view: ModelView) -> int:
    return sum(view.batch * view.size(p.pre) * view.size(p.post) for p in view.projections.values())


def tape_entries(view: ModelView) -> list[tuple[str, tuple]]:
    """What BPTT keeps per step, in the order bptt_forward_step returns it: (name, shape)."""
    B = view.batch
    entries = [("dLdr", (B, view.readout().size))]
    for g in view.order:
        info = view.groups[g]
        S, N = info.num_states, info.size
        names = [f"D{k}" for k in range(S * S)] + [f"Df{k}_{s}" for k in range(len(info.ports)) for s in range(S)]
        names += [f"Dp{j}_{s}" for j in range(len(info.params)) for s in range(S)]
        names += [] if info.readout else [f"dsdh{s}" for s in range(S)] + [f"dsdp{j}" for j in range(len(info.params))]
        entries += [(f"{g}.{n}", (B, N)) for n in names]
    for key in view.sources():
        pre, lag = key.split("@")
        if pre not in view.inputs or lag != "0":  # this step's input is passed to the backward step again
            entries.append((f"src.{key}", (B, view.size(pre))))
    return entries


def trace_plan(view: ModelView) -> dict:
    """The planned traces and each projection's algorithm, as the manifest records them."""
    B = view.batch
    online = view.schedule is not None and attrs_of(view.schedule)["algorithm"] != "bptt"
    return {
        "projections": {p: ("bptt" if not online else "d-rtrl" if view.dense_trace(p) else "pp-prop")
                        for p in view.projections},
        "traces": [{"name": t.name, "kind": t.kind, "of": t.of, "states": t.num_states,
                    "shape": [t.num_states, *t.shape(B)], "bytes": t.bytes(B), "decay": t.decay,
                    **({"bias_correction": t.correction} if t.kind == "post" else {})}
                   for t in view.traces.values()],
        "trace_bytes": sum(t.bytes(B) for t in view.traces.values()),
    }


class _Lowering(StepLowering):
    unroll = 1
    def _func(self, name: str, args: str, results: list[str], fn: Fn, values: list[str]) -> str:
        types = ", ".join(results)
        fn.emit(f"return {', '.join(values)} : {types}" if values else "return")
        head = f"func.func @{name}({args})" + (f" -> ({types})" if results else "")
        return head + " {\n" + "\n".join(fn.lines) + "\n}"

    def _load_states(self, fn: Fn) -> dict:
        return {s: self._load(fn, s) for s in self._state_syms()}

    def _next_states(self, st: Step, cur: dict, xt: dict) -> dict:
        nxt = {}
        for g in self.v.order:
            for s, val in zip(self.v.groups[g].states, st.h[g]):
                nxt[f"h_{g}_{s}"] = val
        for pre, lags in self.histories.items():  # shift: the newest becomes past step 1
            for k in reversed(range(1, lags)):
                nxt[f"hist_{pre}_{k}"] = cur[f"hist_{pre}_{k - 1}"]
            nxt[f"hist_{pre}_0"] = xt[pre] if pre in self.v.inputs else st.spk[pre]
        return nxt

    # ---------------------------------------------------------------- pp-prop: the whole chunk in-module
    def train_chunk(self) -> str:
        """With update_every, the parameters and optimizer state are carried through the loop too,
        and train_chunk takes the learning rate and the number of valid (unpadded) steps."""
        fn = Fn()
        fn.chunk = self.K
        B, C = self.B, self.C
        continual = bool(self.update_every)
        W, b = ({}, {}) if continual else self._weights(fn)
        grads = [f"g{i}" for i in range(len(self.params))]
        carried = self._state_syms() + self._trace_syms() + grads
        if continual:
            carried += [k for k in self._optimizer_syms() if k not in grads] + ["t_upd"]
        carry = [(s, self._load(fn, s), self._type_of(s)) for s in carried]
        carry += [("loss", fn.full((), 0.0), tt()), ("rsum", fn.full((B, C), 0.0), tt(B, C))]

        def step(t, cur):
            nonlocal W, b
            if continual:
                W, b = self._params_of(fn, cur)
            xt = self._inputs_at(fn, t)
            st = self._forward(fn, cur, xt, W, b)
            w = self._step_weight(fn, t)
            r = st.h[self.v.readout().name][0]
            dLdr, loss = self._loss(fn, r, self._target_at(fn, t), w, cur["loss"])
            mask_t = fn.name("mt")
            fn.emit(f"{mask_t} = tensor.extract %mask[{t}] : {tt(self.K)}")
            rsum = fn.map([cur["rsum"], r], [(B, C)] * 2, (B, C), 1, _weighted_add_body(mask_t))[0]
            nxt = dict(cur, loss=loss, rsum=rsum, **self._next_states(st, cur, xt))
            self._online_updates(fn, st, dLdr, W, xt, cur, nxt)
            if continual:
                self._maybe_update(fn, t, nxt)
            return nxt

        out = self._loop(fn, carry, step, unroll=self.unroll)
        for s in carried:
            self._store(fn, out[s], s)
        args = self._signature(True) + (f", %lr: {tt()}, %valid: {tt(dtype='i32')}" if continual else "")
        return self._func("train_chunk", args, [tt(), tt(B, C)], fn, [out["loss"], out["rsum"]])

    def _params_of(self, fn: Fn, cur: dict) -> tuple[dict, dict]:
        """_weights, from carried values instead of globals."""
        return self._split_params([cur[f"p{i}"] for i in range(len(self.params))], fn)

    def _online_updates(self, fn: Fn, st: Step, dLdr: str, W: dict, xt: dict, cur: dict, nxt: dict):
        """One step of the schedule: traces, then gradients, reading this step's forward values."""
        v, B = self.v, self.B
        a_h: dict = {}
        signals = None
        post_sum: dict = {}
        inv_corr = self._inverse_corrections(fn, cur, nxt)
        for op, a in self.schedule:
            if op == "btc.learning_signal":
                if signals is None:  # one within-step backward serves every group
                    signals, _ = self._backward(fn, st, dLdr, W)
                a_h[a["group"]] = signals[a["group"]]
            elif op == "btc.update_pre_trace":
                t = v.traces[a["trace"]]
                x = self._source_value(source_key(t.of, t.delay), xt, cur, st)
                key = f"tr_{t.name}_0"
                nxt[key] = fn.map([cur[key], x], [(B, t.size)] * 2, (B, t.size), 1, _decay_body(t.decay))[0]
            elif op in ("btc.update_post_trace", "btc.update_bias_trace", "btc.update_elem_trace"):
                t, g = v.traces[a["trace"]], a["group"]
                S, N = t.num_states, t.size
                old = [cur[f"tr_{t.name}_{s}"] for s in range(S)]
                exact = op != "btc.update_post_trace"
                drive = st.Dp[g][v.groups[g].params.index(t.param)] if t.kind == "elem" else st.Df[g][t.port]
                res = fn.map(st.D[g] + drive + old + a_h[g], [(B, N)] * (S * S + 3 * S), (B, N), S + 1,
                             _post_trace_body(S, 1.0 if exact else t.decay, exact, inv_corr.get(t.name)))
                for s in range(S):
                    nxt[f"tr_{t.name}_{s}"] = res[s]
                post_sum[t.name] = res[S]
            elif op == "btc.update_dense_trace":
                t, p = v.traces[a["trace"]], v.projections[a["projection"]]
                x = self._source_value(p.source, xt, cur, st)
                new = _dense_trace_update(fn, st.D[p.post], st.Df[p.post][p.port], x,
                                          [cur[f"tr_{t.name}_{s}"] for s in range(t.num_states)], B, t.rows, t.size)
                for s, value in enumerate(new):
                    nxt[f"tr_{t.name}_{s}"] = value
            elif op == "btc.accumulate_dense_grad":
                t, p = v.traces[a["trace"]], v.projections[a["projection"]]
                i = self._param_index(f"{p.name}.W")
                nxt[f"g{i}"] = _dense_grad(fn, [nxt[f"tr_{t.name}_{s}"] for s in range(t.num_states)], a_h[p.post],
                                           cur[f"g{i}"], B, t.rows, t.size)
            elif op == "btc.accumulate_grad":
                p, pre_t = v.projections[a["projection"]], v.traces[a["pre_trace"]]
                i = self._param_index(f"{p.name}.W")
                nxt[f"g{i}"] = fn.matmul_at(nxt[f"tr_{pre_t.name}_0"], post_sum[a["post_trace"]], B,
                                            pre_t.size, v.size(p.post), cur[f"g{i}"])
            elif op == "btc.accumulate_bias_grad":
                p = v.projections[a["projection"]]
                i = self._param_index(f"{p.name}.b")
                nxt[f"g{i}"] = fn.sum_rows(post_sum[a["trace"]], B, v.size(p.post), cur[f"g{i}"])
            elif op == "btc.accumulate_elem_grad":
                t, g = v.traces[a["trace"]], a["group"]
                i = self._param_index(f"{g}.{t.param}")
                total = post_sum[t.name]
                if not v.groups[g].readout:  # the spike's own dependence on the parameter (a threshold)
                    direct = st.dsdp[g][v.groups[g].params.index(t.param)]
                    total = fn.map([total, self.a_s[g], direct], [(B, t.size)] * 3, (B, t.size), 1, _fma_body)[0]
                nxt[f"g{i}"] = fn.sum_rows(total, B, t.size, cur[f"g{i}"])

    def _inverse_corrections(self, fn: Fn, cur: dict, nxt: dict) -> dict:
        """1 / (1 - alpha_f^(k+1)) per bias-corrected trace, k = steps since reset; advances k."""
        if not self.corrected:
            return {}
        k, k1 = fn.name("k"), fn.name("k")
        fn.emit(f"{k} = tensor.extract {cur['t_seq']}[] : {tt()}")
        fn.emit(f"{k1} = arith.addf {k}, {fn.const(1.0)} : f32")
        out = {}
        for t in self.corrected:
            pw, c, inv = fn.name("bc"), fn.name("bc"), fn.name("bc")
            fn.emit(f"{pw} = math.powf {fn.const(t.decay)}, {k1} : f32")
            fn.emit(f"{c} = arith.subf {fn.const(1.0)}, {pw} : f32")
            fn.emit(f"{inv} = arith.divf {fn.const(1.0)}, {c} : f32")
            out[t.name] = inv
        kt = fn.name("kt")
        fn.emit(f"{kt} = tensor.from_elements {k1} : {tt()}")
        nxt["t_seq"] = kt
        return out

    def _param_index(self, name: str) -> int:
        return [n for n, _ in self.params].index(name)

    # ---------------------------------------------------------------- BPTT: one step per call
    def bptt_forward_step(self) -> str:
        fn = Fn()
        W, b = self._weights(fn)
        cur = self._load_states(fn)
        xt = self._inputs_at(fn, None)
        st = self._forward(fn, cur, xt, W, b)
        r = st.h[self.v.readout().name][0]
        dLdr, loss = self._loss(fn, r, self._target_at(fn, None), self._step_weight(fn, None), fn.full((), 0.0))
        for sym, val in self._next_states(st, cur, xt).items():
            self._store(fn, val, sym)
        tape = {"dLdr": dLdr}
        for g in self.v.order:
            S = self.v.groups[g].num_states
            tape.update({f"{g}.D{k}": st.D[g][k] for k in range(S * S)})
            tape.update({f"{g}.Df{k}_{s}": st.Df[g][port][s] for k, port in enumerate(self.v.groups[g].ports)
                         for s in range(S)})
            tape.update({f"{g}.dsdh{s}": v for s, v in enumerate(st.dsdh.get(g, []))})
            tape.update({f"{g}.Dp{j}_{s}": v for j, vs in enumerate(st.Dp[g]) for s, v in enumerate(vs)})
            tape.update({f"{g}.dsdp{j}": v for j, v in enumerate(st.dsdp.get(g, []))})
        entries = tape_entries(self.v)
        for name, _ in entries:
            if name.startswith("src."):
                tape[name] = self._source_value(name[4:], xt, cur, st)
        return self._func("bptt_forward_step", self._signature(True, per_step=True),
                          [tt(), tt(self.B, self.C)] + [tt(*shape) for _, shape in entries], fn,
                          [loss, r] + [tape[name] for name, _ in entries])

    def bptt_begin_backward(self) -> str:
        return self._setter("bptt_begin_backward", [(e["global"], 0.0) for e in self.layout if e["role"] == "adjoint"])

    def bptt_backward_step(self) -> str:
        """a_h^t = within-step signal + D^{t+1,T} a_h^{t+1} (+ spike credit from later steps, which
        reach back `lag` steps through recurrent or delayed projections)."""
        v, B = self.v, self.B
        fn = Fn()
        W, _ = self._weights(fn)
        entries = tape_entries(v)
        tape = {name: f"%tape{i}" for i, (name, _) in enumerate(entries)}
        st = Step({}, {}, {}, {}, {})
        for g in v.order:
            S = v.groups[g].num_states
            st.D[g] = [tape[f"{g}.D{k}"] for k in range(S * S)]
            st.Df[g] = {port: [tape[f"{g}.Df{k}_{s}"] for s in range(S)] for k, port in enumerate(v.groups[g].ports)}
            st.dsdh[g] = [tape[f"{g}.dsdh{s}"] for s in range(S)] if not v.groups[g].readout else []
            P = len(v.groups[g].params)
            st.Dp[g] = [[tape[f"{g}.Dp{j}_{s}"] for s in range(S)] for j in range(P)]
            st.dsdp[g] = [tape[f"{g}.dsdp{j}"] for j in range(P)] if not v.groups[g].readout else []
        fut = {g: [self._load(fn, f"fut_{g}_{s}") for s in v.groups[g].states] for g in v.order}
        pending = {g: [self._load(fn, f"futs_{g}_{k}") for k in range(lags)]
                   for g, lags in self.spike_histories().items()}
        a_h, a_y = self._backward(fn, st, tape["dLdr"], W, fut, {g: q[0] for g, q in pending.items()})
        xt = self._inputs_at(fn, None)
        for p in v.projections.values():
            x = tape.get(f"src.{p.source}") or xt[p.pre]
            i = self._param_index(f"{p.name}.W")
            a = a_y[p.post][p.port]
            self._store(fn, fn.matmul_at(x, a, B, v.size(p.pre), v.size(p.post), self._load(fn, f"g{i}")), f"g{i}")
            if p.bias:
                j = self._param_index(f"{p.name}.b")
                self._store(fn, fn.sum_rows(a, B, v.size(p.post), self._load(fn, f"g{j}")), f"g{j}")
        for g in v.order:  # learned per-neuron parameters: this step's local derivatives
            S, N = v.groups[g].num_states, v.groups[g].size
            for j, q in enumerate(v.groups[g].params):
                i = self._param_index(f"{g}.{q}")
                ins = a_h[g] + st.Dp[g][j]  # sum_s a_h[s]*Dp[s] (+ a_s*ds/dp)
                if not v.groups[g].readout:
                    ins = a_h[g] + [self.a_s[g]] + st.Dp[g][j] + [st.dsdp[g][j]]
                local = fn.map(ins, [(B, N)] * len(ins), (B, N), 1, _dot_body)[0]
                self._store(fn, fn.sum_rows(local, B, N, self._load(fn, f"g{i}")), f"g{i}")
        for g in v.order:
            S, N = v.groups[g].num_states, v.groups[g].size
            res = fn.map(st.D[g] + a_h[g], [(B, N)] * (S * S + S), (B, N), S, _transpose_apply_body(S))
            for s, name in enumerate(v.groups[g].states):
                self._store(fn, res[s], f"fut_{g}_{name}")
        for g, queue in pending.items():  # credit for s^{t-1-k}: what was pending for it, plus step t's
            N = v.groups[g].size
            for k in range(len(queue)):
                acc = queue[k + 1] if k + 1 < len(queue) else None
                for p in v.out_of(g, lag=k + 1):
                    acc = fn.matmul_bt(a_y[p.post][p.port], W[p.name], B, N, v.size(p.post), acc=acc)
                self._store(fn, acc or fn.full((B, N), 0.0), f"futs_{g}_{k}")
        args = self._signature(False, per_step=True)
        args += "".join(f", {tape[name]}: {tt(*shape)}" for name, shape in entries)
        return self._func("bptt_backward_step", args, [], fn, [])

    # ---------------------------------------------------------------- inference
    def infer_chunk(self) -> str:
        fn = Fn()
        fn.chunk = self.K
        B, C, K = self.B, self.C, self.K
        W, b = self._weights(fn)
        states = self._state_syms()
        carry = [(s, self._load(fn, s), self._type_of(s)) for s in states]
        carry.append(("rseq", fn.empty((K, B, C)), tt(K, B, C)))  # small: [K, B, classes]

        def step(t, cur):
            xt = self._inputs_at(fn, t)
            st = self._forward(fn, cur, xt, W, b)
            rseq = fn.insert_t(st.h[self.v.readout().name][0], cur["rseq"], t, (B, C))
            return dict(cur, rseq=rseq, **self._next_states(st, cur, xt))

        out = self._loop(fn, carry, step)
        for s in states:
            self._store(fn, out[s], s)
        return self._func("infer_chunk", self._signature(False), [tt(K, B, C)], fn, [out["rseq"]])

    def record_step(self) -> str:
        """One step that returns everything: readout, every group's spikes and states."""
        v, B = self.v, self.B
        fn = Fn()
        W, b = self._weights(fn)
        cur, xt = self._load_states(fn), self._inputs_at(fn, None)
        st = self._forward(fn, cur, xt, W, b)
        for sym, val in self._next_states(st, cur, xt).items():
            self._store(fn, val, sym)
        values = [st.h[v.readout().name][0]] + [st.spk[g] for g in v.spiking()]
        types = [tt(B, self.C)] + [tt(B, v.groups[g].size) for g in v.spiking()]
        for g in v.order:
            values += st.h[g]
            types += [tt(B, v.groups[g].size)] * v.groups[g].num_states
        return self._func("record_step", self._signature(False, per_step=True), types, fn, values)

    # ---------------------------------------------------------------- state, parameters, optimizer
    def _setter(self, name: str, entries: list[tuple[str, float]]) -> str:
        """Set each global to a constant. The constant is computed from the global's own buffer
        (max(x*0, 0) + c, which no canonicalization folds): IREE 3.13 gives one buffer to globals
        stored from the same (CSE'd) fill, and an in-place update of one then changes them all."""
        fn = Fn()
        self._set_constants(fn, entries)
        return self._func(name, "", [], fn, [])

    def _set_constants(self, fn: Fn, entries: list[tuple[str, float]]) -> None:
        for sym, value in entries:
            shape = tuple(next(e["shape"] for e in self.layout if e["global"] == sym))
            self._store(fn, fn.map([self._load(fn, sym)], [shape], shape, 1, _constant_like_body(value))[0], sym)

    def reset_state(self) -> str:
        init = {}
        for g in self.v.order:
            for s, value in zip(self.v.groups[g].states, self.v.groups[g].init):
                init[f"h_{g}_{s}"] = value
        return self._setter("reset_state", [(s, init.get(s, 0.0)) for s in self._state_syms() + self._trace_syms()])

    def params_io(self) -> list[str]:
        out = []
        types = [tt(*shape) for _, shape in self.params]
        fn = Fn()
        out.append(self._func("get_params", "", types, fn, [self._load(fn, f"p{i}") for i in range(len(types))]))
        fn = Fn()
        grads = self._raw_grads(fn, {k: self._load(fn, k) for i in range(len(types)) for k in (f"p{i}", f"g{i}")})
        out.append(self._func("get_grads", "", types, fn, grads))
        fn = Fn()
        for i in range(len(types)):
            self._store(fn, f"%a{i}", f"p{i}")
        out.append(self._func("set_params", ", ".join(f"%a{i}: {t}" for i, t in enumerate(types)), [], fn, []))
        moments = [e["global"] for e in self.layout if e["role"] in ("adam_m", "adam_v", "optimizer")]
        out.append(self._setter("reset_optimizer", [(s, 0.0) for s in moments]))
        out.append(self._setter("zero_grads", [(f"g{i}", 0.0) for i in range(len(types))]))
        return out

    def apply_update(self) -> str:
        """p -= lr * step(g), then g = 0; Adam keeps its moments and step count as globals."""
        fn = Fn()
        lr = fn.name("lr")
        fn.emit(f"{lr} = tensor.extract %lr[] : {tt()}")
        keys = self._optimizer_syms()
        new = self._update(fn, lr, {k: self._load(fn, k) for k in keys})
        for k in keys:
            self._store(fn, new[k], k)
        return self._func("apply_update", f"%lr: {tt()}", [], fn, [])

    def _optimizer_syms(self) -> list[str]:
        """Every global an optimizer step reads or writes."""
        keys = []
        for i in range(len(self.params)):
            keys += [f"p{i}", f"g{i}"] + ([f"m{i}", f"u{i}"] if self.optimizer == "adam" else [])
        return keys + ["opt_step"]

    def _update(self, fn: Fn, lr: str, vals: dict) -> dict:
        """One optimizer step on values (not globals): clip the global gradient norm, Adam or SGD with
        decoupled weight decay, count the step, zero the gradients."""
        b1, b2 = self.betas
        raw = self._raw_grads(fn, vals)
        scale = self._clip_scale(fn, raw) if self.grad_clip else None
        k0, k = fn.name("k"), fn.name("k")
        fn.emit(f"{k0} = tensor.extract {vals['opt_step']}[] : {tt()}")
        fn.emit(f"{k} = arith.addf {k0}, {fn.const(1.0)} : f32")
        c1, c2 = fn.name("bc"), fn.name("bc")
        fn.emit(f"{c1} = math.powf {fn.const(b1)}, {k} : f32")
        fn.emit(f"{c2} = math.powf {fn.const(b2)}, {k} : f32")
        out = {}
        for i, (_, shape) in enumerate(self.params):
            p, g = vals[f"p{i}"], raw[i]
            # weight decay applies to weights only: it would drag thresholds and time constants to 0
            wd = self.weight_decay if self.params[i][0].endswith(".W") else 0.0
            if self.optimizer == "sgd":
                out[f"p{i}"] = fn.map([p, g], [shape, shape], shape, 1, _sgd_body(lr, scale, wd))[0]
            else:
                new = fn.map([p, g, vals[f"m{i}"], vals[f"u{i}"]], [shape] * 4, shape, 3,
                             _adam_body(lr, b1, b2, self.eps, c1, c2, scale, wd))
                out[f"p{i}"], out[f"m{i}"], out[f"u{i}"] = new
            # zero from the gradient's own values: a shared zero fill would alias the buffers
            out[f"g{i}"] = fn.map([vals[f"g{i}"]], [shape], shape, 1, _constant_like_body(0.0))[0]
        kt = fn.name("kt")
        fn.emit(f"{kt} = tensor.from_elements {k} : {tt()}")
        out["opt_step"] = kt
        return out

    def _raw_grads(self, fn: Fn, vals: dict) -> list[str]:
        """The gradient by each stored parameter. Gradients accumulate by the applied weights; under
        Dale's law (W = sign*|W_raw|) the one by W_raw is sign*sgn(W_raw) times that."""
        out = []
        for i, (name, shape) in enumerate(self.params):
            owner, kind = name.rsplit(".", 1)
            sign = self.v.projections[owner].sign if kind == "W" and owner in self.v.projections else 0
            g = vals[f"g{i}"]
            out.append(fn.map([g, vals[f"p{i}"]], [shape] * 2, shape, 1, _chain_sign_body(sign))[0] if sign else g)
        return out

    def _clip_scale(self, fn: Fn, grads: list[str]) -> str:
        """clip / max(|g|, clip) over all gradients together: 1 when the norm is within the clip."""
        acc = fn.full((), 0.0)
        for g, (_, shape) in zip(grads, self.params):
            r = len(shape)
            dims = ", ".join(f"d{j}" for j in range(r))
            ident = f"affine_map<({dims}) -> ({dims})>"
            scalar = f"affine_map<({dims}) -> ()>"

            def body(a):
                sq, sm = fn.name("r"), fn.name("r")
                return [f"{sq} = arith.mulf {a[0]}, {a[0]} : f32", f"{sm} = arith.addf {a[1]}, {sq} : f32"], [sm]

            acc = fn.generic([(g, ident, tt(*shape))], [(acc, scalar, tt())], ["reduction"] * r, body)[0]
        total, norm, big, scale = fn.name("n"), fn.name("n"), fn.name("n"), fn.name("n")
        clip = fn.const(self.grad_clip)
        fn.emit(f"{total} = tensor.extract {acc}[] : {tt()}")
        fn.emit(f"{norm} = math.sqrt {total} : f32")
        fn.emit(f"{big} = arith.maximumf {norm}, {clip} : f32")
        fn.emit(f"{scale} = arith.divf {clip}, {big} : f32")
        return scale

    def _maybe_update(self, fn: Fn, t: str, nxt: dict) -> None:
        """Continual learning: after every `update_every` valid steps, one optimizer step in-module.
        Steps at or past %valid (the zero padding of a short last chunk) neither count nor update."""
        lr, nv, vi, ok, inc, c, c1, reached, do = (fn.name("u") for _ in range(9))
        fn.emit(f"{lr} = tensor.extract %lr[] : {tt()}")
        fn.emit(f"{nv} = tensor.extract %valid[] : {tt(dtype='i32')}")
        fn.emit(f"{vi} = arith.index_cast {nv} : i32 to index")
        fn.emit(f"{ok} = arith.cmpi ult, {t}, {vi} : index")
        fn.emit(f"{inc} = arith.select {ok}, {fn.const(1.0)}, {fn.const(0.0)} : f32")
        fn.emit(f"{c} = tensor.extract {nxt['t_upd']}[] : {tt()}")
        fn.emit(f"{c1} = arith.addf {c}, {inc} : f32")
        fn.emit(f"{reached} = arith.cmpf oge, {c1}, {fn.const(float(self.update_every))} : f32")
        fn.emit(f"{do} = arith.andi {ok}, {reached} : i1")
        # The step is computed every time and selected: an scf.if yielding tensors inside the loop
        # failed at run time in IREE 3.13 (a command-buffer binding out of range).
        keys = self._optimizer_syms()
        new = self._update(fn, lr, {k: nxt[k] for k in keys})
        for k in keys:
            shape = tuple(next(e["shape"] for e in self.layout if e["global"] == k))
            if shape:
                nxt[k] = fn.map([new[k], nxt[k]], [shape] * 2, shape, 1, _select_body(do))[0]
            else:
                nxt[k] = self._select_scalar(fn, do, new[k], nxt[k])
        counted = fn.name("kt")
        fn.emit(f"{counted} = tensor.from_elements {c1} : {tt()}")
        zero = fn.name("kt")
        fn.emit(f"{zero} = tensor.from_elements {fn.const(0.0)} : {tt()}")
        nxt["t_upd"] = self._select_scalar(fn, do, zero, counted)

    @staticmethod
    def _select_scalar(fn: Fn, cond: str, a: str, b: str) -> str:
        va, vb, r, out = fn.name("s"), fn.name("s"), fn.name("s"), fn.name("kt")
        fn.emit(f"{va} = tensor.extract {a}[] : {tt()}")
        fn.emit(f"{vb} = tensor.extract {b}[] : {tt()}")
        fn.emit(f"{r} = arith.select {cond}, {va}, {vb} : f32")
        fn.emit(f"{out} = tensor.from_elements {r} : {tt()}")
        return out

    def module_text(self) -> str:
        if self.algorithm == "bptt":
            training = [self.bptt_forward_step(), self.bptt_begin_backward(), self.bptt_backward_step()]
        else:
            training = [self.train_chunk()]
        funcs = training + [self.infer_chunk(), self.record_step(), self.reset_state(), *self.params_io(),
                            self.apply_update()]
        return "module @btc_model {\n" + "\n".join(self.global_lines) + "\n" + "\n".join(funcs) + "\n}\n"


def _constant_like_body(value: float):
    def body(fn: Fn, a):
        c0, m, z, c, r = (fn.name("r") for _ in range(5))
        return [f"{c0} = arith.constant 0.0 : f32", f"{m} = arith.mulf {a[0]}, {c0} : f32",
                f"{z} = arith.maxnumf {m}, {c0} : f32", f"{c} = arith.constant {value:.9e} : f32",
                f"{r} = arith.addf {z}, {c} : f32"], [r]
    return body


def _chain_sign_body(sign: int):
    """g * sign * sgn(w), with sgn(0) = +1 (one side of |w|'s derivative), so a weight at exactly 0
    still learns instead of staying there."""
    def body(fn: Fn, a):
        z, neg, one, mone, sg, out = (fn.name("r") for _ in range(6))
        lines = [f"{z} = arith.constant 0.0 : f32", f"{neg} = arith.cmpf olt, {a[1]}, {z} : f32",
                 f"{one} = arith.constant {float(sign):.1f} : f32", f"{mone} = arith.constant {float(-sign):.1f} : f32",
                 f"{sg} = arith.select {neg}, {mone}, {one} : f32", f"{out} = arith.mulf {a[0]}, {sg} : f32"]
        return lines, [out]
    return body


def _select_body(cond: str):
    def body(fn: Fn, a):
        n = fn.name("r")
        return [f"{n} = arith.select {cond}, {a[0]}, {a[1]} : f32"], [n]
    return body


def _weighted_add_body(weight: str):
    def body(fn: Fn, a):
        m, s = fn.name("r"), fn.name("r")
        return [f"{m} = arith.mulf {a[1]}, {weight} : f32", f"{s} = arith.addf {a[0]}, {m} : f32"], [s]
    return body


@dataclass(frozen=True)
class LowerToLinalgPass:
    name = "btc-lower-to-linalg"
    optimizer: str = "adam"
    unroll: int = 0  # time steps per loop iteration of train_chunk; 0: 1 for large models, else 4, 2 or 1
    update_every: int = 0  # apply the optimizer inside train_chunk every k time steps (0: never)
    grad_clip: float = 0.0  # clip the global gradient norm to this before each update (0: off)
    weight_decay: float = 0.0  # decoupled weight decay per update

    def run(self, module) -> None:
        view = ModelView(module)
        plan = trace_plan(view)
        lowering = _Lowering(view, self.optimizer, self.update_every, self.grad_clip, self.weight_decay)
        small = step_macs(view) < LARGE_STEP_MACS
        lowering.unroll = self.unroll or next(u for u in ((4, 2, 1) if small else (1,)) if view.chunk % u == 0)
        lowered = ir.Module.parse(lowering.module_text(), module.context)
        for op in list(module.body.operations):
            op.operation.erase()
        for op in list(lowered.body.operations):
            module.body.append(op.operation)
        with module.context:
            attrs = module.operation.attributes
            attrs["sym_name"] = ir.StringAttr.get("btc_model")
            attrs["btc.layout"] = ir.StringAttr.get(json.dumps(lowering.layout))
            attrs["btc.algorithm"] = ir.StringAttr.get(lowering.algorithm)
            attrs["btc.plan"] = ir.StringAttr.get(json.dumps(plan))
            # what BPTT's tape holds per step, recorded for every algorithm so plans can be compared
            attrs["btc.bptt_step_bytes"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), sum(
                4 * s[0] * s[1] for _, s in tape_entries(view)))
            attrs["btc.tape"] = ir.StringAttr.get(json.dumps(
                [{"name": n, "shape": list(s), "bytes": 4 * s[0] * s[1]} for n, s in tape_entries(view)]
                if lowering.algorithm == "bptt" else []))

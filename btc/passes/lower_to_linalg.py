"""btc-lower-to-linalg: reads the model, its `btc.derivatives`, `btc.trace`s and `btc.schedule`;
produces upstream MLIR in place of every btc op: `util.global`s for parameters, gradients,
optimizer moments, states and traces, and the functions

  train_chunk(x..., target, mask) -> (loss, readout[K,B,C])   K steps in an scf.for
  infer_chunk(x...) -> (readout, spikes per group, states per group and state)
  reset_state(), zero_grads(), apply_update(lr), get_params(), set_params(...), get_grads(),
  reset_optimizer()

The module attribute `btc.layout` (JSON) records every global's role, shape and bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from iree.compiler import ir

from btc.dialect import attrs_of
from btc.passes._linalg_text import Fn, block_body, tt
from btc.passes._view import ModelView, source_key

__all__ = ["LowerToLinalgPass", "OPTIMIZERS"]

OPTIMIZERS = ("adam", "sgd")
_NEG_BIG = -3.0e38


@dataclass
class _Step:
    """Values of one forward step, per group: new states, D (S*S, row-major), Df, spikes, ds/dh."""

    h: dict
    D: dict
    Df: dict
    spk: dict
    dsdh: dict


class _Lowering:
    def __init__(self, view: ModelView, optimizer: str, betas=(0.9, 0.999), eps=1e-8):
        self.v, self.B, self.K = view, view.batch, view.chunk
        self.optimizer, self.betas, self.eps = optimizer, betas, eps
        self.C = view.readout().size
        self.ce = view.loss["kind"] == "cross_entropy"
        self.schedule = [(op.operation.name, attrs_of(op)) for op in view.schedule.regions[0].blocks[0].operations]
        self.algorithm = attrs_of(view.schedule)["algorithm"]
        self.params = view.params()
        self.layout: list[dict] = []
        self.global_lines: list[str] = []
        # spikes of step t-1 are carried for every group read recurrently
        self.rec_groups = [g for g in view.spiking() if view.out_of(g, recurrent=True)]
        self._declare_globals()

    # ---------------------------------------------------------------- globals
    def _global(self, sym: str, shape: tuple, role: str, label: str, init: float = 0.0) -> None:
        self.global_lines.append(f"util.global private mutable @{sym} = dense<{init:.9e}> : {tt(*shape)}")
        n = 1
        for d in shape:
            n *= d
        self.layout.append({"global": sym, "role": role, "name": label, "shape": list(shape), "bytes": 4 * n})

    def _declare_globals(self):
        v, B = self.v, self.B
        for i, (name, shape) in enumerate(self.params):
            self._global(f"p{i}", shape, "param", name)
            self._global(f"g{i}", shape, "grad", name)
            if self.optimizer == "adam":
                self._global(f"m{i}", shape, "adam_m", name)
                self._global(f"u{i}", shape, "adam_v", name)
        self._global("opt_step", (), "optimizer", "step")
        for g in v.order:
            info = v.groups[g]
            for s, init in zip(info.states, info.init):
                self._global(f"h_{g}_{s}", (B, info.size), "state", f"{g}.{s}", init)
        for g in self.rec_groups:
            self._global(f"spk_{g}", (B, v.groups[g].size), "state", f"{g}.spikes")
        for t in v.traces.values():
            for s in range(t.num_states):
                self._global(f"tr_{t.name}_{s}", (B, t.size), "trace", f"{t.name}[{s}]")

    def _load(self, fn: Fn, sym: str) -> str:
        shape = next(e["shape"] for e in self.layout if e["global"] == sym)
        n = fn.name("ld")
        fn.emit(f"{n} = util.global.load @{sym} : {tt(*shape)}")
        return n

    def _store(self, fn: Fn, value: str, sym: str) -> None:
        shape = next(e["shape"] for e in self.layout if e["global"] == sym)
        fn.emit(f"util.global.store {value}, @{sym} : {tt(*shape)}")

    def _state_syms(self) -> list[str]:
        syms = [f"h_{g}_{s}" for g in self.v.order for s in self.v.groups[g].states]
        return syms + [f"spk_{g}" for g in self.rec_groups]

    def _trace_syms(self) -> list[str]:
        return [f"tr_{t.name}_{s}" for t in self.v.traces.values() for s in range(t.num_states)]

    # ---------------------------------------------------------------- one forward step
    def _weights(self, fn: Fn) -> tuple[dict, dict]:
        W, b = {}, {}
        for i, (name, _) in enumerate(self.params):
            proj, kind = name.rsplit(".", 1)
            (W if kind == "W" else b)[proj] = self._load(fn, f"p{i}")
        return W, b

    def _forward(self, fn: Fn, cur: dict, xt: dict, W: dict, b: dict) -> _Step:
        v, B = self.v, self.B
        st = _Step({}, {}, {}, {}, {})
        for g in v.order:
            info = v.groups[g]
            N, S = info.size, info.num_states
            y = None
            for p in v.into(g):
                pre = xt[p.pre] if p.pre in v.inputs else (cur[f"spk_{p.pre}"] if p.recurrent else st.spk[p.pre])
                y = fn.matmul(pre, W[p.name], B, v.size(p.pre), N, acc=y)
            biases = [b[p.name] for p in v.into(g) if p.bias]
            if biases:
                y = fn.map([y] + biases, [(B, N)] + [(N,)] * len(biases), (B, N), 1, _sum_body)[0]
            deriv = v.derivatives[g]

            def body(fn, a, deriv=deriv, S=S, readout=info.readout):
                lines, ys = block_body(fn, deriv.regions[0].blocks[0], a)
                if not readout:
                    more, spike = block_body(fn, deriv.regions[1].blocks[0], ys[:S])
                    lines, ys = lines + more, ys + spike
                return lines, ys

            n_out = S + S * S + S + (0 if info.readout else 1 + S)
            res = fn.map([cur[f"h_{g}_{s}"] for s in info.states] + [y], [(B, N)] * (S + 1), (B, N), n_out, body)
            st.h[g], st.D[g], st.Df[g] = res[:S], res[S:S + S * S], res[S + S * S:2 * S + S * S]
            if not info.readout:
                st.spk[g], st.dsdh[g] = res[2 * S + S * S], res[2 * S + S * S + 1:]
        return st

    # ---------------------------------------------------------------- loss and its gradient
    def _loss(self, fn: Fn, r: str, target: str, w: str, acc: str) -> tuple[str, str]:
        """(dL_t/dr, acc + L_t) for readout r[B,C], this step's target and weight w (mask / count)."""
        B, C = self.B, self.C
        m2, m1 = "affine_map<(d0, d1) -> (d0, d1)>", "affine_map<(d0, d1) -> (d0)>"
        m0 = "affine_map<(d0, d1) -> ()>"
        if not self.ce:
            def grad_body(a):
                d, g2, g = fn.name("r"), fn.name("r"), fn.name("r")
                return [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{g2} = arith.mulf {d}, {w} : f32",
                        f"{g} = arith.addf {g2}, {g2} : f32"], [g]

            def loss_body(a):
                d, sq, ws, s = fn.name("r"), fn.name("r"), fn.name("r"), fn.name("r")
                return [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{sq} = arith.mulf {d}, {d} : f32",
                        f"{ws} = arith.mulf {sq}, {w} : f32", f"{s} = arith.addf {a[2]}, {ws} : f32"], [s]

            ins = [(r, m2, tt(B, C)), (target, m2, tt(B, C))]
            grad = fn.generic(ins, [(fn.empty((B, C)), m2, tt(B, C))], ["parallel"] * 2, grad_body)[0]
            return grad, fn.generic(ins, [(acc, m0, tt())], ["reduction"] * 2, loss_body)[0]

        def max_body(a):
            s = fn.name("r")
            return [f"{s} = arith.maximumf {a[1]}, {a[0]} : f32"], [s]

        mx = fn.generic([(r, m2, tt(B, C))], [(fn.full((B,), _NEG_BIG), m1, tt(B))],
                        ["parallel", "reduction"], max_body)[0]

        def sumexp_body(a):
            d, e, s = fn.name("r"), fn.name("r"), fn.name("r")
            return [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{e} = math.exp {d} : f32",
                    f"{s} = arith.addf {a[2]}, {e} : f32"], [s]

        se = fn.generic([(r, m2, tt(B, C)), (mx, m1, tt(B))], [(fn.full((B,), 0.0), m1, tt(B))],
                        ["parallel", "reduction"], sumexp_body)[0]
        ins = [(r, m2, tt(B, C)), (mx, m1, tt(B)), (se, m1, tt(B)), (target, m1, tt(B, dtype="i32"))]

        def onehot(a):
            c, ti, eq, oh = fn.name("r"), fn.name("r"), fn.name("r"), fn.name("r")
            return [f"{c} = linalg.index 1 : index", f"{ti} = arith.index_cast {a[3]} : i32 to index",
                    f"{eq} = arith.cmpi eq, {c}, {ti} : index", f"{oh} = arith.uitofp {eq} : i1 to f32"], oh

        def grad_body(a):
            lines, oh = onehot(a)
            d, e, p, q, g = (fn.name("r") for _ in range(5))
            return lines + [f"{d} = arith.subf {a[0]}, {a[1]} : f32", f"{e} = math.exp {d} : f32",
                            f"{p} = arith.divf {e}, {a[2]} : f32", f"{q} = arith.subf {p}, {oh} : f32",
                            f"{g} = arith.mulf {q}, {w} : f32"], [g]

        def loss_body(a):
            lines, oh = onehot(a)
            lg, lse, d, wd, c, s = (fn.name("r") for _ in range(6))
            return lines + [f"{lg} = math.log {a[2]} : f32", f"{lse} = arith.addf {a[1]}, {lg} : f32",
                            f"{d} = arith.subf {lse}, {a[0]} : f32", f"{wd} = arith.mulf {d}, {w} : f32",
                            f"{c} = arith.mulf {wd}, {oh} : f32", f"{s} = arith.addf {a[4]}, {c} : f32"], [s]

        grad = fn.generic(ins, [(fn.empty((B, C)), m2, tt(B, C))], ["parallel"] * 2, grad_body)[0]
        return grad, fn.generic(ins, [(acc, m0, tt())], ["reduction"] * 2, loss_body)[0]

    # ---------------------------------------------------------------- within-step backward
    def _backward(self, fn: Fn, st: _Step, dLdr: str, W: dict, fut: dict | None = None,
                  fut_s: dict | None = None) -> tuple[dict, dict]:
        """a_h[g] = dL/dh_g^t (the learning signal delta, plus `fut` for BPTT), a_y[g] = dL/dy_g^t."""
        v, B = self.v, self.B
        a_h, a_y = {}, {}
        for g in reversed(v.order):
            info = v.groups[g]
            N, S = info.size, info.num_states
            extra = fut[g] if fut else []
            if info.readout:
                ins = [dLdr] + st.Df[g] + extra
            else:
                a_s = (fut_s or {}).get(g)
                for p in v.out_of(g, recurrent=False):
                    a_s = fn.matmul_bt(a_y[p.post], W[p.name], B, N, v.size(p.post), acc=a_s)
                ins = [a_s or fn.full((B, N), 0.0)] + st.dsdh[g] + st.Df[g] + extra

            def body(fn, a, S=S, readout=info.readout, has_fut=bool(extra)):
                lines, hs = [], []
                for s in range(S):
                    if readout:
                        base = a[0]
                    else:
                        base = fn.name("r")
                        lines.append(f"{base} = arith.mulf {a[0]}, {a[1 + s]} : f32")
                    if has_fut:
                        tot = fn.name("r")
                        lines.append(f"{tot} = arith.addf {base}, {a[-S + s]} : f32")
                        base = tot
                    hs.append(base)
                df0 = 1 if readout else 1 + S
                ay = None
                for s in range(S):
                    prod = fn.name("r")
                    lines.append(f"{prod} = arith.mulf {hs[s]}, {a[df0 + s]} : f32")
                    if ay is None:
                        ay = prod
                    else:
                        nxt = fn.name("r")
                        lines.append(f"{nxt} = arith.addf {ay}, {prod} : f32")
                        ay = nxt
                return lines, hs + [ay]

            res = fn.map(ins, [(B, N)] * len(ins), (B, N), S + 1, body)
            a_h[g], a_y[g] = res[:S], res[S]
        return a_h, a_y

    # ---------------------------------------------------------------- time loops
    def _loop(self, fn: Fn, carried: list[tuple[str, str, str]], body, reverse: bool = False) -> dict:
        """scf.for over the K steps; carried = [(key, init value, type)]; body(t, cur) -> next."""
        c0, c1, ck = fn.index(0), fn.index(1), fn.index(self.K)
        last = fn.index(self.K - 1) if reverse else None
        res, iv = fn.name("loop"), fn.name("t")
        args = {k: fn.name("it") for k, _, _ in carried}
        types = ", ".join(t for _, _, t in carried)
        inits = ", ".join(f"{args[k]} = {init}" for k, init, _ in carried)
        fn.emit(f"{res}:{len(carried)} = scf.for {iv} = {c0} to {ck} step {c1} iter_args({inits}) -> ({types}) {{")
        fn.indent += 1
        t = iv
        if reverse:
            t = fn.name("t")
            fn.emit(f"{t} = arith.subi {last}, {iv} : index")
        nxt = body(t, dict(args))
        fn.emit(f"scf.yield {', '.join(nxt[k] for k, _, _ in carried)} : {types}")
        fn.indent -= 1
        fn.emit("}")
        return {k: f"{res}#{i}" for i, (k, _, _) in enumerate(carried)}

    def _type_of(self, sym: str) -> str:
        return tt(*next(e["shape"] for e in self.layout if e["global"] == sym))

    def _inputs_at(self, fn: Fn, t: str) -> dict:
        return {n: fn.slice_t(f"%x_{n}", t, (self.B, i["size"])) for n, i in self.v.inputs.items()}

    def _target_at(self, fn: Fn, t: str) -> str:
        if self.ce:
            return fn.slice_t("%target", t, (self.B,), dtype="i32")
        return fn.slice_t("%target", t, (self.B, self.C))

    def _step_weight(self, fn: Fn, t: str) -> str:
        m, w = fn.name("m"), fn.name("w")
        count = self.B if self.ce else self.B * self.C
        inv = fn.const(1.0 / count)
        fn.emit(f"{m} = tensor.extract %mask[{t}] : {tt(self.K)}")
        fn.emit(f"{w} = arith.mulf {m}, {inv} : f32")
        return w

    def _signature(self, with_target: bool) -> str:
        args = [f"%x_{n}: {tt(self.K, self.B, i['size'])}" for n, i in self.v.inputs.items()]
        if with_target:
            tgt = tt(self.K, self.B, dtype="i32") if self.ce else tt(self.K, self.B, self.C)
            args += [f"%target: {tgt}", f"%mask: {tt(self.K)}"]
        return ", ".join(args)

    def _source_value(self, key: str, xt: dict, cur: dict, st: _Step) -> str:
        pre, delay = key.split("@")
        if pre in self.v.inputs:
            return xt[pre]
        return cur[f"spk_{pre}"] if delay == "1" else st.spk[pre]

    # ---------------------------------------------------------------- train_chunk
    def train_chunk(self) -> str:
        fn = Fn()
        fn.chunk = self.K
        W, b = self._weights(fn)
        states = self._state_syms()
        grads = [f"g{i}" for i in range(len(self.params))]
        carry = [(s, self._load(fn, s), self._type_of(s)) for s in states]
        if self.algorithm == "pp-prop":
            carry += [(s, self._load(fn, s), self._type_of(s)) for s in self._trace_syms()]
            carry += [(s, self._load(fn, s), self._type_of(s)) for s in grads]
        carry += [("loss", fn.full((), 0.0), tt()), ("rseq", fn.empty((self.K, self.B, self.C)),
                                                      tt(self.K, self.B, self.C))]
        tapes = self._tapes() if self.algorithm == "bptt" else []
        carry += [(k, fn.empty(shape), tt(*shape)) for k, shape in tapes]

        def step(t, cur):
            xt = self._inputs_at(fn, t)
            st = self._forward(fn, cur, xt, W, b)
            w = self._step_weight(fn, t)
            readout = self.v.readout().name
            dLdr, loss = self._loss(fn, st.h[readout][0], self._target_at(fn, t), w, cur["loss"])
            nxt = dict(cur, loss=loss, rseq=fn.insert_t(st.h[readout][0], cur["rseq"], t, (self.B, self.C)))
            for g in self.v.order:
                for s, val in zip(self.v.groups[g].states, st.h[g]):
                    nxt[f"h_{g}_{s}"] = val
            for g in self.rec_groups:
                nxt[f"spk_{g}"] = st.spk[g]
            if self.algorithm == "pp-prop":
                self._pp_prop_updates(fn, st, dLdr, W, xt, cur, nxt)
            else:
                self._record_tapes(fn, t, st, dLdr, xt, cur, nxt)
            return nxt

        out = self._loop(fn, carry, step)
        for s in states + (self._trace_syms() + grads if self.algorithm == "pp-prop" else []):
            self._store(fn, out[s], s)
        if self.algorithm == "bptt":
            self._bptt_sweep(fn, out, W)
        fn.emit(f"return {out['loss']}, {out['rseq']} : {tt()}, {tt(self.K, self.B, self.C)}")
        return (f"func.func @train_chunk({self._signature(True)}) -> ({tt()}, {tt(self.K, self.B, self.C)}) {{\n"
                + "\n".join(fn.lines) + "\n}")

    def _pp_prop_updates(self, fn: Fn, st: _Step, dLdr: str, W: dict, xt: dict, cur: dict, nxt: dict):
        v, B = self.v, self.B
        a_h: dict = {}
        signals = None
        post_sum: dict = {}
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
            elif op in ("btc.update_post_trace", "btc.update_bias_trace"):
                t, g = v.traces[a["trace"]], a["group"]
                S, N = t.num_states, t.size
                old = [cur[f"tr_{t.name}_{s}"] for s in range(S)]
                exact = op == "btc.update_bias_trace"
                res = fn.map(st.D[g] + st.Df[g] + old + a_h[g], [(B, N)] * (S * S + 3 * S), (B, N), S + 1,
                             _post_trace_body(S, 1.0 if exact else t.decay, exact))
                for s in range(S):
                    nxt[f"tr_{t.name}_{s}"] = res[s]
                post_sum[t.name] = res[S]
            elif op == "btc.accumulate_grad":
                p, pre_t = v.projections[a["projection"]], v.traces[a["pre_trace"]]
                i = self._param_index(f"{p.name}.W")
                nxt[f"g{i}"] = fn.matmul_at(nxt[f"tr_{pre_t.name}_0"], post_sum[a["post_trace"]], B,
                                            pre_t.size, v.size(p.post), cur[f"g{i}"])
            elif op == "btc.accumulate_bias_grad":
                p = v.projections[a["projection"]]
                i = self._param_index(f"{p.name}.b")
                nxt[f"g{i}"] = fn.sum_rows(post_sum[a["trace"]], B, v.size(p.post), cur[f"g{i}"])

    def _param_index(self, name: str) -> int:
        return [n for n, _ in self.params].index(name)

    # ---------------------------------------------------------------- BPTT
    def _tapes(self) -> list[tuple[str, tuple]]:
        v, B, K = self.v, self.B, self.K
        tapes = [("tape_dLdr", (K, B, self.C))]
        for g in v.order:
            info = v.groups[g]
            S, N = info.num_states, info.size
            names = [f"D{k}" for k in range(S * S)] + [f"Df{s}" for s in range(S)]
            names += [] if info.readout else [f"dsdh{s}" for s in range(S)]
            tapes += [(f"tape_{g}_{n}", (K, B, N)) for n in names]
        for key in v.sources():
            pre, _ = key.split("@")
            if pre not in v.inputs:
                tapes.append((f"tape_src_{key.replace('@', '_')}", (K, B, v.size(pre))))
        return tapes

    def _record_tapes(self, fn: Fn, t: str, st: _Step, dLdr: str, xt: dict, cur: dict, nxt: dict):
        v, B = self.v, self.B
        nxt["tape_dLdr"] = fn.insert_t(dLdr, cur["tape_dLdr"], t, (B, self.C))
        for g in v.order:
            info = v.groups[g]
            S, N = info.num_states, info.size
            vals = dict(zip([f"D{k}" for k in range(S * S)] + [f"Df{s}" for s in range(S)], st.D[g] + st.Df[g]))
            if not info.readout:
                vals.update({f"dsdh{s}": st.dsdh[g][s] for s in range(S)})
            for n, val in vals.items():
                nxt[f"tape_{g}_{n}"] = fn.insert_t(val, cur[f"tape_{g}_{n}"], t, (B, N))
        for key in v.sources():
            pre, _ = key.split("@")
            if pre not in v.inputs:
                k = f"tape_src_{key.replace('@', '_')}"
                nxt[k] = fn.insert_t(self._source_value(key, xt, cur, st), cur[k], t, (B, v.size(pre)))

    def _bptt_sweep(self, fn: Fn, fwd: dict, W: dict):
        """Reverse sweep: a_h^t = within-step signal + D^{t+1,T} a_h^{t+1} (+ recurrent spike credit)."""
        v, B = self.v, self.B
        grads = [f"g{i}" for i in range(len(self.params))]
        carry = [(s, self._load(fn, s), self._type_of(s)) for s in grads]
        for g in v.order:
            info = v.groups[g]
            carry += [(f"fut_{g}_{s}", fn.full((B, info.size), 0.0), tt(B, info.size)) for s in range(info.num_states)]
        carry += [(f"futs_{g}", fn.full((B, v.groups[g].size), 0.0), tt(B, v.groups[g].size)) for g in self.rec_groups]

        def step(t, cur):
            st = _Step({}, {}, {}, {}, {})
            for g in v.order:
                info = v.groups[g]
                S, N = info.num_states, info.size
                st.D[g] = [fn.slice_t(fwd[f"tape_{g}_D{k}"], t, (B, N)) for k in range(S * S)]
                st.Df[g] = [fn.slice_t(fwd[f"tape_{g}_Df{s}"], t, (B, N)) for s in range(S)]
                if not info.readout:
                    st.dsdh[g] = [fn.slice_t(fwd[f"tape_{g}_dsdh{s}"], t, (B, N)) for s in range(S)]
            dLdr = fn.slice_t(fwd["tape_dLdr"], t, (B, self.C))
            fut = {g: [cur[f"fut_{g}_{s}"] for s in range(v.groups[g].num_states)] for g in v.order}
            a_h, a_y = self._backward(fn, st, dLdr, W, fut, {g: cur[f"futs_{g}"] for g in self.rec_groups})
            nxt = dict(cur)
            xt = {n: fn.slice_t(f"%x_{n}", t, (B, i["size"])) for n, i in v.inputs.items()}
            for p in v.projections.values():
                key = p.source
                pre = key.split("@")[0]
                x = xt[pre] if pre in v.inputs else fn.slice_t(fwd[f"tape_src_{key.replace('@', '_')}"], t,
                                                                 (B, v.size(pre)))
                i = self._param_index(f"{p.name}.W")
                nxt[f"g{i}"] = fn.matmul_at(x, a_y[p.post], B, v.size(pre), v.size(p.post), nxt[f"g{i}"])
                if p.bias:
                    j = self._param_index(f"{p.name}.b")
                    nxt[f"g{j}"] = fn.sum_rows(a_y[p.post], B, v.size(p.post), nxt[f"g{j}"])
            for g in v.order:
                S, N = v.groups[g].num_states, v.groups[g].size
                res = fn.map(st.D[g] + a_h[g], [(B, N)] * (S * S + S), (B, N), S, _transpose_apply_body(S))
                for s in range(S):
                    nxt[f"fut_{g}_{s}"] = res[s]
            for g in self.rec_groups:
                acc = None
                for p in v.out_of(g, recurrent=True):
                    acc = fn.matmul_bt(a_y[p.post], W[p.name], B, v.groups[g].size, v.size(p.post), acc=acc)
                nxt[f"futs_{g}"] = acc
            return nxt

        out = self._loop(fn, carry, step, reverse=True)
        for s in grads:
            self._store(fn, out[s], s)

    # ---------------------------------------------------------------- inference and utilities
    def infer_chunk(self) -> str:
        fn = Fn()
        fn.chunk = self.K
        v, B, K = self.v, self.B, self.K
        W, b = self._weights(fn)
        states = self._state_syms()
        carry = [(s, self._load(fn, s), self._type_of(s)) for s in states]
        seqs = [("rseq", (K, B, self.C))]
        seqs += [(f"spikes_{g}", (K, B, v.groups[g].size)) for g in v.spiking()]
        seqs += [(f"seq_{g}_{s}", (K, B, v.groups[g].size)) for g in v.order for s in v.groups[g].states]
        carry += [(k, fn.empty(shape), tt(*shape)) for k, shape in seqs]

        def step(t, cur):
            st = self._forward(fn, cur, self._inputs_at(fn, t), W, b)
            nxt = dict(cur)
            for g in v.order:
                info = v.groups[g]
                for s, val in zip(info.states, st.h[g]):
                    nxt[f"h_{g}_{s}"] = val
                    nxt[f"seq_{g}_{s}"] = fn.insert_t(val, cur[f"seq_{g}_{s}"], t, (B, info.size))
                if not info.readout:
                    nxt[f"spikes_{g}"] = fn.insert_t(st.spk[g], cur[f"spikes_{g}"], t, (B, info.size))
            for g in self.rec_groups:
                nxt[f"spk_{g}"] = st.spk[g]
            nxt["rseq"] = fn.insert_t(st.h[v.readout().name][0], cur["rseq"], t, (B, self.C))
            return nxt

        out = self._loop(fn, carry, step)
        for s in states:
            self._store(fn, out[s], s)
        types = ", ".join(tt(*shape) for _, shape in seqs)
        fn.emit(f"return {', '.join(out[k] for k, _ in seqs)} : {types}")
        return f"func.func @infer_chunk({self._signature(False)}) -> ({types}) {{\n" + "\n".join(fn.lines) + "\n}"

    def _setter(self, name: str, entries: list[tuple[str, float]]) -> str:
        fn = Fn()
        for sym, value in entries:
            shape = next(e["shape"] for e in self.layout if e["global"] == sym)
            self._store(fn, fn.full(tuple(shape), value), sym)
        fn.emit("return")
        return f"func.func @{name}() {{\n" + "\n".join(fn.lines) + "\n}"

    def reset_state(self) -> str:
        init = {e["global"]: 0.0 for e in self.layout}
        for g in self.v.order:
            for s, value in zip(self.v.groups[g].states, self.v.groups[g].init):
                init[f"h_{g}_{s}"] = value
        return self._setter("reset_state", [(s, init[s]) for s in self._state_syms() + self._trace_syms()])

    def getters(self) -> str:
        out = []
        for fname, prefix in (("get_params", "p"), ("get_grads", "g")):
            fn = Fn()
            vals = [self._load(fn, f"{prefix}{i}") for i in range(len(self.params))]
            types = ", ".join(tt(*shape) for _, shape in self.params)
            fn.emit(f"return {', '.join(vals)} : {types}")
            out.append(f"func.func @{fname}() -> ({types}) {{\n" + "\n".join(fn.lines) + "\n}")
        fn = Fn()
        args = ", ".join(f"%a{i}: {tt(*shape)}" for i, (_, shape) in enumerate(self.params))
        for i in range(len(self.params)):
            self._store(fn, f"%a{i}", f"p{i}")
        fn.emit("return")
        out.append(f"func.func @set_params({args}) {{\n" + "\n".join(fn.lines) + "\n}")
        moments = [f"{k}{i}" for i in range(len(self.params)) for k in ("m", "u")] if self.optimizer == "adam" else []
        out.append(self._setter("reset_optimizer", [(s, 0.0) for s in moments + ["opt_step"]]))
        out.append(self._setter("zero_grads", [(f"g{i}", 0.0) for i in range(len(self.params))]))
        return "\n".join(out)

    def apply_update(self) -> str:
        """p -= lr * step(g), then g = 0; Adam keeps its moments and step count as globals."""
        fn = Fn()
        b1, b2 = self.betas
        k_old = self._load(fn, "opt_step")
        one = fn.const(1.0)
        k0, k = fn.name("k"), fn.name("k")
        fn.emit(f"{k0} = tensor.extract {k_old}[] : {tt()}")
        fn.emit(f"{k} = arith.addf {k0}, {one} : f32")
        c1, c2 = fn.name("bc"), fn.name("bc")
        fn.emit(f"{c1} = math.powf {fn.const(b1)}, {k} : f32")
        fn.emit(f"{c2} = math.powf {fn.const(b2)}, {k} : f32")
        lr = fn.name("lr")
        fn.emit(f"{lr} = tensor.extract %lr[] : {tt()}")
        for i, (_, shape) in enumerate(self.params):
            p, g = self._load(fn, f"p{i}"), self._load(fn, f"g{i}")
            if self.optimizer == "sgd":
                new = fn.map([p, g], [shape, shape], shape, 1, _sgd_body(lr))
                self._store(fn, new[0], f"p{i}")
            else:
                m, u = self._load(fn, f"m{i}"), self._load(fn, f"u{i}")
                new = fn.map([p, g, m, u], [shape] * 4, shape, 3, _adam_body(lr, b1, b2, self.eps, c1, c2))
                for sym, val in zip((f"p{i}", f"m{i}", f"u{i}"), new):
                    self._store(fn, val, sym)
            self._store(fn, fn.full(shape, 0.0), f"g{i}")
        kt = fn.name("kt")
        fn.emit(f"{kt} = tensor.from_elements {k} : {tt()}")
        self._store(fn, kt, "opt_step")
        fn.emit("return")
        return f"func.func @apply_update(%lr: {tt()}) {{\n" + "\n".join(fn.lines) + "\n}"

    def module_text(self) -> str:
        funcs = [self.train_chunk(), self.infer_chunk(), self.reset_state(), self.getters(), self.apply_update()]
        return "module @btc_model {\n" + "\n".join(self.global_lines) + "\n" + "\n".join(funcs) + "\n}\n"


# ---- scalar bodies for elementwise generics (each returns (lines, yielded))
def _sum_body(fn: Fn, a):
    lines, acc = [], a[0]
    for x in a[1:]:
        n = fn.name("r")
        lines.append(f"{n} = arith.addf {acc}, {x} : f32")
        acc = n
    return lines, [acc]


def _decay_body(alpha: float):
    def body(fn: Fn, a):
        c, m, s = fn.name("r"), fn.name("r"), fn.name("r")
        return [f"{c} = arith.constant {alpha:.9e} : f32", f"{m} = arith.mulf {a[0]}, {c} : f32",
                f"{s} = arith.addf {m}, {a[1]} : f32"], [s]
    return body


def _post_trace_body(S: int, alpha: float, exact: bool):
    """eps'[s] = alpha*sum_s' D[s][s'] eps[s'] + (1-alpha)*Df[s] (exact: alpha = 1, Df weight 1);
    also yields sum_s eps'[s]*delta[s], the postsynaptic factor of the gradient."""
    def body(fn: Fn, a):
        D, Df, eps, delta = a[:S * S], a[S * S:S * S + S], a[S * S + S:S * S + 2 * S], a[S * S + 2 * S:]
        lines = []
        ca, cb = fn.name("r"), fn.name("r")
        lines += [f"{ca} = arith.constant {alpha:.9e} : f32",
                  f"{cb} = arith.constant {(1.0 if exact else 1.0 - alpha):.9e} : f32"]
        new = []
        for s in range(S):
            acc = None
            for sp in range(S):
                m = fn.name("r")
                lines.append(f"{m} = arith.mulf {D[s * S + sp]}, {eps[sp]} : f32")
                if acc is None:
                    acc = m
                else:
                    n = fn.name("r")
                    lines.append(f"{n} = arith.addf {acc}, {m} : f32")
                    acc = n
            x, y, z = fn.name("r"), fn.name("r"), fn.name("r")
            lines += [f"{x} = arith.mulf {acc}, {ca} : f32", f"{y} = arith.mulf {Df[s]}, {cb} : f32",
                      f"{z} = arith.addf {x}, {y} : f32"]
            new.append(z)
        total = None
        for s in range(S):
            m = fn.name("r")
            lines.append(f"{m} = arith.mulf {new[s]}, {delta[s]} : f32")
            if total is None:
                total = m
            else:
                n = fn.name("r")
                lines.append(f"{n} = arith.addf {total}, {m} : f32")
                total = n
        return lines, new + [total]
    return body


def _transpose_apply_body(S: int):
    """out[s'] = sum_s D[s][s'] * a[s]: the adjoint carried to step t-1."""
    def body(fn: Fn, a):
        D, adj = a[:S * S], a[S * S:]
        lines, out = [], []
        for sp in range(S):
            acc = None
            for s in range(S):
                m = fn.name("r")
                lines.append(f"{m} = arith.mulf {D[s * S + sp]}, {adj[s]} : f32")
                if acc is None:
                    acc = m
                else:
                    n = fn.name("r")
                    lines.append(f"{n} = arith.addf {acc}, {m} : f32")
                    acc = n
            out.append(acc)
        return lines, out
    return body


def _sgd_body(lr: str):
    def body(fn: Fn, a):
        m, n = fn.name("r"), fn.name("r")
        return [f"{m} = arith.mulf {a[1]}, {lr} : f32", f"{n} = arith.subf {a[0]}, {m} : f32"], [n]
    return body


def _adam_body(lr: str, b1: float, b2: float, eps: float, c1: str, c2: str):
    """Adam with bias correction; c1, c2 are b1^k and b2^k for this update's step k."""
    def body(fn: Fn, a):
        p, g, m, u = a
        lines: list[str] = []

        def op(text: str) -> str:
            n = fn.name("r")
            lines.append(f"{n} = {text} : f32")
            return n

        def const(x: float) -> str:
            return op(f"arith.constant {x:.9e}")

        m_new = op(f"arith.addf {op(f'arith.mulf {m}, {const(b1)}')}, {op(f'arith.mulf {g}, {const(1 - b1)}')}")
        g2 = op(f"arith.mulf {g}, {g}")
        u_new = op(f"arith.addf {op(f'arith.mulf {u}, {const(b2)}')}, {op(f'arith.mulf {g2}, {const(1 - b2)}')}")
        one = const(1.0)
        m_hat = op(f"arith.divf {m_new}, {op(f'arith.subf {one}, {c1}')}")
        u_hat = op(f"arith.divf {u_new}, {op(f'arith.subf {one}, {c2}')}")
        denom = op(f"arith.addf {op(f'math.sqrt {u_hat}')}, {const(eps)}")
        step = op(f"arith.mulf {op(f'arith.divf {m_hat}, {denom}')}, {lr}")
        return lines, [op(f"arith.subf {p}, {step}"), m_new, u_new]
    return body


@dataclass(frozen=True)
class LowerToLinalgPass:
    name = "btc-lower-to-linalg"
    optimizer: str = "adam"

    def run(self, module) -> None:
        view = ModelView(module)
        lowering = _Lowering(view, self.optimizer)
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

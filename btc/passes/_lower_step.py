"""The arithmetic of one time step, shared by every function btc-lower-to-linalg writes: module
globals, the forward step (matmuls + each group's derivative region as one linalg.generic), the loss
and its gradient, and the within-step backward that yields the learning signal.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from btc.dialect import attrs_of
from btc.errors import BtcError
from btc.passes._linalg_text import Fn, block_body, tt
from btc.passes._view import ModelView

__all__ = ["StepLowering", "Step"]

_NEG_BIG = -3.0e38


@dataclass
class Step:
    """Values of one forward step, per group: new states, D (S*S, row-major), Df, spikes, ds/dh,
    and per learned per-neuron parameter j: Dp[g][j] (S values dh'/dp_j) and dsdp[g][j] (ds/dp_j)."""

    h: dict
    D: dict
    Df: dict
    spk: dict
    dsdh: dict
    Dp: dict = field(default_factory=dict)
    dsdp: dict = field(default_factory=dict)


class StepLowering:
    def __init__(self, view: ModelView, optimizer: str, update_every: int = 0, grad_clip: float = 0.0,
                 weight_decay: float = 0.0, betas=(0.9, 0.999), eps=1e-8):
        self.v, self.B, self.K = view, view.batch, view.chunk
        self.optimizer, self.betas, self.eps = optimizer, betas, eps
        self.update_every, self.grad_clip, self.weight_decay = update_every, grad_clip, weight_decay
        self.C = view.readout().size
        self.ce = view.loss["kind"] == "cross_entropy"
        self.schedule = [(op.operation.name, attrs_of(op)) for op in view.schedule.regions[0].blocks[0].operations]
        self.algorithm = attrs_of(view.schedule)["algorithm"]
        self.params = view.params()
        self.corrected = [t for t in view.traces.values() if t.kind == "post" and t.correction and t.decay > 0]
        self.layout: list[dict] = []
        self.global_lines: list[str] = []
        # the past `lag` steps of every input or group some projection reads late (recurrent or delayed)
        self.histories = view.histories()
        self._declare_globals()

    # ---------------------------------------------------------------- globals
    def _global(self, sym: str, shape: tuple, role: str, label: str) -> None:
        if any(e["global"] == sym for e in self.layout):
            raise BtcError(f"two buffers would both be called @{sym} ({label}); rename a group, state or parameter")
        # Each global starts from a different splat: IREE 3.13 lets globals with equal initial values
        # share one buffer, and an in-place update of one then shows up in the other. The values are
        # never read: the runtime runs set_params, reset_state, zero_grads and reset_optimizer at load.
        init = float(len(self.layout) + 1)
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
        if self.update_every:  # time steps since the last in-module update
            self._global("t_upd", (), "optimizer", "steps since update")
        for g in v.order:
            info = v.groups[g]
            for s in info.states:
                self._global(f"h_{g}_{s}", (B, info.size), "state", f"{g}.{s}")
        for pre, lags in self.histories.items():
            for k in range(lags):
                self._global(f"hist_{pre}_{k}", (B, v.size(pre)), "state", f"{pre}.past{k + 1}")
        for t in v.traces.values():
            for s in range(t.num_states):
                self._global(f"tr_{t.name}_{s}", t.shape(B), "trace", f"{t.name}[{s}]")
        if self.corrected:  # pp-prop's bias correction counts time steps since the last reset
            self._global("t_seq", (), "counter", "steps since reset")
        if self.algorithm == "bptt":  # adjoints carried from step t+1 to t during the reverse sweep
            for g in v.order:
                for s in v.groups[g].states:
                    self._global(f"fut_{g}_{s}", (B, v.groups[g].size), "adjoint", f"{g}.{s}")
            for g, lags in self.spike_histories().items():
                for k in range(lags):  # credit for the spikes of step t-k from steps after t
                    self._global(f"futs_{g}_{k}", (B, v.groups[g].size), "adjoint", f"{g}.spikes-{k}")

    def _load(self, fn: Fn, sym: str) -> str:
        shape = next(e["shape"] for e in self.layout if e["global"] == sym)
        n = fn.name("ld")
        fn.emit(f"{n} = util.global.load @{sym} : {tt(*shape)}")
        return n

    def _store(self, fn: Fn, value: str, sym: str) -> None:
        shape = next(e["shape"] for e in self.layout if e["global"] == sym)
        fn.emit(f"util.global.store {value}, @{sym} : {tt(*shape)}")

    def spike_histories(self) -> dict[str, int]:
        return {pre: lags for pre, lags in self.histories.items() if pre in self.v.groups}

    def _state_syms(self) -> list[str]:
        syms = [f"h_{g}_{s}" for g in self.v.order for s in self.v.groups[g].states]
        return syms + [f"hist_{pre}_{k}" for pre, lags in self.histories.items() for k in range(lags)]

    def _trace_syms(self) -> list[str]:
        """Traces and the step counter: everything reset_state zeroes besides the states."""
        syms = [f"tr_{t.name}_{s}" for t in self.v.traces.values() for s in range(t.num_states)]
        return syms + (["t_seq"] if self.corrected else [])

    # ---------------------------------------------------------------- one forward step
    def _weights(self, fn: Fn) -> tuple[dict, dict]:
        """W[projection], b[projection] and, under "<group>.<param>", learned per-neuron parameters."""
        return self._split_params([self._load(fn, f"p{i}") for i in range(len(self.params))], fn)

    def _split_params(self, values: list[str], fn: Fn | None = None) -> tuple[dict, dict]:
        """W[projection] (the applied weights: sign*|W_raw| under Dale's law), b[projection], and
        b["<group>.<param>"] for learned per-neuron parameters."""
        W, b = {}, {}
        for (name, shape), value in zip(self.params, values):
            owner, kind = name.rsplit(".", 1)
            if owner in self.v.projections and kind in ("W", "b"):
                sign = self.v.projections[owner].sign
                if kind == "W" and sign:
                    value = fn.map([value], [shape], shape, 1, _signed_abs_body(sign))[0]
                (W if kind == "W" else b)[owner] = value
            else:
                b[name] = value
        return W, b

    def _pre_value(self, pre: str, lag: int, xt: dict, cur: dict, st: "Step") -> str:
        """What a projection reads: this step's input or spikes, or `lag` steps ago from the history."""
        if lag:
            return cur[f"hist_{pre}_{lag - 1}"]
        return xt[pre] if pre in self.v.inputs else st.spk[pre]

    def _forward(self, fn: Fn, cur: dict, xt: dict, W: dict, b: dict) -> Step:
        v, B = self.v, self.B
        st = Step({}, {}, {}, {}, {})
        for g in v.order:
            info = v.groups[g]
            N, S, K = info.size, info.num_states, len(info.ports)
            ys = []
            for port in info.ports:
                y = self._pre_value(info.driver, 0, xt, cur, st) if info.driver else None
                for p in v.into(g):
                    if p.port == port:
                        pre = self._pre_value(p.pre, p.lag, xt, cur, st)
                        y = fn.matmul(pre, W[p.name], B, v.size(p.pre), N, acc=y)
                biases = [b[p.name] for p in v.biased(g, port)]
                if biases:
                    y = fn.map([y] + biases, [(B, N)] + [(N,)] * len(biases), (B, N), 1, _sum_body)[0]
                ys.append(y or fn.full((B, N), 0.0))
            deriv = v.derivatives[g]
            P = len(info.params)
            elem = [b[f"{g}.{q}"] for q in info.params]

            def body(fn, a, deriv=deriv, S=S, K=K, readout=info.readout):
                lines, out = block_body(fn, deriv.regions[0].blocks[0], a)
                if not readout:  # the spike of the new state, with the same learned parameters
                    more, spike = block_body(fn, deriv.regions[1].blocks[0], out[:S] + a[S + K:])
                    lines, out = lines + more, out + spike
                return lines, out

            n_step = S + S * S + K * S + S * P
            n_out = n_step + (0 if info.readout else 1 + S + P)
            res = fn.map([cur[f"h_{g}_{s}"] for s in info.states] + ys + elem,
                         [(B, N)] * (S + K) + [(N,)] * P, (B, N), n_out, body)
            st.h[g], st.D[g] = res[:S], res[S:S + S * S]
            st.Df[g] = {port: res[S + S * S + k * S:S + S * S + (k + 1) * S] for k, port in enumerate(info.ports)}
            base = S + S * S + K * S
            st.Dp[g] = [res[base + j * S:base + (j + 1) * S] for j in range(P)]
            if not info.readout:
                st.spk[g], st.dsdh[g] = res[n_step], res[n_step + 1:n_step + 1 + S]
                st.dsdp[g] = res[n_step + 1 + S:]
        return st

    # ---------------------------------------------------------------- loss and its gradient
    def _loss(self, fn: Fn, r: str, target: str, w: str, acc: str) -> tuple[str, str]:
        """(dL_t/dr, acc + L_t) for readout r[B,C], this step's target and weight w (mask / count)."""
        B, C = self.B, self.C
        m2, m1 = "affine_map<(d0, d1) -> (d0, d1)>", "affine_map<(d0, d1) -> (d0)>"
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
            return grad, self._total(fn, ins, loss_body, acc)

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
        return grad, self._total(fn, ins, loss_body, acc)

    def _total(self, fn: Fn, ins: list, body, acc: str) -> str:
        """acc + the sum over [B, C] of body's terms, as a per-row reduction then a sum over rows:
        IREE's CUDA codegen failed to distribute the one-step 2-D reduction to a scalar."""
        B = self.B
        m1 = "affine_map<(d0, d1) -> (d0)>"
        rows = fn.generic(ins, [(fn.full((B,), 0.0), m1, tt(B))], ["parallel", "reduction"], body)[0]

        def add(a):
            n = fn.name("r")
            return [f"{n} = arith.addf {a[1]}, {a[0]} : f32"], [n]

        return fn.generic([(rows, "affine_map<(d0) -> (d0)>", tt(B))], [(acc, "affine_map<(d0) -> ()>", tt())],
                          ["reduction"], add)[0]

    # ---------------------------------------------------------------- within-step backward
    def _backward(self, fn: Fn, st: Step, dLdr: str, W: dict, fut: dict | None = None,
                  fut_s: dict | None = None) -> tuple[dict, dict]:
        """a_h[g] = dL/dh_g^t (the learning signal delta, plus `fut` for BPTT), a_y[g][port] =
        dL/dy_{g,port}^t; self.a_s[g] = dL/ds_g^t, which learned spike parameters (the threshold) need."""
        v, B = self.v, self.B
        a_h, a_y = {}, {}
        self.a_s = {}
        for g in reversed(v.order):
            info = v.groups[g]
            N, S, K = info.size, info.num_states, len(info.ports)
            extra = fut[g] if fut else []
            Df = [d for port in info.ports for d in st.Df[g][port]]
            if info.readout:
                ins = [dLdr] + Df + extra
            else:
                a_s = (fut_s or {}).get(g)
                for p in v.out_of(g, lag=0):
                    a_s = fn.matmul_bt(a_y[p.post][p.port], W[p.name], B, N, v.size(p.post), acc=a_s)
                for syn in v.driven_by(g):  # one-to-one into its AlignPre synapses
                    a_s = a_y[syn]["y"] if a_s is None else fn.map([a_s, a_y[syn]["y"]], [(B, N)] * 2, (B, N), 1,
                                                                   _sum_body)[0]
                a_s = a_s or fn.full((B, N), 0.0)
                self.a_s[g] = a_s
                ins = [a_s] + st.dsdh[g] + Df + extra

            def body(fn, a, S=S, K=K, readout=info.readout, has_fut=bool(extra)):
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
                return lines, hs + [_dot(fn, lines, hs, a[df0 + k * S:df0 + (k + 1) * S]) for k in range(K)]

            res = fn.map(ins, [(B, N)] * len(ins), (B, N), S + K, body)
            a_h[g], a_y[g] = res[:S], dict(zip(info.ports, res[S:]))
        return a_h, a_y

    # ---------------------------------------------------------------- time loops
    def _loop(self, fn: Fn, carried: list[tuple[str, str, str]], body, unroll: int = 1) -> dict:
        """scf.for over the K steps; carried = [(key, init value, type)]; body(t, cur) -> next.

        `unroll` steps run per iteration (K % unroll == 0): IREE 3.13 copies every loop-carried
        tensor once per iteration, gradient accumulators included, so fewer iterations copy less.
        """
        if self.K % unroll:
            raise BtcError(f"btc-lower-to-linalg: unroll={unroll} does not divide the chunk of {self.K} steps")
        c0, cstep, ck = fn.index(0), fn.index(unroll), fn.index(self.K)
        offsets = [fn.index(j) for j in range(1, unroll)]
        res, iv = fn.name("loop"), fn.name("t")
        args = {k: fn.name("it") for k, _, _ in carried}
        types = ", ".join(t for _, _, t in carried)
        inits = ", ".join(f"{args[k]} = {init}" for k, init, _ in carried)
        fn.emit(f"{res}:{len(carried)} = scf.for {iv} = {c0} to {ck} step {cstep} iter_args({inits}) -> ({types}) {{")
        fn.indent += 1
        cur = dict(args)
        for j in range(unroll):
            t = iv
            if j:
                t = fn.name("t")
                fn.emit(f"{t} = arith.addi {iv}, {offsets[j - 1]} : index")
            cur = body(t, cur)
        fn.emit(f"scf.yield {', '.join(cur[k] for k, _, _ in carried)} : {types}")
        fn.indent -= 1
        fn.emit("}")
        return {k: f"{res}#{i}" for i, (k, _, _) in enumerate(carried)}

    def _type_of(self, sym: str) -> str:
        return tt(*next(e["shape"] for e in self.layout if e["global"] == sym))

    # Per-step functions take step tensors ([B, I], target[B], mask[]); chunk functions take
    # [K, ...] tensors and slice step t (t=None means a per-step function).
    def _inputs_at(self, fn: Fn, t: str | None) -> dict:
        if t is None:
            return {n: f"%x_{n}" for n in self.v.inputs}
        return {n: fn.slice_t(f"%x_{n}", t, (self.B, i["size"])) for n, i in self.v.inputs.items()}

    def _target_at(self, fn: Fn, t: str | None) -> str:
        if t is None:
            return "%target"
        if self.ce:
            return fn.slice_t("%target", t, (self.B,), dtype="i32")
        return fn.slice_t("%target", t, (self.B, self.C))

    def _step_weight(self, fn: Fn, t: str | None) -> str:
        """mask_t / (number of loss terms averaged): the weight of step t's loss."""
        m, w = fn.name("m"), fn.name("w")
        inv = fn.const(1.0 / (self.B if self.ce else self.B * self.C))
        fn.emit(f"{m} = tensor.extract %mask[] : {tt()}" if t is None else
                f"{m} = tensor.extract %mask[{t}] : {tt(self.K)}")
        fn.emit(f"{w} = arith.mulf {m}, {inv} : f32")
        return w

    def _signature(self, with_target: bool, per_step: bool = False) -> str:
        lead = () if per_step else (self.K,)
        args = [f"%x_{n}: {tt(*lead, self.B, i['size'])}" for n, i in self.v.inputs.items()]
        if with_target:
            tgt = tt(*lead, self.B, dtype="i32") if self.ce else tt(*lead, self.B, self.C)
            args += [f"%target: {tgt}", f"%mask: {tt(*lead)}"]
        return ", ".join(args)

    def _source_value(self, key: str, xt: dict, cur: dict, st: Step) -> str:
        pre, lag = key.split("@")
        return self._pre_value(pre, int(lag), xt, cur, st)



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


def _dot(fn: Fn, lines: list[str], xs: list[str], ys: list[str]) -> str:
    """Append scalar ops computing sum_i xs[i]*ys[i] to `lines`; returns the result's name."""
    acc = None
    for x, y in zip(xs, ys):
        m = fn.name("r")
        lines.append(f"{m} = arith.mulf {x}, {y} : f32")
        if acc is not None:
            n = fn.name("r")
            lines.append(f"{n} = arith.addf {acc}, {m} : f32")
            m = n
        acc = m
    return acc


def _post_trace_body(S: int, alpha: float, exact: bool, inv_correction: str | None = None):
    """eps'[s] = alpha*sum_s' D[s][s'] eps[s'] + (1-alpha)*Df[s] (exact: alpha = 1, Df weight 1);
    also yields sum_s eps'[s]*delta[s] (times the bias correction, if any), the postsynaptic factor
    of the gradient. An exact trace may be driven by dh'/dp instead of Df."""
    def body(fn: Fn, a):
        D, Df, eps, delta = a[:S * S], a[S * S:S * S + S], a[S * S + S:S * S + 2 * S], a[S * S + 2 * S:]
        ca, cb = fn.name("r"), fn.name("r")
        lines = [f"{ca} = arith.constant {alpha:.9e} : f32",
                 f"{cb} = arith.constant {(1.0 if exact else 1.0 - alpha):.9e} : f32"]
        new = []
        for s in range(S):
            acc = _dot(fn, lines, D[s * S:(s + 1) * S], eps)
            x, y, z = fn.name("r"), fn.name("r"), fn.name("r")
            lines += [f"{x} = arith.mulf {acc}, {ca} : f32", f"{y} = arith.mulf {Df[s]}, {cb} : f32",
                      f"{z} = arith.addf {x}, {y} : f32"]
            new.append(z)
        factor = _dot(fn, lines, new, delta)
        if inv_correction is not None:
            corrected = fn.name("r")
            lines.append(f"{corrected} = arith.mulf {factor}, {inv_correction} : f32")
            factor = corrected
        return lines, new + [factor]
    return body


def _dot_body(fn: Fn, a):
    """sum_i a[i]*a[n/2 + i]."""
    lines: list[str] = []
    half = len(a) // 2
    return lines, [_dot(fn, lines, a[:half], a[half:])]


def _signed_abs_body(sign: int):
    """sign*|w|: Dale's law keeps every applied weight of one sign."""
    def body(fn: Fn, a):
        m = fn.name("r")
        lines = [f"{m} = math.absf {a[0]} : f32"]
        if sign > 0:
            return lines, [m]
        n = fn.name("r")
        return lines + [f"{n} = arith.negf {m} : f32"], [n]
    return body


def _fma_body(fn: Fn, a):
    """a0 + a1*a2."""
    m, s = fn.name("r"), fn.name("r")
    return [f"{m} = arith.mulf {a[1]}, {a[2]} : f32", f"{s} = arith.addf {a[0]}, {m} : f32"], [s]


_M3 = {"bo": "affine_map<(d0, d1, d2) -> (d0, d2)>", "bi": "affine_map<(d0, d1, d2) -> (d0, d1)>",
       "bio": "affine_map<(d0, d1, d2) -> (d0, d1, d2)>"}


def _dense_trace_update(fn: Fn, D: list, Df: list, x: str, old: list, B: int, I: int, O: int) -> list[str]:
    """D-RTRL: e'[s][b,i,o] = sum_s' D[s][s'][b,o]*e[s'][b,i,o] + Df[s][b,o]*x[b,i]."""
    S = len(old)
    ins = ([(d, _M3["bo"], tt(B, O)) for d in D + Df] + [(x, _M3["bi"], tt(B, I))]
           + [(e, _M3["bio"], tt(B, I, O)) for e in old])
    outs = [(fn.empty((B, I, O)), _M3["bio"], tt(B, I, O)) for _ in range(S)]

    def body(a):
        Dv, Dfv, xv, ev = a[:S * S], a[S * S:S * S + S], a[S * S + S], a[S * S + S + 1:S * S + S + 1 + S]
        lines: list[str] = []
        new = []
        for s in range(S):
            drive = fn.name("r")
            lines.append(f"{drive} = arith.mulf {Dfv[s]}, {xv} : f32")
            acc = _dot(fn, lines, Dv[s * S:(s + 1) * S], ev)
            total = fn.name("r")
            lines.append(f"{total} = arith.addf {acc}, {drive} : f32")
            new.append(total)
        return lines, new

    return fn.generic(ins, outs, ["parallel"] * 3, body)


def _dense_grad(fn: Fn, e: list, delta: list, acc: str, B: int, I: int, O: int) -> str:
    """D-RTRL: acc[i,o] + sum_b sum_s e[s][b,i,o]*delta[s][b,o] (batch reduction innermost)."""
    S = len(e)
    ins = ([(x, "affine_map<(d0, d1, d2) -> (d2, d0, d1)>", tt(B, I, O)) for x in e]
           + [(d, "affine_map<(d0, d1, d2) -> (d2, d1)>", tt(B, O)) for d in delta])

    def body(a):
        lines: list[str] = []
        dot = _dot(fn, lines, a[:S], a[S:2 * S])
        out = fn.name("r")
        lines.append(f"{out} = arith.addf {a[2 * S]}, {dot} : f32")
        return lines, [out]

    return fn.generic(ins, [(acc, "affine_map<(d0, d1, d2) -> (d0, d1)>", tt(I, O))],
                      ["parallel", "parallel", "reduction"], body)[0]


def _transpose_apply_body(S: int):
    """out[s'] = sum_s D[s][s'] * a[s]: the adjoint carried to step t-1."""
    def body(fn: Fn, a):
        D, adj = a[:S * S], a[S * S:]
        lines: list[str] = []
        return lines, [_dot(fn, lines, [D[s * S + sp] for s in range(S)], adj) for sp in range(S)]
    return body


def _sgd_body(lr: str, scale: str | None, weight_decay: float):
    """p - lr*(g*scale + weight_decay*p)."""
    def body(fn: Fn, a):
        p, g = a
        lines: list[str] = []
        step = _scaled(fn, lines, g, scale)
        if weight_decay:
            step = _decayed(fn, lines, step, p, weight_decay)
        m, n = fn.name("r"), fn.name("r")
        return lines + [f"{m} = arith.mulf {step}, {lr} : f32", f"{n} = arith.subf {p}, {m} : f32"], [n]
    return body


def _scaled(fn: Fn, lines: list[str], g: str, scale: str | None) -> str:
    if scale is None:
        return g
    n = fn.name("r")
    lines.append(f"{n} = arith.mulf {g}, {scale} : f32")
    return n


def _decayed(fn: Fn, lines: list[str], step: str, p: str, weight_decay: float) -> str:
    """step + weight_decay*p: decoupled weight decay (AdamW), applied with the learning rate."""
    c, m, n = fn.name("r"), fn.name("r"), fn.name("r")
    lines += [f"{c} = arith.constant {weight_decay:.9e} : f32", f"{m} = arith.mulf {p}, {c} : f32",
              f"{n} = arith.addf {step}, {m} : f32"]
    return n


def _adam_body(lr: str, b1: float, b2: float, eps: float, c1: str, c2: str, scale: str | None = None,
               weight_decay: float = 0.0):
    """Adam with bias correction; c1, c2 are b1^k and b2^k for this update's step k; the gradient
    is first multiplied by the clip scale, and weight decay is decoupled (AdamW)."""
    def body(fn: Fn, a):
        p, g0, m, u = a
        lines: list[str] = []
        g = _scaled(fn, lines, g0, scale)

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
        step = op(f"arith.divf {m_hat}, {denom}")
        if weight_decay:
            step = _decayed(fn, lines, step, p, weight_decay)
        return lines, [op(f"arith.subf {p}, {op(f'arith.mulf {step}, {lr}')}"), m_new, u_new]
    return body

"""The optimizer, compiled in: one step of Adam or SGD on values (not globals), with global-norm
clipping, decoupled weight decay and Dale's-law chain rule, and the exported `apply_update(lr)`.
The same step runs inside train_chunk for in-module update schedules (online.py).
"""
from __future__ import annotations

from btc.errors import BtcError
from btc.status import UPDATE_APPLIED, UPDATE_BAD_GRADIENTS, UPDATE_BAD_PARAMETERS
from btc.passes.lowering.bodies import chain_sign_body, constant_like_body
from btc.passes.lowering.context import Arg, Lowering
from btc.passes.lowering.text import Fn, select_scalar, tt

__all__ = ["OPTIMIZERS", "optimizer_syms", "optimizer_step", "raw_grads", "apply_update"]

OPTIMIZERS = ("adam", "sgd")


def optimizer_syms(lw: Lowering) -> list[str]:
    """Every global an optimizer step reads or writes."""
    keys = []
    for i in range(len(lw.params)):
        keys += [f"p{i}", f"g{i}"] + ([f"m{i}", f"u{i}"] if lw.options.optimizer == "adam" else [])
    return keys + ["opt_step"]


def apply_update(lw: Lowering) -> None:
    """p -= lr * step(g), then g = 0; Adam keeps its moments and step count as globals. Guarded on the
    device: a NaN or infinite gradient, or a step that would make a parameter so, changes nothing but
    the gradients (zeroed), and the status result says which (checked on the host, it cost three
    parameter-sized copies per update: 40-100 ms at 4.4 million parameters).

    Two passes over each parameter: a reduction that computes the step only to test it, then one
    dispatch that computes it again and writes the new value or keeps the old. The step is never
    stored: materialised (a transient the size of the optimizer state), IREE kept such slabs alive
    after updates, and the resident size wandered (recurrent_lif N=2048, 40 sequences with an update
    each: 265 -> 352 MiB in one run, 265 -> 769 in another; now 282 -> 328 in both). The price: each
    update's new state is fresh memory, whose page faults cost ~10 ms an update at 4.4 M parameters."""
    fn = Fn()
    lr = fn.name("lr")
    fn.emit(f"{lr} = tensor.extract %lr[] : {tt()}")
    keys = optimizer_syms(lw)
    old = {k: lw.load(fn, k) for k in keys}
    steps = _param_steps(lw, fn, lr, old)
    grads_ok = _all_finite(fn, [(steps.grads[i], shape) for i, (_, shape) in enumerate(lw.params)])
    params_ok = _steps_finite(fn, steps)
    ok, status, s1 = fn.name("ok"), fn.name("st"), fn.name("st")
    fn.emit(f"{ok} = arith.andi {grads_ok}, {params_ok} : i1")
    fn.emit(f"{s1} = arith.select {params_ok}, {fn.const(UPDATE_APPLIED)}, {fn.const(UPDATE_BAD_PARAMETERS)} : f32")
    fn.emit(f"{status} = arith.select {grads_ok}, {s1}, {fn.const(UPDATE_BAD_GRADIENTS)} : f32")
    new = steps.apply(fn, ok)
    new["opt_step"] = select_scalar(fn, ok, steps.count, old["opt_step"])
    for k in keys:
        lw.store(fn, new[k], k)
    out = fn.name("st")
    fn.emit(f"{out} = tensor.from_elements {status} : {tt()}")
    lw.export("apply_update", [Arg("lr", ())], [Arg("status", ())], fn, [out])


def optimizer_step(lw: Lowering, fn: Fn, lr: str, vals: dict) -> dict:
    """One optimizer step on values (not globals): clip the global gradient norm, Adam or SGD with
    decoupled weight decay, count the step, zero the gradients."""
    steps = _param_steps(lw, fn, lr, vals)
    return {**steps.apply(fn, None), "opt_step": steps.count}


class _ParamSteps:
    """Each parameter's step as an elementwise body over its stored values, applied or only tested.
    bodies[i]: None for a frozen parameter; else (input keys, output keys, body), the body reading the
    inputs (with the raw gradient in the g slot) and yielding the new values of the outputs."""

    def __init__(self, lw: Lowering, vals: dict, grads: list[str], bodies: list, count: str):
        self.lw, self.vals, self.grads, self.bodies, self.count = lw, vals, grads, bodies, count

    def inputs(self, i: int) -> list[str]:
        ins, _, _ = self.bodies[i]
        return [self.grads[i] if k == "g" else self.vals[f"{k}{i}"] for k in ins]

    def apply(self, fn: Fn, ok: str | None) -> dict:
        """The new values by global name; with ok, each new value is the old one where ok is false.
        The gradients are zeroed either way."""
        out = {}
        for i, (_, shape) in enumerate(self.lw.params):
            if self.bodies[i] is None:  # trainable=False: never updated (its gradient stays zero)
                out.update({f"{k}{i}": self.vals[f"{k}{i}"] for k in ("p", "g", "m", "u") if f"{k}{i}" in self.vals})
                continue
            # zero from the gradient's own values: a shared zero fill would alias the buffers
            out[f"g{i}"] = fn.map([self.vals[f"g{i}"]], [shape], shape, 1, constant_like_body(0.0))[0]
            ins, outs, body = self.bodies[i]
            kept = _kept_where(ok, body, [ins.index(k) for k in outs])
            new = fn.map(self.inputs(i), [shape] * len(ins), shape, len(outs), kept)
            out.update({f"{k}{i}": v for k, v in zip(outs, new)})
        return out


def _kept_where(ok: str | None, body, old_slots: list[int]):
    """body, its results replaced by the old values (inputs old_slots) where ok is false."""
    if ok is None:
        return body

    def kept(fn: Fn, a):
        lines, new = body(fn, a)
        sel = [fn.name("r") for _ in new]
        return lines + [f"{s} = arith.select {ok}, {n}, {a[j]} : f32"
                        for s, n, j in zip(sel, new, old_slots)], sel
    return kept


def _param_steps(lw: Lowering, fn: Fn, lr: str, vals: dict) -> _ParamSteps:
    """The scalar part of a step (clip scale, step count, bias corrections), and each parameter's body."""
    opts = lw.options
    if opts.optimizer not in OPTIMIZERS:
        raise BtcError(f"unknown optimizer {opts.optimizer!r}; expected one of {list(OPTIMIZERS)}")
    b1, b2 = opts.betas
    raw = raw_grads(lw, fn, vals)
    scale = _clip_scale(lw, fn, raw) if opts.grad_clip else None
    k0, k = fn.name("k"), fn.name("k")
    fn.emit(f"{k0} = tensor.extract {vals['opt_step']}[] : {tt()}")
    fn.emit(f"{k} = arith.addf {k0}, {fn.const(1.0)} : f32")
    c1, c2 = fn.name("bc"), fn.name("bc")
    fn.emit(f"{c1} = math.powf {fn.const(b1)}, {k} : f32")
    fn.emit(f"{c2} = math.powf {fn.const(b2)}, {k} : f32")
    bodies = []
    for name, _ in lw.params:
        if name in lw.frozen_params:
            bodies.append(None)
            continue
        # weight decay applies to weights only: it would drag thresholds and time constants to 0
        wd = opts.weight_decay if name.endswith(".W") else 0.0
        if opts.optimizer == "sgd":
            bodies.append((("p", "g"), ("p",), _sgd_body(lr, scale, wd)))
        else:
            bodies.append((("p", "g", "m", "u"), ("p", "m", "u"), _adam_body(lr, b1, b2, opts.eps, c1, c2, scale, wd)))
    kt = fn.name("kt")
    fn.emit(f"{kt} = tensor.from_elements {k} : {tt()}")
    return _ParamSteps(lw, vals, raw, bodies, kt)


def raw_grads(lw: Lowering, fn: Fn, vals: dict) -> list[str]:
    """The gradient by each stored parameter. Gradients accumulate by the applied weights; under
    Dale's law (W = sign*|W_raw|) the one by W_raw is sign*sgn(W_raw) times that."""
    out = []
    for i, (name, shape) in enumerate(lw.params):
        owner, kind = name.rsplit(".", 1)
        sign = lw.v.projections[owner].sign if kind == "W" and owner in lw.v.projections else 0
        g = vals[f"g{i}"]
        out.append(fn.map([g, vals[f"p{i}"]], [shape] * 2, shape, 1, chain_sign_body(sign))[0] if sign else g)
    return out


def _clip_scale(lw: Lowering, fn: Fn, grads: list[str]) -> str:
    """clip / max(|g|, clip) over all gradients together: 1 when the norm is within the clip."""
    acc = fn.full((), 0.0)
    for g, (_, shape) in zip(grads, lw.params):
        r = len(shape)
        dims = ", ".join(f"d{j}" for j in range(r))
        ident = f"affine_map<({dims}) -> ({dims})>"
        scalar = f"affine_map<({dims}) -> ()>"

        def body(a):
            sq, sm = fn.name("r"), fn.name("r")
            return [f"{sq} = arith.mulf {a[0]}, {a[0]} : f32", f"{sm} = arith.addf {a[1]}, {sq} : f32"], [sm]

        acc = fn.generic([(g, ident, tt(*shape))], [(acc, scalar, tt())], ["reduction"] * r, body)[0]
    total, norm, big, scale = fn.name("n"), fn.name("n"), fn.name("n"), fn.name("n")
    clip = fn.const(lw.options.grad_clip)
    fn.emit(f"{total} = tensor.extract {acc}[] : {tt()}")
    fn.emit(f"{norm} = math.sqrt {total} : f32")
    fn.emit(f"{big} = arith.maximumf {norm}, {clip} : f32")
    fn.emit(f"{scale} = arith.divf {clip}, {big} : f32")
    return scale


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


def _all_finite(fn: Fn, values: list[tuple[str, tuple]]) -> str:
    """An i1: every entry of every value is finite."""
    return _finite(fn, [([v], shape, lambda a: ([], a[0])) for v, shape in values])


def _steps_finite(fn: Fn, steps: _ParamSteps) -> str:
    """An i1: every parameter the step would write is finite. The step is computed inside the test's
    reduction, not stored."""
    def new_param(step_body):
        def entry(a):
            lines, new = step_body(fn, a)
            return lines, new[0]
        return entry
    return _finite(fn, [(steps.inputs(i), shape, new_param(steps.bodies[i][2]))
                        for i, (_, shape) in enumerate(steps.lw.params) if steps.bodies[i] is not None])


def _finite(fn: Fn, tests: list) -> str:
    """An i1: every tested entry is finite (x - x is 0 exactly then; NaN for NaN and infinities).
    tests: (inputs, shape, entry), entry(input entries) -> (lines, the entry to test). A matrix's rows
    are tested in parallel, then the row results together: a reduction straight to a scalar ran on one
    core (2048 x 2048: 6.3 ms with the Adam step inside)."""
    def flag_min(acc: str, x: str) -> tuple[list[str], str]:
        d, fin, f, m = (fn.name("r") for _ in range(4))
        return [f"{d} = arith.subf {x}, {x} : f32", f"{fin} = arith.cmpf oeq, {d}, {zero} : f32",
                f"{f} = arith.uitofp {fin} : i1 to f32", f"{m} = arith.minimumf {acc}, {f} : f32"], m

    def tested(entry):
        def body(a):
            lines, x = entry(a[:-1])
            more, m = flag_min(a[-1], x)
            return lines + more, [m]
        return body

    def row_min(a):
        m = fn.name("r")
        return [f"{m} = arith.minimumf {a[1]}, {a[0]} : f32"], [m]

    zero, out = fn.const(0.0), None
    for ins, shape, entry in tests:
        r = len(shape)
        dims = ", ".join(f"d{j}" for j in range(r))
        ident = f"affine_map<({dims}) -> ({dims})>"
        lead = (shape[0],) if r >= 2 else ()
        red = fn.generic([(v, ident, tt(*shape)) for v in ins],
                         [(fn.full(lead, 1.0), f"affine_map<({dims}) -> ({'d0' if lead else ''})>", tt(*lead))],
                         ["parallel"] * len(lead) + ["reduction"] * (r - len(lead)), tested(entry))[0]
        if lead:
            red = fn.generic([(red, "affine_map<(d0) -> (d0)>", tt(*lead))],
                             [(fn.full((), 1.0), "affine_map<(d0) -> ()>", tt())], ["reduction"], row_min)[0]
        x, c = fn.name("fin"), fn.name("fin")
        fn.emit(f"{x} = tensor.extract {red}[] : {tt()}")
        fn.emit(f"{c} = arith.cmpf oeq, {x}, {fn.const(1.0)} : f32")
        if out is not None:
            both = fn.name("fin")
            fn.emit(f"{both} = arith.andi {out}, {c} : i1")
            c = both
        out = c
    if out is None:  # nothing to test: every parameter frozen
        out = fn.name("fin")
        fn.emit(f"{out} = arith.constant true")
    return out

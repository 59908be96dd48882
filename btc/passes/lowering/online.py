"""Online training: `train_chunk(x[K,B,I]..., target, mask[K])` (and, for one rank of a partitioned
network, `readout_offset[K,B,C]`: the other ranks' readout, added to this rank's before the loss), whose K-step time loop (an scf.for
inside the module) runs the forward step, the loss and the schedule's rules each step, with states,
traces and gradients carried through the loop and stored back once. With an in-module update
schedule (update_every k) the parameters and optimizer state are carried too.
"""
from __future__ import annotations

from btc.passes.lowering.bodies import select_body, sum_body, weighted_add_body
from btc.passes.lowering.context import Arg, Lowering
from btc.passes.lowering.event_grad import GradientBlock
from btc.passes.lowering.events import any_flag
from btc.passes.lowering.forward import drives_at, forward, input_drives, next_states, split_params, time_loop, weights
from btc.passes.lowering.grad_rules import slot_accumulators, slot_keys
from btc.passes.lowering.loss import step_loss
from btc.passes.lowering.optimizer import optimizer_step, optimizer_syms
from btc.passes.lowering.schedule import StepValues, run_schedule
from btc.passes.lowering.sparse import slots_to_vector
from btc.passes.lowering.text import Fn, select_scalar, tt
from btc.passes.plan_events import SPIKE_DRIVEN, first_step_list_capacity, list_capacity, spike_driven

__all__ = ["train_chunk"]


# The optimistic variants of train_chunk, tried in this order: (name, list headroom over the expected activity,
# tight: whole-batch lists sized by plan_events.step_list_capacity). A tight one only where a sparse projection's
# whole-batch lists can be much shorter than _fast's (_tight_helps)
OPTIMISTIC_TIERS = (("train_chunk_tight", 1.0, True), ("train_chunk_fast", 1.0, False),
                    ("train_chunk_roomy", 4.0, False))


def train_chunk(lw: Lowering) -> None:
    """With update_every, train_chunk also takes the learning rate and the number of valid
    (unpadded) steps. A module with event-driven work also exports train_chunk_fast: the same chunk
    without the slow exact path for active lists longer than their capacity (events.gather_rows_sum).
    It returns a flag besides; when set, it stored nothing, and the runtime runs the next function instead:
    train_chunk_roomy (lists sized for 4x the expected activity: the activity drifts as a network learns, and the exact path past a
    list's capacity costs ~3x the whole chunk), then train_chunk. Before train_chunk_fast, where it saves
    much, train_chunk_tight: a sparse projection's lists over a step's batch sized for 1.25x the expected count
    and its spread (plan_events.step_list_capacity). Functions ending in `_tight`, `_fast` or `_roomy` are these tiers
    (runtime.tiers)."""
    _train_chunk(lw, "train_chunk", optimistic=False)
    # (a rank of a partitioned network calls train_chunk only: one step per call, nothing to amortise)
    if not lw.options.partitioned and any(spike_driven(p) for p in lw.v.projections.values()):
        helps = _tight_helps(lw)
        for name, headroom, tight in OPTIMISTIC_TIERS:
            if tight and not helps:
                continue
            if not _train_chunk(lw, name, optimistic=True, headroom=headroom, tight=tight):
                break  # every list holds its whole tensor: a roomier tier would be the same function


def _tight_helps(lw: Lowering) -> bool:
    """Whether some spike-driven sparse projection's lists over a step's batch call for train_chunk_tight
    (plan_events.first_step_list_capacity)."""
    v = lw.v
    for p in v.projections.values():
        if "sparse-event" in (p.propagation, p.weight_gradient):
            n, a = lw.B * v.size(p.pre), v.activity_of(p.pre)
            if first_step_list_capacity(n, a) < list_capacity(n, a):
                return True
    return False


def _train_chunk(lw: Lowering, name: str, optimistic: bool, headroom: float = 1.0, tight: bool = False) -> bool:
    """Writes one train_chunk function; returns whether some active list in it is shorter than its tensor."""
    fn = Fn(optimistic=optimistic, headroom=headroom, tight=tight)
    fn.chunk = lw.K
    fn.pack_tiles = lw.options.pack_tiles
    B, C = lw.B, lw.C
    continual = bool(lw.options.update_every)
    W, b = ({}, {}) if continual else weights(lw, fn)
    grads = [f"g{i}" for i in range(len(lw.params))]
    carried = lw.state_syms() + lw.trace_syms() + grads
    if continual:
        carried += [k for k in optimizer_syms(lw) if k not in grads] + ["t_upd"]
    carry = [(s, lw.load(fn, s), lw.type_of(s)) for s in carried]
    initial = {s: value for s, value, _ in carry}
    carry += [("loss", fn.full((), 0.0), tt()), ("rsum", fn.full((B, C), 0.0), tt(B, C))]
    if optimistic:
        carry.append(("overflow", fn.full((), 0.0), tt()))
    # sparse weight gradients are summed per pull slot through the loop, read at the pairs after it
    slots = {} if continual else slot_accumulators(lw, optimistic)
    carry += [(k, fn.full(shape, 0.0), tt(*shape)) for k, (_, shape) in slots.items()]
    block = GradientBlock(fn, B, {t.name: lw.v.activity_of(t.of) for t in lw.v.traces.values() if t.kind == "pre"},
                          lw.unroll, lw.K // lw.unroll, _deferred_e0(lw), stacks_dense=_stacks_dense(lw))
    carry += block.carried()
    drives = {} if continual else input_drives(lw, fn, W)  # (continual: W changes inside the loop)

    def step(t, cur):
        nonlocal W, b
        if block.t0 is None:  # the block's first step
            block.t0 = t
        if continual:
            W, b = split_params(lw, [cur[f"p{i}"] for i in range(len(lw.params))], fn)
        xt = lw.inputs_at(fn, t)
        st = forward(lw, fn, cur, xt, W, b, drives_at(lw, fn, drives, t))
        w = lw.step_weight(fn, t)
        r = st.h[lw.v.readout().name][0]
        if lw.options.partitioned:  # the loss sees the whole network's readout: this rank's plus the others'
            offset = fn.slice_t("%readout_offset", t, (B, C))
            r = fn.map([r, offset], [(B, C)] * 2, (B, C), 1, sum_body)[0]
        dLdr, loss = step_loss(lw, fn, r, lw.target_at(fn, t), w, cur["loss"])
        mask_t = fn.name("mt")
        fn.emit(f"{mask_t} = tensor.extract %mask[{t}] : {tt(lw.K)}")
        rsum = fn.map([cur["rsum"], r], [(B, C)] * 2, (B, C), 1, weighted_add_body(mask_t))[0]
        nxt = dict(cur, loss=loss, rsum=rsum, **next_states(lw, st, cur, xt))
        run_schedule(lw, StepValues(fn, st, dLdr, W, xt, cur, nxt, block=block))
        if continual:
            _maybe_update(lw, fn, t, nxt)
        return nxt

    def end(cur):
        cur = block.flush(cur)
        if optimistic and fn.overflows:  # this iteration's flags, one reduction
            cur = dict(cur, overflow=any_flag(fn, fn.overflows, cur["overflow"]))
        return cur

    fn.overflows = [] if optimistic else None  # the loop body's event-driven sums add their flags
    out = block.finish(time_loop(lw, fn, carry, step, unroll=lw.unroll, end=end))
    for proj in dict.fromkeys(p for p, _ in slots.values()):
        i = lw.param_index(f"{proj}.W")
        out[f"g{i}"] = slots_to_vector(fn, W[proj], [out[k] for k in slot_keys(i, proj, lw)], out[f"g{i}"])
    fn.overflows = None  # past the loop: an event-driven sum here would have no flag (gather_rows_sum refuses)
    if optimistic:  # something was left out: every global stays as it was, for the exact function
        flag, ok = fn.name("of"), fn.name("of")
        fn.emit(f"{flag} = tensor.extract {out['overflow']}[] : {tt()}")
        fn.emit(f"{ok} = arith.cmpf oeq, {flag}, {fn.const(0.0)} : f32")
        for s in carried:
            shape = lw.shape_of(s)
            out[s] = (fn.map([out[s], initial[s]], [shape] * 2, shape, 1, select_body(ok))[0] if shape
                      else select_scalar(fn, ok, out[s], initial[s]))
    for s in carried:
        lw.store(fn, out[s], s)
    inputs = lw.step_inputs(per_step=False) + lw.target_inputs(per_step=False)
    if continual:
        inputs += [Arg("lr", ()), Arg("valid", (), "int32")]
    if lw.options.partitioned:
        inputs.append(Arg("readout_offset", (lw.K, B, C)))
    outputs, values = [Arg("loss", ()), Arg("readout_sum", (B, C))], [out["loss"], out["rsum"]]
    if optimistic:
        outputs, values = outputs + [Arg("overflow", ())], values + [out["overflow"]]
    lw.export(name, inputs, outputs, fn, values)
    return fn.capped


# The deferred e0 terms' stacks, [blocks*B, I] and [blocks*B, O] per gradient, are loop-carried (IREE 3.13
# copies them every iteration): up to this many bytes of them in all.
DEFERRED_E0_BYTES = 64 << 20


def _deferred_e0(lw: Lowering) -> dict[str, tuple[int, int]]:
    """Gradient key -> (I, O) of the dense weights whose regrouped gradient's e0 term is one matmul after the
    loop instead of one product per block (event_grad.GradientBlock.finish): every one whose stacks fit in
    what DEFERRED_E0_BYTES leaves, when the loop has two blocks or more (a sparse projection's stays per
    block: one product over its pull slots for all the blocks' rows ran slower, benchmarks/README.md)."""
    blocks = lw.K // lw.unroll
    if blocks < 2:
        return {}
    out, total = {}, 0
    for p in lw.v.projections.values():
        if p.weight_gradient != "event" or p.sparse:
            continue
        I, O = lw.v.size(p.pre), lw.v.size(p.post)
        size = 4 * blocks * lw.B * (I + O)
        if total + size > DEFERRED_E0_BYTES:  # this one keeps its product per block
            continue
        total += size
        out[f"g{lw.param_index(f'{p.name}.W')}"] = (I, O)
    return out


def _stacks_dense(lw: Lowering) -> bool:
    """Whether dense weights' plain gradients may be summed once per block (GradientBlock.add_stacked): in a
    loop of blocks already (some gradient regrouped), and not read by an in-module update every step."""
    return (not lw.options.update_every and lw.unroll > 1
            and any(p.weight_gradient in SPIKE_DRIVEN for p in lw.v.projections.values()))


def _maybe_update(lw: Lowering, fn: Fn, t: str, nxt: dict) -> None:
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
    fn.emit(f"{reached} = arith.cmpf oge, {c1}, {fn.const(float(lw.options.update_every))} : f32")
    fn.emit(f"{do} = arith.andi {ok}, {reached} : i1")
    # The step is computed every time and selected: an scf.if yielding tensors inside the loop
    # failed at run time in IREE 3.13 (a command-buffer binding out of range).
    keys = optimizer_syms(lw)
    new = optimizer_step(lw, fn, lr, {k: nxt[k] for k in keys})
    for k in keys:
        shape = lw.shape_of(k)
        if shape:
            nxt[k] = fn.map([new[k], nxt[k]], [shape] * 2, shape, 1, select_body(do))[0]
        else:
            nxt[k] = select_scalar(fn, do, new[k], nxt[k])
    counted = fn.name("kt")
    fn.emit(f"{counted} = tensor.from_elements {c1} : {tt()}")
    zero = fn.name("kt")
    fn.emit(f"{zero} = tensor.from_elements {fn.const(0.0)} : {tt()}")
    nxt["t_upd"] = select_scalar(fn, do, zero, counted)

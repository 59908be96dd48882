#!/usr/bin/env python
"""Train-step time and peak memory of the reference library `braintrace` (pp-prop) on btc's benchmark network.

This script is NOT part of btc and braintrace is NOT a btc dependency. Run it from a side virtual
environment (see benchmarks/BRAINTRACE.md and benchmarks/README.md):

    python3.12 -m venv /tmp/venv/bt12 && /tmp/venv/bt12/bin/pip install "braintrace==0.2.8" brainevent numba
    /tmp/venv/bt12/bin/python benchmarks/bench_braintrace.py --n 128,512 --t 100,1000 --projection dense,event

Network (as close as is reasonable to btc.frontend.zoo.recurrent_lif(inputs=100, hidden=N, classes=10)):
100 Bernoulli(0.1) inputs -> N LIF neurons (tau 10 ms, threshold 1, rest = reset = 0, soft reset with the
reset detached, dt 1 ms, exponential Euler) with exponential current synapses (tau_syn 5 ms; the current is
a state of the postsynaptic neuron, AlignPost) fed by input weights and recurrent weights (the recurrent
projection reads the spikes of step t-1) -> 10-way leaky rate readout (tau 10 ms, braintrace.nn.LeakyRateReadout)
-> per-step softmax cross-entropy against one label per sequence, summed over steps; batch 32; Adam lr 1e-3;
sigmoid surrogate with slope 4. Trained online with braintrace.pp_prop (decay 0.9), driven step by step by
learner.etrace_grad inside one brainstate.transform.jit per sequence (optimizer update included).

Projections (`--projection`), input and recurrent alike; the readout is braintrace.nn.LeakyRateReadout in both:
  dense  braintrace.nn.Linear (no bias): braintrace's `etp_mm` primitive, an XLA dense matmul.
  event  the same weights multiplied by brainevent's binary-event x dense-matrix product,
         `brainevent.BinaryArray(x) @ W` (brainevent.binary_densemm with transpose=True; on CPU its numba
         kernel, which for each batch row adds up the rows of W selected by the non-zero entries of x;
         `--numba-parallel 1` (default) runs it in parallel over the batch on all cores). It is wrapped
         in an ETP primitive made with `braintrace.register_primitive` whose eligibility-trace rules are
         braintrace's own dense-matmul rules (`braintrace._op.dense._mm_dt_to_t / _mm_xy_to_dw /
         _mm_init_drtrl / _mm_init_pp`), so pp-prop sees it exactly as it sees braintrace.nn.Linear:
         the same traces, the same (dense) weight-gradient outer product; only the forward product is
         event-driven (its derivative w.r.t. the spikes, which the hidden-to-hidden Jacobian needs, is a
         dense product). braintrace 0.2.8 has no event-driven op of its own
         (`braintrace.sparse_matmul` / `nn.SparseLinear` multiply a dense x by a brainevent sparse matrix).
         Same loss and same gradients as dense (checked: `--check 128 100 --projection event`).
  csr    input projection dense (braintrace.nn.Linear); the recurrent projection sparse:
         braintrace.nn.SparseLinear over a brainevent.CSR of the pairs in `--pairs FILE.npz` (arrays pre,
         post; weights N(0, (0.5 / sqrt(mean fan-in))^2)), pp-prop through braintrace's sparse_matmul rules.

Timing: two untimed warm-up sequences (the second call is also slow), then the median of `--repeats` timed
sequences (default 10 for T <= 100, else 3), each including the Adam update and the on-device draw of its
Bernoulli inputs; the same for both projections. Each (N, T, projection) runs in a fresh process (`--one N T`) so
that its peak RSS (getrusage ru_maxrss) is its own; it is read before a last, untimed forward sequence that
measures the hidden firing rate (fraction of neurons with v >= 1 per step). No btc number is typed in here:
benchmarks/bench_events.py measures btc and braintrace in one run and prints their ratios.
Exit status: 0 on success, 2 when braintrace (or its stack) cannot be imported, 1 when a config fails.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

I, B, C = 100, 32, 10
P_SPIKE = 0.1
LR = 1e-3
DECAY = 0.9
TAU_MEM, TAU_SYN, TAU_OUT, DT = 10.0, 5.0, 10.0, 1.0
SLOPE = 4.0
INPUT_SCALE, RECURRENT_SCALE, READOUT_SCALE = 1.0, 0.5, 1.0  # btc zoo: W ~ N(0, (scale/sqrt(fan_in))^2)
MARK = "BENCH_RESULT "


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def import_stack():
    try:
        import jax  # noqa: F401
        import brainstate  # noqa: F401
        import braintools  # noqa: F401
        import brainunit  # noqa: F401
        import braintrace  # noqa: F401
    except Exception as e:  # ImportError, or a broken install raising something else
        print(f"bench_braintrace: cannot import braintrace and its stack ({type(e).__name__}: {e}).\n"
              f"Install it in a side environment:  python3.12 -m venv /tmp/venv/bt12 && "
              f"/tmp/venv/bt12/bin/pip install 'braintrace==0.2.8' brainevent numba\n"
              f"then run:  /tmp/venv/bt12/bin/python benchmarks/bench_braintrace.py", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------------------- projections
PROJECTIONS = ("dense", "event", "csr")
PAIRS = {}  # csr: the recurrent projection's pairs, {"file": path of an .npz with int arrays pre, post}
_EVENT_MM = []  # the event-driven ETP primitive, registered once per process


def event_matmul_primitive():
    """An ETP primitive whose forward is brainevent's binary-event x dense-matrix product
    (`brainevent.BinaryArray(x) @ w`: for each batch row, the sum of the rows of `w` selected by
    the non-zero entries of `x`; on CPU brainevent's numba kernel for `binary_densemm`). Its
    eligibility-trace rules are those of braintrace's own dense `etp_mm` primitive, so pp-prop's
    traces and weight gradient are computed exactly as for `braintrace.nn.Linear`; only the
    forward product (and its JVP w.r.t. w, also an event product) is event-driven."""
    if not _EVENT_MM:
        import brainevent
        import braintrace
        from braintrace._op import dense  # the dense matmul's ETP rules (private names, braintrace 0.2.8)

        def impl(x, w, **_params):
            return brainevent.BinaryArray(x) @ w

        p = braintrace.register_primitive("bench_event_mm", impl, batched=True,
                                          trainable_invars_fn=lambda params: {"weight": 1}, x_invar_index=0)
        p.register_etp_rules(dt_to_t=dense._mm_dt_to_t, xy_to_dw=dense._mm_xy_to_dw,
                             init_drtrl=dense._mm_init_drtrl, init_pp=dense._mm_init_pp)
        _EVENT_MM.append(p)
    return _EVENT_MM[0]


def make_projection(kind: str, fan_in: int, fan_out: int, w):
    """dense: braintrace.nn.Linear (no bias). event: the same weight as a ParamState, multiplied
    through `event_matmul_primitive` (its input must be binary: spikes or Bernoulli inputs)."""
    import brainstate
    import braintrace

    if kind == "dense":
        return braintrace.nn.Linear(fan_in, fan_out, w_init=w, b_init=None)
    if kind == "csr":
        return braintrace.nn.SparseLinear(w, b_init=None)
    prim = event_matmul_primitive()

    class EventLinear(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = brainstate.ParamState({"weight": w})

        def update(self, x):
            return prim.bind(x, self.weight.value["weight"], has_bias=False, weight_fn=None, bias_fn=None)

    return EventLinear()


# ----------------------------------------------------------------------------- one configuration
def model_class(N: int, projection: str, seed: int):
    """The RecurrentLIF brainstate module (see the module docstring), its input and recurrent
    projections of kind `projection`."""
    import numpy as np
    import jax
    import jax.numpy as jnp
    import brainstate
    import braintools
    import brainunit as u
    import braintrace

    brainstate.environ.set(dt=DT * u.ms)
    rng = np.random.default_rng(seed)

    def normal(fan_in, fan_out, scale):
        return jnp.asarray(rng.standard_normal((fan_in, fan_out)) * scale / math.sqrt(fan_in), jnp.float32)

    spk_fun = braintools.surrogate.Sigmoid(alpha=SLOPE)
    a_mem = math.exp(-DT / TAU_MEM)
    a_syn = math.exp(-DT / TAU_SYN)

    class RecurrentLIF(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            if projection == "csr":
                self.w_in = make_projection("dense", I, N, normal(I, N, INPUT_SCALE))
                self.w_rec = make_projection("csr", N, N, csr_matrix(N, rng))
            else:
                self.w_in = make_projection(projection, I, N, normal(I, N, INPUT_SCALE))
                self.w_rec = make_projection(projection, N, N, normal(N, N, RECURRENT_SCALE))
            self.out = braintrace.nn.LeakyRateReadout(N, C, tau=TAU_OUT * u.ms, w_init=normal(N, C, READOUT_SCALE))

        def init_state(self, batch_size=None, **kwargs):
            shape = (N,) if batch_size is None else (batch_size, N)
            self.v = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))
            self.i = brainstate.HiddenState(jnp.zeros(shape, jnp.float32))

        def reset_state(self, batch_size=None, **kwargs):
            shape = (N,) if batch_size is None else (batch_size, N)
            self.v.value = jnp.zeros(shape, jnp.float32)
            self.i.value = jnp.zeros(shape, jnp.float32)

        def update(self, x):
            v = self.v.value
            s_last = spk_fun(v - 1.0)                          # (v - theta) / (theta - v_reset), theta = 1
            v_r = v - jax.lax.stop_gradient(s_last)            # soft reset, detached
            y = self.w_in(x) + self.w_rec(s_last)              # recurrent projection reads spikes of t-1
            i = a_syn * self.i.value + y                       # Expon synapse, AlignPost (state of h)
            v_new = a_mem * v_r + (1.0 - a_mem) * i            # exponential Euler, R = 1, v_rest = 0
            self.i.value = i
            self.v.value = v_new
            return self.out(spk_fun(v_new - 1.0))

    return RecurrentLIF


def csr_matrix(N: int, rng):
    """The recurrent weights as a brainevent.CSR over the pairs of PAIRS["file"] (sorted by (pre, post))."""
    import numpy as np
    import jax.numpy as jnp
    import brainevent

    with np.load(PAIRS["file"]) as z:
        pre, post = z["pre"].astype(np.int64), z["post"].astype(np.int64)
    order = np.lexsort((post, pre))
    pre, post = pre[order], post[order]
    data = rng.standard_normal(pre.size) * RECURRENT_SCALE / math.sqrt(max(pre.size / N, 1.0))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(pre, minlength=N))])
    return brainevent.CSR((jnp.asarray(data, jnp.float32), jnp.asarray(post, jnp.int32), jnp.asarray(indptr, jnp.int32)),
                          shape=(N, N))


def draw_sequence(key, T: int):
    """[T, B, I] Bernoulli(P_SPIKE) inputs and one label per sequence, broadcast to [T, B]."""
    import jax
    import jax.numpy as jnp

    kx, kl = jax.random.split(key)
    xs = jax.random.bernoulli(kx, P_SPIKE, (T, B, I)).astype(jnp.float32)
    label = jax.random.randint(kl, (B,), 0, C)
    return xs, jnp.broadcast_to(label, (T, B))


def make_train_sequence(model, T: int):
    """One jitted call per sequence: draw its inputs, reset, learner.etrace_grad over T steps
    (pp-prop), Adam update; returns the summed loss."""
    import jax
    import jax.numpy as jnp
    import brainstate
    import braintools
    import braintrace

    learner = braintrace.compile(model, braintrace.pp_prop, jnp.zeros((B, I), jnp.float32), batch_size=B,
                                 decay_or_rank=DECAY, verbose=int(os.environ.get("BT_VERBOSE", "0")))
    opt = braintools.optim.Adam(lr=LR)
    opt.register_trainable_weights(model.states(brainstate.ParamState))

    def step_loss(x_t, label):
        logp = jax.nn.log_softmax(learner(x_t), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, label[:, None], axis=-1)[:, 0])

    @brainstate.transform.jit
    def train_sequence(key):
        xs, labels = draw_sequence(key, T)
        brainstate.nn.reset_all_states(learner, batch_size=B)
        grads, losses = learner.etrace_grad(xs, labels, step_fn=step_loss, reduction='sum',
                                            loss_output='scalar', return_value=True)
        opt.update(grads)
        return losses

    return train_sequence


def firing_rate(model, key, T: int) -> float:
    """Mean fraction of hidden neurons spiking per step (v >= 1) over one fresh forward sequence."""
    import jax.numpy as jnp
    import brainstate

    @brainstate.transform.jit
    def rate(key):
        xs, _ = draw_sequence(key, T)
        brainstate.nn.reset_all_states(model, batch_size=B)

        def step(x):
            model(x)
            return jnp.mean((model.v.value >= 1.0).astype(jnp.float32))

        return jnp.mean(brainstate.transform.for_loop(step, xs))

    return float(rate(key))


def run_one(N: int, T: int, repeats: int, seed: int = 0, projection: str = "dense") -> dict:
    """Times `repeats` sequences after two untimed warm-ups; peak RSS is read before the
    firing-rate pass (whose extra jit is not part of training)."""
    import jax

    model = model_class(N, projection, seed)()
    train_sequence = make_train_sequence(model, T)
    keys = list(jax.random.split(jax.random.PRNGKey(seed), repeats + 3))
    t0 = time.perf_counter()
    loss0 = float(jax.block_until_ready(train_sequence(keys.pop())))  # warm-up 1: trace + XLA compile + one run
    # warm-up 2: with braintrace 0.2.6 / brainstate 0.5.4 the second call is also slow (~2 s, consistent with
    # one more trace/compile); every later call is fast
    jax.block_until_ready(train_sequence(keys.pop()))
    compile_s = time.perf_counter() - t0
    times, losses = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss = jax.block_until_ready(train_sequence(keys.pop()))
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    s = statistics.median(times)
    rss = peak_rss_mib()
    return {"N": N, "T": T, "projection": projection, "s_per_seq": s, "us_per_step": s / T * 1e6, "times": times,
            "repeats": repeats, "warmup_s": compile_s, "loss_first": loss0, "loss_last": losses[-1],
            "finite": all(math.isfinite(v) for v in [loss0] + losses), "peak_rss_mib": rss,
            "firing_rate": firing_rate(model, keys.pop(), T)}


def check_grad(N: int, T: int, seed: int = 0, projection: str = "dense") -> dict:
    """Sanity check of the wiring: the pp-prop gradient of one sequence vs the exact BPTT gradient of the
    same model, loss and data (cosine similarity and norm ratio per weight). Not used for timing."""
    import jax
    import jax.numpy as jnp
    import brainstate
    import braintrace

    xs, labels = draw_sequence(jax.random.PRNGKey(seed + 1), T)

    def ce(r, lab):
        logp = jax.nn.log_softmax(r, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, lab[:, None], axis=-1)[:, 0])

    model = model_class(N, projection, seed)()
    learner = braintrace.compile(model, braintrace.pp_prop, xs[0], batch_size=B, decay_or_rank=DECAY)
    weights = model.states(brainstate.ParamState)
    brainstate.nn.reset_all_states(learner, batch_size=B)
    g_pp = learner.etrace_grad(xs, labels, step_fn=lambda x, l: ce(learner(x), l), reduction='sum')

    brainstate.nn.reset_all_states(model, batch_size=B)

    def bptt_loss():
        rs = brainstate.transform.for_loop(lambda x: model(x), xs)
        return jnp.sum(jax.vmap(ce)(rs, labels))

    g_bp = brainstate.transform.grad(bptt_loss, weights)()
    out = {}
    for k in g_bp:
        a = jnp.ravel(jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(g_pp[k])]))
        b = jnp.ravel(jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(g_bp[k])]))
        out[".".join(map(str, k))] = {"cosine": float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b) + 1e-30)),
                                      "norm_ratio_pp_over_bptt": float(jnp.linalg.norm(a) / (jnp.linalg.norm(b) + 1e-30))}
    return {"N": N, "T": T, "projection": projection, "check": out}


# ----------------------------------------------------------------------------- driver
def default_repeats(T: int) -> int:
    return 10 if T <= 100 else 3


def one_cmd(N: int, T: int, projection: str, repeats: int, numba_parallel: int, python: str = sys.executable,
            pairs: str | None = None) -> list[str]:
    """The command line of one measuring child (`--one`), run by `python` (the side environment's)."""
    return [python, os.path.abspath(__file__), "--one", str(N), str(T), "--projection", projection,
            "--repeats", str(repeats), "--numba-parallel", str(numba_parallel)] + (["--pairs", pairs] if pairs else [])


def child_env(jax_threads: int) -> dict:
    env = dict(os.environ)
    if jax_threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def fmt_result(r: dict) -> str:
    head = f"{r.get('projection', '?'):<6} N={r['N']:5d} T={r['T']:5d}  "
    if r.get("status") != "ok":
        return head + r.get("status", "?")
    return (head + f"{r['s_per_seq']:.4f} s/seq  {r['us_per_step']:10.1f} us/step  "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB  warm-up {r['warmup_s']:.1f} s  "
            f"loss {r['loss_first']:.3f}->{r['loss_last']:.3f}  firing {100 * r['firing_rate']:.2f} %")


def set_numba_parallel(on: int) -> None:
    import brainevent

    brainevent.config.set_numba_parallel(bool(on), num_threads=os.cpu_count() if on else None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="128,512")
    ap.add_argument("--t", default="100,1000")
    ap.add_argument("--projection", default="dense",
                    help="comma-separated, of: dense (braintrace.nn.Linear), event (brainevent binary-event "
                         "product inside an ETP primitive); see the module docstring")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed sequences after the warm-up (median); default 10 for T <= 100, else 3")
    ap.add_argument("--out", help="write all results as JSON here")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per-config seconds")
    ap.add_argument("--jax-threads", type=int, default=0, choices=(0, 1),
                    help="1: XLA_FLAGS=--xla_cpu_multi_thread_eigen=false in the children (as bench_train.py)")
    ap.add_argument("--numba-parallel", type=int, default=1, choices=(0, 1),
                    help="event projection: brainevent's numba kernels parallel over the batch (1, on all cores) "
                         "or serial (0)")
    ap.add_argument("--check", nargs=2, type=int, metavar=("N", "T"),
                    help="print the cosine between braintrace's pp-prop gradient and BPTT's for one sequence, then exit")
    ap.add_argument("--pairs", help="csr: an .npz with int arrays pre, post (the recurrent projection's pairs)")
    ap.add_argument("--one", nargs=2, type=int, metavar=("N", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    PAIRS["file"] = args.pairs
    projections = [p.strip() for p in args.projection.split(",") if p.strip()]
    if any(p not in PROJECTIONS for p in projections):
        ap.error(f"--projection: expected a comma-separated subset of {list(PROJECTIONS)}")
    if "csr" in projections and not args.pairs:
        ap.error("--projection csr needs --pairs FILE.npz (benchmarks/bench_sparse.py writes one)")
    import_stack()
    if "event" in projections:  # (the event projection needs braintrace >= 0.2.8's register_primitive)
        set_numba_parallel(args.numba_parallel)

    if args.check:
        print(json.dumps(check_grad(args.check[0], args.check[1], projection=projections[0]), indent=1))
        return 0
    if args.one:
        res = run_one(args.one[0], args.one[1], args.repeats or default_repeats(args.one[1]),
                      projection=projections[0])
        res.update(status="ok", numba_parallel=args.numba_parallel, versions=versions())
        print(MARK + json.dumps(res), flush=True)
        return 0

    from bench_train import run_child  # stdlib-only at import: works from the side environment

    print(", ".join(f"{k} {v}" for k, v in versions().items())
          + f", jax threads: {'1' if args.jax_threads == 1 else 'default'}, cpus: {os.cpu_count()}")
    results = []
    for N in [int(v) for v in args.n.split(",")]:
        for T in [int(v) for v in args.t.split(",")]:
            for proj in projections:
                cmd = one_cmd(N, T, proj, args.repeats or default_repeats(T), args.numba_parallel, pairs=args.pairs)
                r = run_child(cmd, child_env(args.jax_threads), args.timeout, {"N": N, "T": T, "projection": proj})
                results.append(r)
                print(fmt_result(r) + (f"\n{r['stderr'][-3000:]}" if r.get("status") != "ok" else ""), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r.get("status") == "ok" for r in results) else 1


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("braintrace", "brainstate", "brainevent", "numba", "jax"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    sys.exit(main())

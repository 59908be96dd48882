#!/usr/bin/env python
"""Train-step time and peak memory of the reference library `braintrace` (pp-prop) on btc's benchmark network.

This script is NOT part of btc and braintrace is NOT a btc dependency. Run it from a side virtual
environment (see benchmarks/BRAINTRACE.md):

    python3 -m venv /tmp/venv/bt && /tmp/venv/bt/bin/pip install "braintrace==0.2.6"
    /tmp/venv/bt/bin/python benchmarks/bench_braintrace.py --n 128,512 --t 100,1000

Network (as close as is reasonable to btc.frontend.zoo.recurrent_lif(inputs=100, hidden=N, classes=10)):
100 Bernoulli(0.1) inputs -> N LIF neurons (tau 10 ms, threshold 1, rest = reset = 0, soft reset with the
reset detached, dt 1 ms, exponential Euler) with exponential current synapses (tau_syn 5 ms; the current is
a state of the postsynaptic neuron, AlignPost) fed by input weights and recurrent weights (the recurrent
projection reads the spikes of step t-1) -> 10-way leaky rate readout (tau 10 ms, braintrace.nn.LeakyRateReadout)
-> per-step softmax cross-entropy against one label per sequence, summed over steps; batch 32; Adam lr 1e-3;
sigmoid surrogate with slope 4. Trained online with braintrace.pp_prop (decay 0.9), driven step by step by
learner.etrace_grad inside one brainstate.transform.jit per sequence (optimizer update included).

Timing: two untimed warm-up sequences (the second call is also slow), then the median of `--repeats` timed
sequences (default 10 for T <= 100, else 3), each including the Adam update and the on-device draw of its
Bernoulli inputs. Each (N, T) runs in a fresh process (`--one N T`) so that its peak RSS (getrusage ru_maxrss) is its own.
Exit status: 0 on success, 2 when braintrace (or its stack) cannot be imported, 1 when a config fails.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
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
              f"Install it in a side environment:  python3 -m venv /tmp/venv/bt && "
              f"/tmp/venv/bt/bin/pip install 'braintrace==0.2.6'\n"
              f"then run:  /tmp/venv/bt/bin/python benchmarks/bench_braintrace.py", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------------------- one configuration
def run_one(N: int, T: int, repeats: int, seed: int = 0, check: bool = False) -> dict:
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
            self.w_in = braintrace.nn.Linear(I, N, w_init=normal(I, N, INPUT_SCALE), b_init=None)
            self.w_rec = braintrace.nn.Linear(N, N, w_init=normal(N, N, RECURRENT_SCALE), b_init=None)
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

    if check:
        return check_grad(RecurrentLIF, N, T, seed)
    model = RecurrentLIF()
    x0 = jnp.zeros((B, I), jnp.float32)
    learner = braintrace.compile(model, braintrace.pp_prop, x0, batch_size=B, decay_or_rank=DECAY,
                               verbose=int(os.environ.get("BT_VERBOSE", "0")))
    weights = model.states(brainstate.ParamState)
    opt = braintools.optim.Adam(lr=LR)
    opt.register_trainable_weights(weights)

    def step_loss(x_t, label):
        r = learner(x_t)
        logp = jax.nn.log_softmax(r, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, label[:, None], axis=-1)[:, 0])

    @brainstate.transform.jit
    def train_sequence(key):
        kx, kl = jax.random.split(key)
        xs = jax.random.bernoulli(kx, P_SPIKE, (T, B, I)).astype(jnp.float32)
        label = jax.random.randint(kl, (B,), 0, C)
        labels = jnp.broadcast_to(label, (T, B))
        brainstate.nn.reset_all_states(learner, batch_size=B)
        grads, losses = learner.etrace_grad(xs, labels, step_fn=step_loss, reduction='sum',
                                            loss_output='scalar', return_value=True)
        opt.update(grads)
        return losses

    key = jax.random.PRNGKey(seed)
    t0 = time.perf_counter()
    key, k = jax.random.split(key)
    loss0 = float(jax.block_until_ready(train_sequence(k)))  # warm-up 1: trace + XLA compile + one run
    # warm-up 2: with braintrace 0.2.6 / brainstate 0.5.4 the second call is also slow (~2 s, consistent with
    # one more trace/compile); every later call is fast
    key, k = jax.random.split(key)
    jax.block_until_ready(train_sequence(k))
    compile_s = time.perf_counter() - t0
    times, losses = [], []
    for _ in range(repeats):
        key, k = jax.random.split(key)
        t0 = time.perf_counter()
        loss = jax.block_until_ready(train_sequence(k))
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    s = statistics.median(times)
    return {"N": N, "T": T, "s_per_seq": s, "us_per_step": s / T * 1e6, "times": times, "repeats": repeats,
            "warmup_s": compile_s, "loss_first": loss0, "loss_last": losses[-1],
            "finite": all(math.isfinite(v) for v in [loss0] + losses), "peak_rss_mib": peak_rss_mib()}


def check_grad(model_cls, N: int, T: int, seed: int) -> dict:
    """Sanity check of the wiring: the pp-prop gradient of one sequence vs the exact BPTT gradient of the
    same model, loss and data (cosine similarity and norm ratio per weight). Not used for timing."""
    import jax
    import jax.numpy as jnp
    import brainstate
    import braintrace

    key = jax.random.PRNGKey(seed + 1)
    kx, kl = jax.random.split(key)
    xs = jax.random.bernoulli(kx, P_SPIKE, (T, B, I)).astype(jnp.float32)
    label = jax.random.randint(kl, (B,), 0, C)
    labels = jnp.broadcast_to(label, (T, B))

    def ce(r, lab):
        logp = jax.nn.log_softmax(r, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, lab[:, None], axis=-1)[:, 0])

    model = model_cls()
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
    return {"N": N, "T": T, "check": out}


# ----------------------------------------------------------------------------- driver
def default_repeats(T: int) -> int:
    return 10 if T <= 100 else 3


BTC_US = {(128, 100): 81.5, (128, 1000): 74.0, (512, 100): 646.9, (512, 1000): 646.1, (2048, 100): 11748.7}
BTC_RSS = {128: 48, 512: 76}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="128,512")
    ap.add_argument("--t", default="100,1000")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed sequences after the warm-up (median); default 10 for T <= 100, else 3")
    ap.add_argument("--out", help="write all results as JSON here")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per-config seconds")
    ap.add_argument("--jax-threads", type=int, default=0, choices=(0, 1),
                    help="1: XLA_FLAGS=--xla_cpu_multi_thread_eigen=false in the children (as bench_train.py)")
    ap.add_argument("--check", nargs=2, type=int, metavar=("N", "T"),
                    help="print the cosine between braintrace's pp-prop gradient and BPTT's for one sequence, then exit")
    ap.add_argument("--one", nargs=2, type=int, metavar=("N", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    import_stack()

    if args.check:
        print(json.dumps(run_one(args.check[0], args.check[1], 0, check=True), indent=1))
        return 0
    if args.one:
        res = run_one(args.one[0], args.one[1], args.repeats or default_repeats(args.one[1]))
        print(MARK + json.dumps(res), flush=True)
        return 0

    import braintrace, brainstate, jax
    print(f"braintrace {braintrace.__version__}, brainstate {brainstate.__version__}, jax {jax.__version__}, "
          f"jax threads: {'1' if args.jax_threads == 1 else 'default'}, cpus: {os.cpu_count()}")
    results, failed = [], False
    for N in [int(v) for v in args.n.split(",")]:
        for T in [int(v) for v in args.t.split(",")]:
            cmd = [sys.executable, __file__, "--one", str(N), str(T), "--repeats",
                   str(args.repeats or default_repeats(T))]
            env = dict(os.environ)
            if args.jax_threads == 1:
                env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
            except subprocess.TimeoutExpired:
                print(f"N={N} T={T}: timed out after {args.timeout:.0f} s", flush=True)
                failed = True
                continue
            line = next((l for l in p.stdout.splitlines() if l.startswith(MARK)), None)
            if p.returncode != 0 or line is None:
                print(f"N={N} T={T}: failed (rc {p.returncode})\n{p.stderr[-3000:]}", flush=True)
                failed = True
                continue
            r = json.loads(line[len(MARK):])
            btc = BTC_US.get((N, T))
            r["btc_us_per_step"] = btc
            r["ratio_btc_faster"] = r["us_per_step"] / btc if btc else None
            results.append(r)
            print(f"N={N:5d} T={T:5d}  {r['s_per_seq']:.4f} s/seq  {r['us_per_step']:10.1f} us/step  "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB  warm-up {r['warmup_s']:.1f} s  "
                  f"loss {r['loss_first']:.3f}->{r['loss_last']:.3f}"
                  + (f"  btc {btc} us/step, btc/braintrace speed x{r['ratio_btc_faster']:.2f}" if btc else ""),
                  flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""A loaded btc artifact: validated inputs in, chunks through the compiled time loop, numpy out.

Imports only numpy, IREE's runtime, btc.errors and btc.algorithm: no compiler, no JAX. What it knows of
the module (functions, inputs, parameters) comes from the manifest's `abi` record.
"""
from __future__ import annotations

import io
from typing import Iterable, Iterator

import numpy as np

from btc.algorithm import Algorithm
from btc.errors import BtcError
from btc.runtime.artifact import MANIFEST_FORMAT, REQUIRED_FILES, abi_hash, applied_weights, read_artifact
from btc.runtime.checkpoint import read_checkpoint, same_layout, save_checkpoint
from btc.runtime.checks import check_lr, check_spikes, checked_array
from btc.runtime.device import device_config
from btc.runtime.tiers import ChunkTiers
from btc.status import UPDATE_BAD_GRADIENTS, UPDATE_BAD_PARAMETERS
from btc.runtime.parameters import archive_entries, check_archive_path, parameter_module, write_archive

__all__ = ["Model", "load", "read_artifact", "REQUIRED_FILES"]



def load(path: str, hal_driver: str | None = None) -> "Model":
    """Load an artifact of `btc compile` (manifest, hashes checked); `hal_driver` overrides its IREE driver."""
    return Model(path, hal_driver)


class Model:
    def __init__(self, path: str, hal_driver: str | None = None):
        import iree.runtime as rt

        self.manifest, blobs = read_artifact(path)
        self.path = path
        # the module's ABI, recorded by the compiler's lowering: functions, inputs, parameters, globals
        self.abi = abi = self.manifest["abi"]
        self.batch, self.chunk = abi["batch"], abi["chunk"]
        self.algorithm = Algorithm.parse(abi["algorithm"])
        self.functions = {f["name"]: f for f in abi["functions"]}
        self.inputs = {i["name"]: i for i in abi["inputs"]}
        # inputs whose non-zeros event-driven work counts as ones: they must hold 0/1
        self._spike_inputs = {p["pre"] for p in abi["projections"] if p["pre"] in self.inputs
                              and {"event", "sparse-event"} & {p.get("propagation"), p.get("weight_gradient")}}
        self.param_names = [p["name"] for p in abi["params"]]
        self.num_classes = abi["num_classes"]
        self.update_every = abi["update_every"] or None  # continual: the module updates every k steps itself
        driver = hal_driver or self.manifest["hal_driver"]
        if not isinstance(driver, str) or driver not in rt.query_available_drivers():
            raise BtcError(f"artifact {path!r} was compiled for target {self.manifest['target']!r}: IREE runtime driver "
                           f"{driver!r} is not available here; available: {sorted(rt.query_available_drivers())}")
        try:  # no such device here, or code for another CPU: IREE says so in its own words
            self._config = device_config(driver)
            self._ctx = rt.SystemContext(config=self._config)
            # the module's globals start from the archive (the bytes that were hashed)
            self._archive = blobs["params.irpa"]  # IREE reads it in place: kept alive with the context
            self._ctx.add_vm_module(parameter_module(self._ctx.instance, self._archive, abi["parameter_scope"]))
            self._ctx.add_vm_module(rt.VmModule.copy_buffer(self._ctx.instance, blobs["model.vmfb"]))
        except (RuntimeError, ValueError) as e:
            raise BtcError(f"artifact {path!r} was compiled for target {self.manifest['target']!r} (IREE driver "
                           f"{driver!r}) and cannot run here: {str(e).splitlines()[0][:300]}") from None
        self._fns = self._ctx.modules.btc_model
        with np.load(io.BytesIO(blobs["connectivity.npz"])) as z:
            # sparse projection -> (pre index, post index) of its weights, in the order of "<name>.W"
            self.connectivity = {p["name"]: (z[f"{p['name']}.pre"], z[f"{p['name']}.post"])
                                 for p in abi["projections"] if p["connectivity"]["layout"] != "dense"}
            # a convolution: the kernel entry each pair applies
            self.ties = {p["name"]: z[f"{p['name']}.tie"] for p in abi["projections"] if f"{p['name']}.tie" in z}
        self._padded = False  # states, traces, gradients and moments start initial, from params.irpa
        self.tiers = ChunkTiers(self.functions)  # which variant of train_chunk takes a chunk

    def __repr__(self) -> str:
        groups = ", ".join(f"{g['name']}: {g['model']}[{g['size']}]" for g in self.abi["groups"])
        inputs = ", ".join(f"{n}[{i['size']}]" for n, i in self.inputs.items())
        n = sum(int(np.prod(p["shape"])) for p in self.abi["params"])
        return (f"<btc Model {self.path!r}: {self.algorithm.value}, {self.manifest['target']}, batch {self.batch}, "
                f"chunk {self.chunk}; inputs {inputs}; groups {groups}; {n:,} parameters; {self.abi['loss']} loss>")

    # ---- calls into the module
    def _call_raw(self, name: str, *args) -> tuple:
        """Results as device arrays (no copy): BPTT keeps its tape this way between calls."""
        out = self._fns[name](*args)
        if out is None:
            return ()
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)

    def _call(self, name: str, *args):
        out = self._fns[name](*args)
        if out is None:
            return ()
        outs = out if isinstance(out, (list, tuple)) else (out,)
        # copy: host views of device buffers may be reused by the next call
        return tuple(np.array(o.to_host() if hasattr(o, "to_host") else o, copy=True) for o in outs)

    def reset_state(self) -> None:
        """Zero every neuron state and trace (parameters, gradients and optimizer state are kept)."""
        self._call("reset_state")
        self._padded = False

    def _continue(self, reset: bool) -> None:
        if reset:
            self.reset_state()
        elif self._padded:
            raise BtcError("the previous sequence ended in a zero-padded chunk (its length was not a multiple "
                           f"of the chunk, {self.chunk} steps), so the state it left is not its true final state; "
                           "pass reset=True, or continue only after sequences whose length is a multiple of the chunk")

    def zero_grads(self) -> None:
        self._call("zero_grads")

    def reset_optimizer(self) -> None:
        self._call("reset_optimizer")

    @property
    def params(self) -> dict[str, np.ndarray]:
        return dict(zip(self.param_names, self._call("get_params")))

    @property
    def weights(self) -> dict:
        """The weights each projection applies, projection -> [pre, post]: sign*|W| under Dale's law
        (the stored parameter is W), else W itself; a sparse projection's as a scipy.sparse CSR array (a
        convolution's kernel read at every pair)."""
        return applied_weights(self.abi, self.params, self.connectivity, self.ties)

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients accumulated since the last update (sum over the sequence, mean over the batch)."""
        return dict(zip(self.param_names, self._call("get_grads")))

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        sigs = {s["name"]: s for s in self.functions["set_params"]["inputs"]}
        unknown = sorted(set(params) - set(sigs))
        if unknown:
            raise BtcError(f"unknown parameters {unknown}; this model has {self.param_names}")
        missing = [n for n in self.param_names if n not in params]
        if missing:
            raise BtcError(f"set_params needs every parameter; missing {missing}")
        # fresh copies: two parameters must never share one buffer in the module
        arrays = [np.array(checked_array(params[n], tuple(sigs[n]["shape"]), np.float32, f"parameter {n}"))
                  for n in self.param_names]
        self._call("set_params", *arrays)

    def apply_update(self, lr: float) -> None:
        """One optimizer step with the accumulated gradients, then zero them. Refused, with the
        gradients zeroed, if a gradient is NaN or infinite; undone if it makes a parameter so."""
        check_lr(lr)
        # the module checks both on the device and changes nothing but the gradients (zeroed) if either fails
        status = float(self._call("apply_update", np.asarray(lr, np.float32))[0])
        if status == UPDATE_BAD_GRADIENTS:
            raise BtcError("the gradients are NaN or infinite: the update was not applied and the gradients were "
                           "zeroed; training diverged (lower the learning rate, check the inputs)")
        if status == UPDATE_BAD_PARAMETERS:
            self.reset_optimizer()
            raise BtcError(f"the update with lr={lr} made parameters NaN or infinite; the parameters before it are "
                           "restored, the gradients zeroed and the optimizer state reset (lower the learning rate)")

    def _guarded(self, run, what: str):
        """Run `run`; if it makes a parameter non-finite, restore them, reset the optimizer and raise."""
        before = self.params
        out = run()
        bad = [n for n, p in self.params.items() if not np.all(np.isfinite(p))]
        if bad:
            self.set_params(before)
            self.zero_grads()
            self.reset_optimizer()
            raise BtcError(f"{what} made the parameters {bad} NaN or infinite; the parameters before it are "
                           "restored, the gradients zeroed and the optimizer state reset (lower the learning rate)")
        return out

    # ---- validation
    def _inputs(self, x) -> dict[str, np.ndarray]:
        names = list(self.inputs)
        if not isinstance(x, dict):
            if len(names) != 1:
                raise BtcError(f"this model has inputs {names}: pass x as a dict name -> [T, B, size]")
            x = {names[0]: x}
        unknown = sorted(set(x) - set(names))
        if unknown or set(x) != set(names):
            raise BtcError(f"inputs must be exactly {names}, got {sorted(x)}")
        out = {}
        T = None
        for n in names:
            a = np.asarray(x[n])
            size = self.inputs[n]["size"]
            if a.ndim != 3 or a.shape[1:] != (self.batch, size):
                raise BtcError(f"input {n!r}: expected shape [T, {self.batch}, {size}] "
                               f"(time, batch, channels), got {list(a.shape)}")
            if T is not None and a.shape[0] != T:
                raise BtcError(f"inputs have different lengths: {T} and {a.shape[0]} steps")
            T = a.shape[0]
            if a.dtype.kind not in "biuf":
                raise BtcError(f"input {n!r}: expected numbers, got dtype {a.dtype}")
            if n in self._spike_inputs and a.dtype.kind != "b":
                check_spikes(n, a)
            out[n] = a  # converted to float32 one chunk at a time: a long bool/uint8 spike train stays small
        if T == 0:
            raise BtcError("the sequence has no time steps")
        return out

    def _targets(self, target, T: int) -> np.ndarray:
        C = self.num_classes
        t = np.asarray(target)
        if self.abi["loss"] == "cross_entropy":
            if t.shape == (self.batch,):
                t = np.broadcast_to(t, (T, self.batch))
            if t.shape != (T, self.batch) or t.dtype.kind not in "iu":
                raise BtcError(f"target: expected integer class labels of shape [{self.batch}] or "
                               f"[{T}, {self.batch}], got {t.dtype} {list(t.shape)}")
            if t.size and (t.min() < 0 or t.max() >= C):
                raise BtcError(f"target: class labels must be in [0, {C}), got range [{t.min()}, {t.max()}]")
            return np.ascontiguousarray(t, np.int32)
        if t.shape == (self.batch, C):
            t = np.broadcast_to(t, (T, self.batch, C))
        return checked_array(t, (T, self.batch, C), np.float32, "target")

    def _mask(self, mask, T: int) -> np.ndarray:
        if mask is None:
            return np.ones(T, np.float32)
        mask = checked_array(mask, (T,), np.float32, "mask")
        if np.any(mask < 0):
            raise BtcError(f"mask: weights must be >= 0 (a negative weight ascends the loss), got {float(mask.min())} "
                           f"at step {int(np.argmin(mask))}")
        return mask

    # ---- sequences
    def _chunks(self, x: dict, *extra) -> Iterator[tuple[int, list]]:
        """Cut [T, ...] arrays into K-step chunks; the last is zero-padded (mask 0: no loss, no credit)."""
        T = next(iter(x.values())).shape[0]
        K = self.chunk
        for start in range(0, T, K):
            n = min(K, T - start)
            parts = self._step_inputs(x, slice(start, start + n)) + [a[start:start + n] for a in extra]
            if n < K:
                parts = [np.concatenate([p, np.zeros((K - n,) + p.shape[1:], p.dtype)]) for p in parts]
            yield n, [np.ascontiguousarray(p) for p in parts]

    def _step_inputs(self, x: dict, index) -> list[np.ndarray]:
        """Inputs at a step or slice of steps, as float32, checked for NaN/inf."""
        return [checked_array(a[index], a[index].shape, np.float32, f"input {n!r}") for n, a in x.items()]

    def train_sequence(self, x, target, mask=None, lr: float | None = None, reset: bool = True) -> dict:
        """Train on a whole sequence of any length (states reset first unless reset=False).

        pp-prop runs it through train_chunk K steps at a time; BPTT runs it forward one step per call,
        keeping each step's tape entries, then backward. Gradients accumulate over the sequence; with
        `lr` an optimizer step follows. Returns the summed loss and `readout_sum` = sum_t mask_t * r_t [B, C].
        """
        check_lr(lr)
        self._check_schedule(lr)
        x = self._inputs(x)
        T = next(iter(x.values())).shape[0]
        target, mask = self._targets(target, T), self._mask(mask, T)
        for _ in self._chunks(x):  # every step checked before the first call adds to the gradients
            pass
        self._continue(reset)
        if self.algorithm is Algorithm.BPTT:
            loss, rsum = self._bptt(x, target, mask)
        else:
            loss, rsum = 0.0, np.zeros((self.batch, self.num_classes), np.float32)
            for n, parts in self._chunks(x, target, mask):
                call = lambda: self._train_chunk(parts + self._schedule_args(lr, n))  # noqa: E731
                # with in-module updates a chunk changes the parameters: undone if they diverge
                chunk_loss, chunk_rsum = self._guarded(call, "an in-module update") if self.update_every else call()
                loss += float(chunk_loss)
                rsum += chunk_rsum
                self._padded = n < self.chunk
        if not np.isfinite(loss):
            self.zero_grads()
            raise BtcError(f"the loss is {loss}: training diverged; the gradients of this sequence were zeroed "
                           "(lower the learning rate, check the inputs)")
        if lr is not None and not self.update_every:
            self.apply_update(lr)
        return {"loss": loss, "readout_sum": rsum}

    def _train_chunk(self, args: list) -> tuple:
        """(loss, readout sum) of one chunk, by the fastest variant of train_chunk that can take it."""
        return self.tiers.run(self._call, args)

    def _check_schedule(self, lr) -> None:
        if self.update_every and lr is None:
            raise BtcError(f"this artifact updates its parameters inside the module every {self.update_every} "
                           "time steps (update_every); pass lr=")

    def _schedule_args(self, lr, valid: int) -> list:
        """Continual artifacts take the learning rate and the chunk's number of unpadded steps."""
        if not self.update_every:
            return []
        return [np.asarray(lr, np.float32), np.asarray(valid, np.int32)]

    def _bptt(self, x: dict, target: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
        T = target.shape[0]
        loss, rsum, tape = 0.0, np.zeros((self.batch, self.num_classes), np.float32), []
        for t in range(T):
            out = self._call_raw("bptt_forward_step", *self._step_inputs(x, t), target[t], mask[t])
            loss += float(out[0].to_host())
            rsum += mask[t] * np.asarray(out[1].to_host())
            tape.append(out[2:])
        self._call("bptt_begin_backward")
        for t in reversed(range(T)):
            self._call_raw("bptt_backward_step", *self._step_inputs(x, t), *tape[t])
            tape[t] = None  # free as the sweep goes
        return loss, rsum

    def train_stream(self, chunks: Iterable[tuple], lr: float | None = None) -> dict:
        """Train on a stream of (x, target, mask) chunks of exactly `chunk` steps each, without ever
        holding the whole sequence: memory does not depend on its length."""
        if self.algorithm is Algorithm.BPTT:
            raise BtcError("train_stream needs an online algorithm (pp-prop); BPTT must see the whole sequence")
        check_lr(lr)
        self._check_schedule(lr)
        self.reset_state()
        loss, steps = 0.0, 0
        for n, item in enumerate(chunks):
            if not isinstance(item, (tuple, list)) or len(item) != 3:
                raise BtcError(f"train_stream: chunk {n} must be a tuple (x, target, mask) (mask may be None), got "
                               f"{type(item).__name__}" + (f" of {len(item)}" if isinstance(item, (tuple, list)) else ""))
            x, target, mask = item
            x = self._inputs(x)
            T = next(iter(x.values())).shape[0]
            if T != self.chunk:
                raise BtcError(f"train_stream: every chunk must have {self.chunk} steps, got {T}")
            parts = self._step_inputs(x, slice(None)) + [self._targets(target, T), self._mask(mask, T)]
            loss += float(self._train_chunk(parts + self._schedule_args(lr, T))[0])
            steps += T
        if steps == 0:
            raise BtcError("train_stream got no chunks")
        if lr is not None and not self.update_every:
            self.apply_update(lr)
        return {"loss": loss, "steps": steps}

    def infer_sequence(self, x, reset: bool = True, record: bool = False) -> dict:
        """Forward only: {"readout": [T, B, C]}. With record=True also every group's spikes
        (spikes.<group>) and states (state.<group>.<state>), [T, B, N] each, one step per call."""
        x = self._inputs(x)
        self._continue(reset)
        T = next(iter(x.values())).shape[0]
        names = [o["name"] for o in self.functions["record_step"]["outputs"]]
        # whole chunks run in the module's loop; the rest, and everything when recording, step by step
        # (a zero-padded chunk would run the state past the sequence's end)
        whole = 0 if record else T - T % self.chunk
        readouts = [self._call("infer_chunk", *parts)[0] for _, parts in self._chunks(
            {n: a[:whole] for n, a in x.items()})] if whole else []
        steps = [self._call("record_step", *self._step_inputs(x, t)) for t in range(whole, T)]
        if not record:
            if steps:
                readouts.append(np.stack([s[0] for s in steps]))
            return {"readout": np.concatenate(readouts)}
        return {name: np.stack([s[i] for s in steps]) for i, name in enumerate(names)}

    # ---- checkpoints (btc.runtime.checkpoint)
    def save_checkpoint(self, path: str) -> None:
        """Parameters and optimizer state, atomically; refused if non-finite, inside an artifact or over a non-checkpoint."""
        save_checkpoint(self.params, self.manifest["content_hash"], path, self.manifest.get("model_hash", ""),
                        self.optimizer_state)

    def load_checkpoint(self, path: str, other_model: bool = False) -> None:
        """Parameters and optimizer state from a checkpoint of this model (any artifact of it); another model's
        parameters only with `other_model=True`."""
        params, saved_by, model, optimizer = read_checkpoint(path)
        mine = self.manifest.get("model_hash", "")
        same = model == mine if model and mine else saved_by == self.manifest["content_hash"]
        if not same and not other_model:
            raise BtcError(f"checkpoint {path!r} holds the parameters of another model (the network, its dynamics "
                           "or its connectivity differ from this artifact's); pass other_model=True to load it anyway")
        self.set_params(params)
        self.zero_grads()  # a checkpoint holds no gradients: a new accumulation (and update interval) starts
        if "reset_update_interval" in self.functions:
            self._call("reset_update_interval")
        state = self.optimizer_state  # restored if saved by this model's optimizer, else started afresh
        if state is not None and same and same_layout(optimizer, state):
            self.set_optimizer_state(optimizer)
        elif state is not None:
            self.reset_optimizer()

    def set_optimizer_state(self, state: dict[str, np.ndarray]) -> None:
        self._call("set_optimizer", *[np.asarray(state[k], np.float32) for k in self.optimizer_state])

    def grad_sums(self) -> list[np.ndarray]:
        """The gradient accumulators as the module holds them (by the applied weights; `grads` applies Dale's law)."""
        return list(self._call("get_grad_sums"))

    def set_grad_sums(self, sums: list[np.ndarray]) -> None:
        self._call("set_grad_sums", *[np.asarray(s, np.float32) for s in sums])

    def save_parameters(self, path: str) -> None:
        """The parameters and optimizer state as an IREE parameter archive (.irpa; states, traces and gradients
        initial): `iree-run-module --parameters=model=PATH` starts this artifact's module from them."""
        layout = self.abi["layout"]
        check_archive_path(path)
        write_archive(path, layout, archive_entries(layout, self.params, self.optimizer_state))

    @property
    def optimizer_state(self) -> dict[str, np.ndarray] | None:
        """The optimizer's state (Adam moments, step count); None if the artifact predates it."""
        if "get_optimizer" not in self.functions:
            return None
        return dict(zip([o["name"] for o in self.functions["get_optimizer"]["outputs"]], self._call("get_optimizer")))

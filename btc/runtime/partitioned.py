"""Online training of a network cut by neuron across MPI ranks (btc.partitioned compiles it).

Every rank loads its own artifact (`rank<r>/`) and sees the whole input. Each time step:
1. `peek_step` gives this rank's spikes and its part of the readout, storing nothing;
2. the ranks exchange the spikes as event lists (one int32 `b * ghosts + position` per spike, sent only
   to the ranks that hold a ghost of that neuron) and sum their readouts;
3. `train_chunk` takes the step (one step per call) with the other ranks' readout added to its own, so
   the loss, its gradient and the learning signal are the whole network's;
4. the received events are next step's ghost inputs.
pp-prop's traces and gradients are local to a neuron and its incoming weights, so nothing else crosses.
After a sequence every rank updates its own parameters; `params` and `grads` join them into the whole
network's. The forward step runs twice (peek, then train): the price of exchanging inside a step.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from btc.errors import BtcError
from btc.runtime.checkpoint import read_checkpoint, same_layout, save_checkpoint
from btc.runtime.checks import check_lr
from btc.runtime.model import load
from btc.runtime.parallel import _mpi, together

__all__ = ["PartitionPlan", "Partitioned"]

PLAN_FILE = "partition.npz"


class PartitionPlan:
    """Who owns what: each neuron's rank, each rank's ghosts and each rank parameter's cut of the whole."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise BtcError(f"{path} does not exist: a partitioned build (btc.partitioned.compile_partitioned) "
                           f"holds {PLAN_FILE} beside its rank<r>/ artifacts")
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
        self.ranks, self.inputs, self.shapes = meta["ranks"], meta["inputs"], meta["shapes"]
        self.model_hash, self.abi = meta["model_hash"], meta["abi"]  # the whole network's
        # the whole network's sparse projections: (pre index, post index) of each weight
        self.connectivity = {p["name"]: (arrays[f"conn.{p['name']}.pre"], arrays[f"conn.{p['name']}.post"])
                             for p in self.abi["projections"] if f"conn.{p['name']}.pre" in arrays}
        with open(path, "rb") as f:
            self.content_hash = hashlib.sha256(f.read()).hexdigest()
        self.owner = {k[len("owner."):]: v for k, v in arrays.items() if k.startswith("owner.")}
        self.ghosts = [{i: (g, arrays[f"ghost.{r}.{i}"]) for i, g in meta["ghosts"][r].items()}
                       for r in range(self.ranks)]
        self.cuts = [{n: (whole, arrays[f"param.{r}.{n}"]) for n, whole in meta["params"][r].items()}
                     for r in range(self.ranks)]

    def split(self, params: dict, rank: int) -> dict:
        """The whole network's parameters -> rank `rank`'s."""
        return {n: np.asarray(params[whole], np.float32).ravel()[k] for n, (whole, k) in self.cuts[rank].items()}

    def join(self, per_rank: list[dict]) -> dict:
        """Each rank's parameters (or gradients) -> the whole network's."""
        out = {n: np.zeros(int(np.prod(s)), np.float32) for n, s in self.shapes.items()}
        for cut, values in zip(self.cuts, per_rank):
            for n, (whole, k) in cut.items():
                out[whole][k] = np.asarray(values[n]).ravel()
        return {n: a.reshape(self.shapes[n]) for n, a in out.items()}

    def join_state(self, per_rank: list[dict]) -> dict:
        """Each rank's optimizer state -> the whole network's: a parameter's moments (`<prefix>.<param>`)
        are cut like the parameter; the rest (the step count) is the same everywhere, rank 0's is kept."""
        out = {}
        for r, (cut, state) in enumerate(zip(self.cuts, per_rank)):
            for key, value in state.items():
                prefix, _, name = key.partition(".")
                if name in cut:
                    whole, k = cut[name]
                    flat = out.setdefault(f"{prefix}.{whole}", np.zeros(int(np.prod(self.shapes[whole])), np.float32))
                    flat[k] = np.asarray(value).ravel()
                elif r == 0:
                    out[key] = np.asarray(value)
        return {k: v.reshape(self.shapes[k.partition(".")[2]]) if k.partition(".")[2] in self.shapes else v
                for k, v in out.items()}

    def split_state(self, state: dict, rank: int, names: list[str]) -> dict:
        """The whole network's optimizer state -> rank `rank`'s, whose keys are `names`."""
        out = {}
        for key in names:
            prefix, _, name = key.partition(".")
            whole, k = self.cuts[rank].get(name, (None, None))
            out[key] = (np.asarray(state[f"{prefix}.{whole}"], np.float32).ravel()[k] if whole is not None
                        else np.asarray(state[key], np.float32))
        return out


class Partitioned:
    """This rank's part of a partitioned network; reads like a Model of the whole network."""

    def __init__(self, directory: str, comm=None, hal_driver: str | None = None):
        MPI = _mpi()
        self.comm = comm or MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # a failure on one rank (a missing file, say) is raised on every rank: none waits in a collective
        self.plan, self.model = together(self.comm, lambda: self._load(directory, hal_driver))
        plan = self.plan
        self.batch, self.num_classes = self.model.batch, self.model.num_classes
        # what the training loops read (btc.tasks), of the whole network
        self.abi, self.connectivity = plan.abi, plan.connectivity
        self.inputs = {i["name"]: i for i in plan.abi["inputs"]}
        self.algorithm, self.chunk = self.model.algorithm, 1
        self.spiking = [o["name"][len("spikes."):] for o in self.model.functions["peek_step"]["outputs"][1:]]
        self.ghost_inputs = list(plan.ghosts[self.rank])
        # for every other rank q: per ghost input of q, (my group, positions in my spikes, positions in q's ghost)
        self.sends = {}
        for q in range(self.size):
            if q == self.rank:
                continue
            routes = []
            for name, (g, ids) in plan.ghosts[q].items():
                mine = plan.owner[g][ids] == self.rank
                local = np.cumsum(plan.owner[g] == self.rank) - 1  # global index -> position among mine
                routes.append((name, g, local[ids[mine]], np.nonzero(mine)[0], ids.size))
            self.sends[q] = routes
        self.bytes_sent = 0  # spike events and readouts this rank put into the exchange, since construction
        self._ghosts = None  # the ghost inputs of the next step, once a sequence ran

    def _load(self, directory: str, hal_driver):
        plan = PartitionPlan(os.path.join(directory, PLAN_FILE))
        if plan.ranks != self.size:
            raise BtcError(f"{directory} is cut for {plan.ranks} ranks; launch it with mpirun -n {plan.ranks} "
                           f"(this run has {self.size})")
        model = load(os.path.join(directory, f"rank{self.rank}"), hal_driver)
        if "peek_step" not in model.functions:
            raise BtcError(f"{directory}/rank{self.rank} was not compiled as a rank of a partitioned network")
        return plan, model

    # ---- one step
    def _exchange(self, spikes: dict, readout: np.ndarray) -> tuple[dict, np.ndarray]:
        """Send my spikes to the ranks holding their ghosts and sum the readouts; returns (next ghost
        inputs, the other ranks' readout summed)."""
        outgoing = []
        for q in range(self.size):
            events = {}
            for name, g, positions, slots, width in self.sends.get(q, ()):
                b, j = np.nonzero(spikes[g][:, positions] != 0)
                events[name] = (b * width + slots[j]).astype(np.int32)  # width: the receiver's ghost input
                self.bytes_sent += events[name].nbytes
            outgoing.append(events)
        incoming = self.comm.alltoall(outgoing)
        ghosts = {}
        for name in self.ghost_inputs:
            n = self.plan.ghosts[self.rank][name][1].size
            flat = np.zeros(self.batch * n, np.float32)
            for events in incoming:
                if name in events:
                    flat[events[name]] = 1.0
            ghosts[name] = flat.reshape(self.batch, n)
        readouts = self.comm.allgather(readout)
        self.bytes_sent += readout.nbytes
        others = sum((readouts[q] for q in range(self.size) if q != self.rank), np.zeros_like(readout))
        return ghosts, others

    def _step_inputs(self, x: dict, t: int, ghosts: dict) -> list[np.ndarray]:
        values = {**{n: np.asarray(x[n][t], np.float32) for n in self.plan.inputs}, **ghosts}
        return [np.ascontiguousarray(values[n]) for n in self.model.inputs]

    # ---- sequences
    def _check(self, x) -> tuple[dict, int]:
        if not isinstance(x, dict):
            if len(self.plan.inputs) != 1:
                raise BtcError(f"this network has inputs {self.plan.inputs}: pass x as a dict name -> [T, B, size]")
            x = {self.plan.inputs[0]: x}
        if sorted(x) != sorted(self.plan.inputs):
            raise BtcError(f"inputs must be exactly {self.plan.inputs}, got {sorted(x)}")
        for n in self.plan.inputs:
            want = (self.batch, self.model.inputs[n]["size"])
            if np.ndim(x[n]) != 3 or np.shape(x[n])[1:] != want:
                raise BtcError(f"input {n!r}: expected shape [T, {want[0]}, {want[1]}], got {list(np.shape(x[n]))}")
            # every rank sees the same input, so every rank refuses it before any exchange: none waits
            if np.asarray(x[n]).dtype.kind not in "biuf" or not np.all(np.isfinite(x[n])):
                raise BtcError(f"input {n!r}: expected finite numbers (every rank is given the whole input)")
        lengths = {np.shape(x[n])[0] for n in self.plan.inputs}
        if len(lengths) != 1 or 0 in lengths:
            raise BtcError(f"inputs must have the same, non-zero number of steps; got {sorted(lengths)}")
        return x, lengths.pop()

    def _continue(self, reset: bool) -> None:
        """Reset the states and ghosts, or carry on from the last step run (the first run always resets)."""
        if reset or self._ghosts is None:
            self.model.reset_state()
            self._ghosts = self._zero_ghosts()

    def _zero_ghosts(self) -> dict:
        return {n: np.zeros((self.batch, self.plan.ghosts[self.rank][n][1].size), np.float32)
                for n in self.ghost_inputs}

    def train_sequence(self, x, target, mask=None, lr: float | None = None, reset: bool = True) -> dict:
        """One sequence (from reset, or on from where the last one ended); gradients accumulate; with `lr`
        every rank then updates its own parameters. Returns the whole network's summed loss and readout
        sum, as Model.train_sequence does."""
        if lr is not None:
            check_lr(lr)
        x, T = self._check(x)
        target, mask = self.model._targets(target, T), self.model._mask(mask, T)
        self._continue(reset)
        ghosts, loss, rsum = self._ghosts, 0.0, np.zeros((self.batch, self.num_classes), np.float32)
        for t in range(T):
            inputs = self._step_inputs(x, t, ghosts)
            readout, *spikes = self.model._call("peek_step", *inputs)
            next_ghosts, others = self._exchange(dict(zip(self.spiking, spikes)), readout)
            step_loss, step_rsum = self.model._call(
                "train_chunk", *[a[None] for a in inputs], target[t:t + 1], mask[t:t + 1], others[None])
            loss, rsum, ghosts = loss + float(step_loss), rsum + step_rsum, next_ghosts
        self._ghosts = ghosts  # the spikes of the last step: the next sequence's first ghost inputs
        if not np.isfinite(loss):  # the same loss on every rank: all stop together
            self.model.zero_grads()
            raise BtcError(f"the loss is {loss}: training diverged; the gradients of this sequence were zeroed")
        if lr is not None:
            self.model.apply_update(lr)
        return {"loss": loss, "readout_sum": rsum}

    def infer_sequence(self, x, reset: bool = True, record: bool = False) -> dict:
        """Forward only: {"readout": [T, B, C]}; with record=True also "spikes.<group>", [T, B, N] of the whole
        group (gathered on every rank)."""
        x, T = self._check(x)
        self._continue(reset)
        names = [o["name"] for o in self.model.functions["record_step"]["outputs"]]
        ghosts, readouts, spikes = self._ghosts, [], {g: [] for g in self.spiking}
        for t in range(T):
            out = dict(zip(names, self.model._call("record_step", *self._step_inputs(x, t, ghosts))))
            mine = {g: out[f"spikes.{g}"] for g in self.spiking}
            ghosts, others = self._exchange(mine, out["readout"])
            readouts.append(out["readout"] + others)
            if record:
                for g in self.spiking:
                    spikes[g].append(mine[g])
        self._ghosts = ghosts
        result = {"readout": np.stack(readouts)}
        for g in self.spiking if record else ():
            parts = self.comm.allgather(np.stack(spikes[g]))
            whole = np.zeros((T, self.batch, self.plan.owner[g].size), np.float32)
            for q, part in enumerate(parts):
                whole[:, :, self.plan.owner[g] == q] = part
            result[f"spikes.{g}"] = whole
        return result

    # ---- the whole network's parameters
    def _joined(self, mine: dict) -> dict:
        return self.plan.join(self.comm.allgather(mine))

    @property
    def params(self) -> dict:
        return self._joined(self.model.params)

    @property
    def grads(self) -> dict:
        return self._joined(self.model.grads)

    def set_params(self, params: dict) -> None:
        """The whole network's parameters (every rank passes the same), cut to this rank's."""
        self.model.set_params(self.plan.split(params, self.rank))

    @property
    def optimizer_state(self) -> dict | None:
        state = self.model.optimizer_state
        return None if state is None else self.plan.join_state(self.comm.allgather(state))

    def save_checkpoint(self, path: str) -> None:
        """The whole network's parameters and optimizer state, gathered to rank 0, which writes them: a checkpoint
        of the whole network, which its single-process artifacts load too (the same model hash)."""
        params = self.comm.gather(self.model.params, root=0)
        state = self.model.optimizer_state
        states = self.comm.gather(state, root=0) if state is not None else None
        together(self.comm, lambda: save_checkpoint(
            self.plan.join(params), self.plan.content_hash, path, self.plan.model_hash,
            self.plan.join_state(states) if states else None) if self.rank == 0 else None)

    def load_checkpoint(self, path: str) -> None:
        """A checkpoint of the whole network (saved by a partitioned run or by one process), cut to this rank."""
        together(self.comm, lambda: self._load_checkpoint(path))

    def _load_checkpoint(self, path: str) -> None:
        params, _, model_hash, optimizer = read_checkpoint(path)
        if model_hash != self.plan.model_hash:
            raise BtcError(f"checkpoint {path!r} holds the parameters of another model than this partitioned network")
        self.set_params(params)
        self.model.zero_grads()
        mine = self.model.optimizer_state
        if mine is None:
            return
        try:  # the saving optimizer's state, if it is this one's (the same moments, shapes and step)
            state = self.plan.split_state(optimizer, self.rank, list(mine))
        except (KeyError, ValueError, IndexError):
            state = None
        if state is not None and same_layout(state, mine):
            self.model.set_optimizer_state(state)
        else:
            self.model.reset_optimizer()

"""Data-parallel online training over MPI (mpi4py): one artifact per rank, each on its share of every batch.

Every rank loads the same artifact (compiled for its share, B per rank) and sees the global batch of
B x ranks samples; rank r trains on samples [r*B, (r+1)*B). After a sequence the ranks sum their
gradient accumulators (`get_grad_sums`: linear in the data, before any chain rule) and their losses,
divide by the number of ranks, and every rank takes the same optimizer step, so the parameters stay
identical on all of them and equal those of one process training on the whole batch (the loss of a
batch is its mean over samples). Checkpoints are written by rank 0 only. Launch with
`mpirun -n K btc train ARTIFACT --data-parallel` or wrap a loaded Model in `DataParallel`.
"""
from __future__ import annotations

import numpy as np

from btc.errors import BtcError
from btc.runtime.checks import check_lr

__all__ = ["DataParallel", "NotShared", "together"]


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise BtcError("training over MPI (data-parallel or partitioned) needs mpi4py and an MPI library: pip install 'btc[mpi]' "
                       "(mpi4py and MPICH), then launch with mpirun -n K") from None
    return MPI


def together(comm, run, undo=None):
    """Run `run` on every rank; if it fails on any (any exception), every rank runs `undo` and raises
    one BtcError, so none is left waiting in a collective."""
    try:
        result, error = run(), ""
    except Exception as e:  # noqa: BLE001 - whatever it was, the other ranks must hear of it
        result, error = None, str(e) if isinstance(e, BtcError) else f"{type(e).__name__}: {e}"
    errors = [e for e in comm.allgather(error) if e]
    if errors:
        if undo:
            undo()
        raise BtcError(errors[0] if error else f"another rank failed: {errors[0]}")
    return result


class NotShared(BtcError, AttributeError):
    """An attribute DataParallel does not pass through (an AttributeError, so hasattr and getattr work)."""


class DataParallel:
    """A Model trained on its rank's share of every batch; reads like a Model whose batch is the global one."""

    def __init__(self, model, comm=None):
        MPI = _mpi()
        self.model, self.comm = model, comm or MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        if model.update_every:
            raise BtcError(f"this artifact updates its parameters inside the module every {model.update_every} "
                           "steps (update_every), between which ranks cannot exchange gradients; recompile it "
                           "without --update-every for data-parallel training")
        loaded = self.comm.allgather((model.manifest["content_hash"], model.batch))
        if len(set(loaded)) > 1:
            raise BtcError(f"data-parallel ranks must load the same artifact; they loaded {loaded} "
                           "(content hash, batch) in rank order")
        self.batch = model.batch * self.size
        # every rank starts from rank 0's parameters and optimizer state (a checkpoint loaded there, say)
        model.set_params(self.comm.bcast(model.params if self.rank == 0 else None, root=0))
        state = self.comm.bcast(model.optimizer_state if self.rank == 0 else None, root=0)
        if state is not None:
            model.set_optimizer_state(state)
        model.zero_grads()
        # what each rank contributes to one update's exchange: every gradient accumulator and the loss
        # (summed in float64), and its readout sums (float32, gathered)
        self.bytes_per_update = (8 * (sum(int(np.prod(p["shape"])) for p in model.abi["params"]) + 1)
                                 + 4 * model.batch * model.num_classes)

    # what reads like the wrapped Model's; anything else (train_stream, set_params...) would let ranks drift apart
    SHARED = ("inputs", "chunk", "num_classes", "abi", "algorithm", "params", "grads", "manifest", "path",
              "functions", "update_every", "optimizer_state", "weights")

    def __getattr__(self, name):
        if name in DataParallel.SHARED:
            return getattr(self.model, name)
        raise NotShared(f"DataParallel has no {name!r}: data-parallel training runs train_sequence, infer_sequence "
                       "and save_checkpoint (run anything else on the Model itself, outside the data-parallel loop)")

    def _share(self, a, name: str, per_sample: int = 0):
        """This rank's samples of a [T, batch, ...] array (or a dict of them); an array of `per_sample`
        dimensions is [batch, ...] (labels, or MSE targets, given once for every step)."""
        if isinstance(a, dict):
            return {k: self._share(v, f"input {k!r}") for k, v in a.items()}
        a = np.asarray(a)
        axis = 0 if a.ndim == per_sample else 1
        if a.ndim <= axis or a.shape[axis] != self.batch:
            raise BtcError(f"data-parallel {name}: expected [T, {self.batch}, ...] (the global batch: "
                           f"{self.model.batch} per rank x {self.size} ranks), got shape {list(a.shape)}")
        mine = slice(self.rank * self.model.batch, (self.rank + 1) * self.model.batch)
        return a[mine] if axis == 0 else a[:, mine]

    def _together(self, run, undo=None):
        return together(self.comm, run, undo)

    def train_sequence(self, x, target, mask=None, lr: float | None = None, reset: bool = True) -> dict:
        """Train on this rank's share; gradients and losses are averaged over the ranks before the update.
        If any rank fails, every rank's gradients of this sequence are zeroed, as one process would."""
        MPI = _mpi()
        if lr is not None:
            check_lr(lr)  # before any work: the same on every rank
        per_sample = 1 if self.model.abi["loss"] == "cross_entropy" else 2  # [batch] labels, [batch, C] values
        out = self._together(lambda: self.model.train_sequence(
            self._share(x, "input"), self._share(target, "target", per_sample), mask, lr=None, reset=reset),
            undo=self.model.zero_grads)
        sums = self._together(self.model.grad_sums, undo=self.model.zero_grads)
        flat = np.concatenate([s.ravel() for s in sums] + [np.array([out["loss"]], np.float32)]).astype(np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        flat /= self.size
        parts, start = [], 0
        for s in sums:
            parts.append(flat[start:start + s.size].reshape(s.shape).astype(np.float32))
            start += s.size
        self.model.set_grad_sums(parts)
        readout = np.concatenate(self.comm.allgather(out["readout_sum"]), axis=0)
        if lr is not None:
            self._together(lambda: self.model.apply_update(lr))
        return {"loss": float(flat[-1]), "readout_sum": readout}

    def infer_sequence(self, x, reset: bool = True, record: bool = False) -> dict:
        """Each rank infers its share; the results are gathered along the batch axis."""
        out = self._together(lambda: self.model.infer_sequence(self._share(x, "input"), reset=reset, record=record))
        return {k: np.concatenate(self.comm.allgather(v), axis=1) for k, v in out.items()}

    def save_checkpoint(self, path: str) -> None:
        """Rank 0 writes (the parameters are the same everywhere); every rank returns once it is written."""
        self._together(lambda: self.model.save_checkpoint(path) if self.rank == 0 else None)

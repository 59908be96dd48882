"""Which variant of train_chunk takes a chunk. An event-driven module exports, besides the exact
train_chunk, optimistic variants whose active lists have a fixed capacity (train_chunk_fast, sized by the
expected activity, then train_chunk_roomy, sized for 4x that activity; before them, in some modules with
sparse projections, train_chunk_tight, sized for 1.25x the expected count; btc.passes.lowering.online). A
variant whose lists could not hold a chunk's entries stores nothing and says so; the next one runs the same chunk.
"""
from __future__ import annotations

__all__ = ["TIERS", "STAY_AFTER_BUSY", "MAX_STAY", "ChunkTiers"]

TIERS = ("train_chunk_tight", "train_chunk_fast", "train_chunk_roomy", "train_chunk")  # fastest first
STAY_AFTER_BUSY = 8  # chunks that start at the variant which took a chunk its faster ones could not
MAX_STAY = 256  # ... doubled each time the fastest one fails again after such a stay, up to this, and back to
# STAY_AFTER_BUSY once the fastest has taken that many chunks in a row: a variant that fails every other chunk
# is then tried rarely (each failure costs a whole chunk, more than the variant saves)


class ChunkTiers:
    def __init__(self, functions):
        self.names = [name for name in TIERS if name in functions]
        self.busy_chunks = 0  # chunks the fastest variant could not take (a list longer than its capacity)
        self.chunks_by = dict.fromkeys(self.names, 0)  # chunks each variant took
        # the variant a chunk starts at, for `_stay` more chunks. Kept across sequences: the activity is the
        # network's (it drifts as the weights learn), not a sequence's
        self._start, self._stay, self._next_stay, self._in_a_row = 0, 0, STAY_AFTER_BUSY, 0

    def reset(self) -> None:
        """Start the next chunk at the fastest variant, as a freshly loaded model does."""
        self._start, self._stay, self._next_stay, self._in_a_row = 0, 0, STAY_AFTER_BUSY, 0

    def run(self, call, args: list) -> tuple:
        """(loss, readout sum) of one chunk, `call(name, *args)` running a module function."""
        start = self._start if self._stay else 0
        self._stay = max(0, self._stay - 1)
        for i, name in enumerate(self.names[start:], start):
            if name == "train_chunk":
                loss, rsum = call(name, *args)
                break
            loss, rsum, overflow = call(name, *args)
            if not overflow:
                break
            self.busy_chunks += i == 0
        self.chunks_by[name] += 1
        if i > start:  # busy chunks come in runs (the activity drifts): the next few start where this one ended
            self._start, self._stay = i, self._next_stay
            self._next_stay = min(MAX_STAY, 2 * self._next_stay) if start == 0 else self._next_stay
            self._in_a_row = 0 if start == 0 else self._in_a_row
        elif start == 0:
            self._in_a_row += 1
            if self._in_a_row >= STAY_AFTER_BUSY:
                self._next_stay = STAY_AFTER_BUSY
        return loss, rsum

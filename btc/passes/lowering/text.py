"""Helpers that write upstream MLIR (linalg, tensor, arith, math, scf) as text for the lowering.

`Fn` accumulates one function body; every helper returns the SSA name of its result. Names are
unique per function because linalg.generic bodies are not isolated from above.
"""
from __future__ import annotations

import re

import numpy as np
from iree.compiler import ir

from btc.dialect.ops import TILES_ATTR, VECTOR_TILES_ATTR

__all__ = ["Fn", "tt", "block_body", "select_scalar"]


def tt(*shape, dtype: str = "f32") -> str:
    """The tensor type of a shape: tt(2, 3) == 'tensor<2x3xf32>', tt() == 'tensor<f32>'."""
    return "tensor<" + "".join(f"{d}x" for d in shape) + dtype + ">"


def _dims(rank: int) -> str:
    return ", ".join(f"d{i}" for i in range(rank))


def _map(rank: int, picks: list[int]) -> str:
    return f"affine_map<({_dims(rank)}) -> ({', '.join(f'd{i}' for i in picks)})>"


def _f(x: float) -> str:
    return f"{float(x):.9e}"


# matmul_at(packed=True) packs only products summed over at least this many rows
PACK_MIN_ROWS = 128


class Fn:
    def __init__(self, optimistic: bool = False, headroom: float = 1.0, tight: bool = False):
        self.lines: list[str] = []
        self._n = 0
        self.indent = 1
        # optimistic: event-driven sums leave out what needs the slow exact path and add to `overflows` a
        # flag each, a rank-0 f32 tensor: 1 if they left anything out (events.gather_rows_sum)
        self.optimistic = optimistic
        self.overflows: list[str] | None = None  # a list while flags are collected (inside the time loop)
        # active lists hold `headroom` times the entries the expected activity needs (events.list_capacity_of);
        # `capped`: some list is shorter than the tensor it lists
        # `tight`: a list over a whole step's batch holds 1.25x the expected count and its spread
        # (plan_events.step_list_capacity)
        self.headroom, self.capped, self.tight = headroom, False, tight
        self.padded: dict[str, str] = {}  # a table's SSA name -> its twin with a zero row after (events.padded_table)
        self.pack_tiles: tuple[int, ...] = ()  # (M0, N0, K0): the target's mmt4d tile (matmul_at(packed=True))

    def name(self, prefix: str = "v") -> str:
        self._n += 1
        return f"%{prefix}{self._n}"

    def emit(self, line: str) -> None:
        self.lines.append("  " * self.indent + line)

    # ---- scalars and constants
    def const(self, x: float) -> str:
        n = self.name("c")
        self.emit(f"{n} = arith.constant {_f(x)} : f32")
        return n

    def index(self, i: int) -> str:
        n = self.name("i")
        self.emit(f"{n} = arith.constant {i} : index")
        return n

    def empty(self, shape, dtype: str = "f32") -> str:
        n = self.name("e")
        self.emit(f"{n} = tensor.empty() : {tt(*shape, dtype=dtype)}")
        return n

    def gather_rows(self, table: str, table_rows: int, cols: int, idx: str, idx_shape: tuple,
                    dtype: str = "f32") -> str:
        """table[idx[...], :] ([*idx_shape, cols]): whole rows of table[table_rows, cols] picked by the i32
        indices idx[idx_shape] (iree_linalg_ext.gather, whose row copies IREE vectorizes)."""
        n, out = self.name("rows"), tt(*idx_shape, cols, dtype=dtype)
        self.emit(f"{n} = iree_linalg_ext.gather dimension_map = [0] ins({table}, {idx} : "
                  f"{tt(table_rows, cols, dtype=dtype)}, {tt(*idx_shape, dtype='i32')}) "
                  f"outs({self.empty((*idx_shape, cols), dtype)} : {out}) -> {out}")
        return n

    def barrier(self, value: str, shape: tuple, dtype: str = "f32") -> str:
        """value, kept out of its neighbours' dispatches. Outside time loops only: inside scf.for, IREE 3.13
        kept each barrier's buffers alive (~35 MB more per train_chunk call at recurrent_lif N=2048), and
        several failed to compile ("failed to solve for timepoint coverage")."""
        n = self.name("kept")
        self.emit(f"{n} = util.optimization_barrier {value} : {tt(*shape, dtype=dtype)}")
        return n

    def full(self, shape, value: float, dtype: str = "f32") -> str:
        if dtype != "f32":  # an integer splat (shapes are small: index lists)
            n = self.name("z")
            self.emit(f"{n} = arith.constant dense<{int(value)}> : {tt(*shape, dtype=dtype)}")
            return n
        c, e, n = self.const(value), self.empty(shape), self.name("z")
        self.emit(f"{n} = linalg.fill ins({c} : f32) outs({e} : {tt(*shape)}) -> {tt(*shape)}")
        return n

    # ---- structured ops
    def generic(self, ins: list[tuple[str, str, str]], outs: list[tuple[str, str, str]],
                iterators: list[str], body, tiles: tuple[int, ...] | None = None,
                vectors: tuple[int, ...] | None = None) -> list[str]:
        """ins/outs: (value, affine map, type). body(arg names) -> (lines, yielded names).
        tiles: a preferred workgroup tile per loop (0 for each reduction loop, and only for those), a hint
        (TILES_ATTR) the backend turns into its own configuration or drops; vectors: with tiles, the vector
        tile inside a workgroup (VECTOR_TILES_ATTR; 0 for the reductions)."""
        args = [self.name("a") for _ in ins + outs]
        maps = ", ".join(m for _, m, _ in ins + outs)
        its = ", ".join(f'"{i}"' for i in iterators)
        res = self.name("g")
        head = f"{res}:{len(outs)}" if len(outs) > 1 else res
        ins_txt = (f"ins({', '.join(v for v, _, _ in ins)} : {', '.join(t for _, _, t in ins)}) "
                   if ins else "")
        if tiles and (len(tiles) != len(iterators) or not any(tiles)
                      or any((t == 0) != (i == "reduction") for t, i in zip(tiles, iterators))):
            raise AssertionError(f"tiles {tiles} for loops {iterators}: one size per loop, 0 for the reductions only")
        if vectors and (not tiles or len(vectors) != len(tiles) or any(v > t for v, t in zip(vectors, tiles))):
            raise AssertionError(f"vector tiles {vectors} for workgroup tiles {tiles}: one size per loop, within it")
        sizes = lambda v: ", ".join(map(str, v))  # noqa: E731
        hint = (f"attrs = {{{TILES_ATTR} = array<i64: {sizes(tiles)}>"
                + (f", {VECTOR_TILES_ATTR} = array<i64: {sizes(vectors)}>" if vectors else "") + "} ") if tiles else ""
        self.emit(f"{head} = linalg.generic {{indexing_maps = [{maps}], iterator_types = [{its}]}} "
                  f"{ins_txt}outs({', '.join(v for v, _, _ in outs)} : {', '.join(t for _, _, t in outs)}) {hint}{{")
        self.emit(f"^bb0({', '.join(f'{a}: ' + _elem(t) for a, (_, _, t) in zip(args, ins + outs))}):")
        lines, yielded = body(args)
        self.indent += 1
        for line in lines:
            self.emit(line)
        self.indent -= 1
        types = ", ".join(_elem(t) for _, _, t in outs)
        self.emit(f"  linalg.yield {', '.join(yielded)} : {types}")
        out_types = ", ".join(t for _, _, t in outs)
        self.emit(f"}} -> ({out_types})" if len(outs) > 1 else f"}} -> {out_types}")
        return [f"{res}#{i}" for i in range(len(outs))] if len(outs) > 1 else [res]

    def map(self, values: list[str], shapes: list[tuple], out_shape: tuple, n_out: int, body) -> list[str]:
        """Elementwise over out_shape; an input of lower rank broadcasts along the leading dims.

        An output the body yields as a constant (a neuron's constant Jacobian entry, say) is a splat instead:
        IREE 3.13 kept such outputs of a multi-result generic and wrote them whole every step (six of ten
        outputs of recurrent_lif's neuron update, 6 ms a step at N=16,384, B=32). Such a splat may share its
        buffer with others: read it, but never store it into a global (state_io.setter)."""
        r = len(out_shape)
        probe_lines, probe_out = body(self, [self.name("a") for _ in values])
        known = _constants(probe_lines)
        constants = [known.get(name) for name in probe_out]
        constants = [None if c is None or not np.isfinite(c) else float(c) for c in constants]
        kept = [i for i, c in enumerate(constants) if c is None]
        assert len(probe_out) == n_out, f"an elementwise body yielded {len(probe_out)} values, expected {n_out}"
        if not kept:
            return [self.full(out_shape, c) for c in constants]
        ins = [(v, _map(r, list(range(r - len(s), r))), tt(*s)) for v, s in zip(values, shapes)]
        outs = [(self.empty(out_shape), _map(r, list(range(r))), tt(*out_shape)) for _ in kept]

        def kept_body(a):
            lines, out = body(self, a[:len(values)])
            return lines, [out[i] for i in kept]
        res = iter(self.generic(ins, outs, ["parallel"] * r, kept_body))
        return [next(res) if c is None else self.full(out_shape, c) for c in constants]

    def matmul(self, a: str, b: str, m: int, k: int, n: int, acc: str | None = None) -> str:
        """acc + a[m,k] @ b[k,n]."""
        acc = acc or self.full((m, n), 0.0)
        res = self.name("mm")
        self.emit(f"{res} = linalg.matmul ins({a}, {b} : {tt(m, k)}, {tt(k, n)}) outs({acc} : {tt(m, n)}) -> {tt(m, n)}")
        return res

    def matmul_bt(self, a: str, w: str, m: int, k: int, n: int, acc: str | None = None) -> str:
        """acc + a[m,n] @ w[k,n]^T: pulls a postsynaptic signal back through the weights."""
        return self._matmul_maps(a, w, [0, 2], [1, 2], tt(m, n), tt(k, n), m, k, acc)

    def matmul_at(self, a: str, l: str, m: int, k: int, n: int, acc: str, packed: bool = False) -> str:
        """acc + a[m,k]^T @ l[m,n], summed over the batch m: the outer-product gradient. `packed`, where the
        target's tile is known (pack_tiles) and m is long: as linalg.mmt4d over packed copies, the layout of
        IREE's CPU matmul kernels ([640 x 100]^T [640 x 16384] with the packs and the unpack: 17.5 ms against
        37.6 as a linalg.matmul). A short m would pay the packs for little work."""
        if packed and self.pack_tiles and m >= PACK_MIN_ROWS and m % self.pack_tiles[2] == 0:
            return self._packed_at(a, l, m, k, n, acc)
        return self._matmul_maps(a, l, [2, 0], [2, 1], tt(m, k), tt(m, n), k, n, acc)

    def _packed_at(self, a: str, l: str, m: int, k: int, n: int, acc: str) -> str:
        M0, N0, K0 = self.pack_tiles
        k1, n1, m1 = -(-k // M0), -(-n // N0), m // K0
        zero = self.const(0.0)

        def pack(x: str, cols: int, tile: int, outer: int) -> str:
            """x[m, cols] as [outer, m1, tile, K0]: tiles of `tile` columns by K0 rows, zero-padded."""
            out, to = self.name("pk"), tt(outer, m1, tile, K0)
            self.emit(f"{out} = linalg.pack {x} padding_value({zero} : f32) outer_dims_perm = [1, 0] "
                      f"inner_dims_pos = [1, 0] inner_tiles = [{tile}, {K0}] into {self.empty((outer, m1, tile, K0))} "
                      f": {tt(m, cols)} -> {to}")
            return out
        pa, pl = pack(a, k, M0, k1), pack(l, n, N0, n1)
        tiles_t = tt(k1, n1, M0, N0)
        prod, whole = self.name("mm"), self.name("mm")
        self.emit(f"{prod} = linalg.mmt4d ins({pa}, {pl} : {tt(k1, m1, M0, K0)}, {tt(n1, m1, N0, K0)}) "
                  f"outs({self.full((k1, n1, M0, N0), 0.0)} : {tiles_t}) -> {tiles_t}")
        self.emit(f"{whole} = linalg.unpack {prod} inner_dims_pos = [0, 1] inner_tiles = [{M0}, {N0}] into "
                  f"{self.empty((k, n))} : {tiles_t} -> {tt(k, n)}")

        def add(fn, x):
            r = fn.name("r")
            return [f"{r} = arith.addf {x[0]}, {x[1]} : f32"], [r]
        return self.map([acc, whole], [(k, n)] * 2, (k, n), 1, add)[0]

    def _matmul_maps(self, a, b, a_dims, b_dims, a_type, b_type, rows, cols, acc) -> str:
        """A transposed matmul as linalg.matmul with indexing maps (d0, d1: result, d2: reduced),
        which IREE lowers through its matmul path; a linalg.generic of the same maps ran ~1.4x slower."""
        acc = acc or self.full((rows, cols), 0.0)
        res = self.name("mm")
        maps = f"[{_map(3, a_dims)}, {_map(3, b_dims)}, {_map(3, [0, 1])}]"
        self.emit(f"{res} = linalg.matmul indexing_maps = {maps} ins({a}, {b} : {a_type}, {b_type}) "
                  f"outs({acc} : {tt(rows, cols)}) -> {tt(rows, cols)}")
        return res

    def sum_rows(self, a: str, m: int, n: int, acc: str) -> str:
        """acc[n] + sum over m of a[m, n]."""
        s = self.name("s")
        # (n, m) iteration order keeps the reduction innermost, the form IREE expects
        return self.generic([(a, _map(2, [1, 0]), tt(m, n))], [(acc, _map(2, [0]), tt(n))],
                            ["parallel", "reduction"],
                            lambda x: ([f"{s} = arith.addf {x[1]}, {x[0]} : f32"], [s]))[0]

    # ---- slices of the time axis
    def slice_t(self, seq: str, t: str, shape: tuple, dtype: str = "f32") -> str:
        n = self.name("x")
        self.emit(f"{n} = tensor.extract_slice {seq}{_step_at(t, shape)} : "
                  f"{tt(self.chunk, *shape, dtype=dtype)} to {tt(*shape, dtype=dtype)}")
        return n

    def insert_t(self, value: str, seq: str, t: str, shape: tuple) -> str:
        n = self.name("q")
        self.emit(f"{n} = tensor.insert_slice {value} into {seq}{_step_at(t, shape)} : "
                  f"{tt(*shape)} into {tt(self.chunk, *shape)}")
        return n

    chunk: int = 0


def _step_at(t: str, shape: tuple) -> str:
    """Offsets, sizes and strides of step t of a [K, *shape] tensor."""
    zeros = ", ".join("0" for _ in shape)
    sizes = ", ".join(str(d) for d in shape)
    ones = ", ".join("1" for _ in range(len(shape) + 1))
    return f"[{t}, {zeros}] [1, {sizes}] [{ones}]"


def _elem(tensor_type: str) -> str:
    return tensor_type.rsplit("x", 1)[-1].rstrip(">") if "x" in tensor_type else tensor_type[7:-1]


_CONSTANT = re.compile(r'^(%[\w.#]+) = (?:arith\.constant (\S+) : f32|"arith\.constant"\(\) \{value = (\S+) : f32\})')
_BINARY = re.compile(r'^(%[\w.#]+) = (?:"arith\.(addf|subf|mulf|divf)"\((%[\w.#]+), (%[\w.#]+)\)'
                     r'(?: \{\}| \{fastmath = #arith\.fastmath<none>\})? : \(f32, f32\) -> f32'
                     r'|arith\.(addf|subf|mulf|divf) (%[\w.#]+), (%[\w.#]+) : f32)$')
_FOLD = {"addf": np.add, "subf": np.subtract, "mulf": np.multiply, "divf": np.divide}


def _constants(lines: list[str]) -> dict[str, np.float32]:
    """The f32 values among `lines` that are constants, or IEEE arithmetic (no fast-math) of constants: a
    forward-mode Jacobian entry of a linear neuron is such a product."""
    known: dict[str, np.float32] = {}
    for line in lines:
        text = line.strip()
        if m := _CONSTANT.match(text):
            try:
                known[m.group(1)] = np.float32(float(m.group(2) or m.group(3)))
            except ValueError:  # a hexadecimal bit pattern (NaN, say): left to the generic
                pass
        elif m := _BINARY.match(text):
            op, a, b = m.group(2, 3, 4) if m.group(2) else m.group(5, 6, 7)
            if a in known and b in known:
                with np.errstate(all="ignore"):
                    known[m.group(1)] = _FOLD[op](known[a], known[b])
    return known


def block_body(fn: Fn, block: ir.Block, args: list[str]) -> tuple[list[str], list[str]]:
    """Print a derivative region's scalar ops under new names; returns (lines, yielded names).

    `btc.spike` lowers to a compare and a cast; `btc.stop_gradient` is the identity.
    """
    names = {v: a for v, a in zip(block.arguments, args)}
    lines: list[str] = []
    for op in block.operations:
        op = op.operation
        ins = [names[v] for v in op.operands]
        if op.name == "btc.yield":
            return lines, ins
        if op.name == "btc.stop_gradient":
            names[op.results[0]] = ins[0]
            continue
        res = fn.name("r")
        if op.name == "btc.spike":
            zero, cond = fn.name("r"), fn.name("r")
            lines += [f"{zero} = arith.constant 0.0 : f32", f"{cond} = arith.cmpf ogt, {ins[0]}, {zero} : f32",
                      f"{res} = arith.uitofp {cond} : i1 to f32"]
        else:
            attrs = ", ".join(f"{k} = {op.attributes[k]}" for k in op.attributes)
            in_types = ", ".join(str(v.type) for v in op.operands)
            lines.append(f'{res} = "{op.name}"({", ".join(ins)}) {{{attrs}}} : ({in_types}) -> {op.results[0].type}')
        names[op.results[0]] = res
    raise AssertionError("region without btc.yield")


def select_scalar(fn: Fn, cond: str, a: str, b: str) -> str:
    """The rank-0 f32 tensor a if the i1 cond, else b."""
    va, vb, r, out = fn.name("s"), fn.name("s"), fn.name("s"), fn.name("kt")
    fn.emit(f"{va} = tensor.extract {a}[] : {tt()}")
    fn.emit(f"{vb} = tensor.extract {b}[] : {tt()}")
    fn.emit(f"{r} = arith.select {cond}, {va}, {vb} : f32")
    fn.emit(f"{out} = tensor.from_elements {r} : {tt()}")
    return out

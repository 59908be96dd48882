"""The session module of an exported bundle: whole online-training and inference sessions in one call.

`iree-run-module` runs one function per process, and a module's globals do not outlive the process,
so the call order of online training (reset_state, train_chunk per chunk, apply_update per sequence)
cannot be spread over several invocations. `btc_session` is a second IREE module that imports
btc_model's functions and makes those calls in loops:

  train_sequences(x_<input>[S, C, K, B, I]..., target[S, C, K, ...], mask[S, C, K], lr[])
      -> (loss[S], every parameter after the last update)
  infer_sequences(x_<input>[S, C, K, B, I]...) -> readout[S, C, K, B, classes]

S sequences of C chunks, states reset before each sequence, one optimizer step after each (as
btc's Model.train_sequence; a continual artifact updates itself every k steps instead). Loaded after
the model: `iree-run-module --module=model.vmfb --module=session.vmfb --parameters=model=params.irpa`.
The loops live in their own module because IREE 3.13 miscompiles a loop whose body calls functions of
the same module that store globals (the stores are reordered after the loop body's dispatches).
"""
from __future__ import annotations

__all__ = ["SESSION_MODULE", "session_module"]

SESSION_MODULE = "btc_session"
_DTYPES = {"float32": "f32", "int32": "i32"}


def _type(arg: dict, lead: tuple = ()) -> str:
    dims = [*("?" for _ in lead), *(str(d) for d in arg["shape"])]
    return "tensor<" + "".join(f"{d}x" for d in dims) + _DTYPES[arg["dtype"]] + ">"


def _declare(f: dict) -> str:
    results = ", ".join(_type(a) for a in f["outputs"])
    return (f"  func.func private @btc_model.{f['name']}({', '.join(_type(a) for a in f['inputs'])})"
            + (f" -> ({results})" if results else ""))


def _arguments(args: list[dict]) -> str:
    return ", ".join(f"%{a['name']}: {_type(a, (0, 0))}" for a in args)


def _same_counts(args: list[dict]) -> list[str]:
    """%S and %C from the first argument; every other one must agree (else a slice would read out of bounds)."""
    first = f"%{args[0]['name']}"
    lines = [f"    %S = tensor.dim {first}, %c0 : {_type(args[0], (0, 0))}",
             f"    %C = tensor.dim {first}, %c1 : {_type(args[0], (0, 0))}"]
    for i, a in enumerate(args[1:]):
        for axis, total in (("%c0", "%S"), ("%c1", "%C")):
            lines += [f"    %n{i}{total[1]} = tensor.dim %{a['name']}, {axis} : {_type(a, (0, 0))}",
                      f"    %ok{i}{total[1]} = arith.cmpi eq, %n{i}{total[1]}, {total} : index",
                      f'    cf.assert %ok{i}{total[1]}, "every argument must have the same number of sequences (S) '
                      f'and chunks (C) as {args[0]["name"]}; {a["name"]} differs"']
    return lines


def _slices(args: list[dict], indent: str) -> tuple[list[str], list[str]]:
    """One chunk's slice [K, ...] of each [S, C, K, ...] argument at (%s, %c)."""
    lines, names = [], []
    for n, a in enumerate(args):
        rank = len(a["shape"])
        name = f"%part{n}"
        sizes = ", ".join(str(d) for d in a["shape"])
        lines.append(f"{indent}{name} = tensor.extract_slice %{a['name']}[%s, %c{', 0' * rank}] [1, 1, {sizes}] "
                     f"[1, 1{', 1' * rank}] : {_type(a, (0, 0))} to {_type(a)}")
        names.append(name)
    return lines, names


def session_module(abi: dict) -> str:
    """The MLIR of btc_session for the artifact whose ABI record is `abi`."""
    fns = {f["name"]: f for f in abi["functions"]}
    used = ["reset_state", "infer_chunk"] + (["train_chunk", "apply_update", "get_params"] if "train_chunk" in fns else [])
    lines = [f"module @{SESSION_MODULE} {{"] + [_declare(fns[n]) for n in used]
    head = ["    %c0 = arith.constant 0 : index", "    %c1 = arith.constant 1 : index"]
    xs = fns["infer_chunk"]["inputs"]
    # infer_sequences
    out = fns["infer_chunk"]["outputs"][0]
    seq_type = _type(out, (0, 0))
    lines += [f"  func.func @infer_sequences({_arguments(xs)}) -> {seq_type} {{",
              *head, *_same_counts(xs),
              f"    %empty = tensor.empty(%S, %C) : {seq_type}",
              f"    %out = scf.for %s = %c0 to %S step %c1 iter_args(%seqs = %empty) -> ({seq_type}) {{",
              "      func.call @btc_model.reset_state() : () -> ()",
              # the carried tensor's dynamic sizes, tied: IREE 3.13 cannot recover them from an iter_arg
              f"      %seqs_t = flow.tensor.tie_shape %seqs : {seq_type}{{%S, %C}}",
              f"      %seq = scf.for %c = %c0 to %C step %c1 iter_args(%acc = %seqs_t) -> ({seq_type}) {{",
              f"        %acc_t = flow.tensor.tie_shape %acc : {seq_type}{{%S, %C}}"]
    parts, names = _slices(xs, "        ")
    rank = len(out["shape"])
    lines += parts + [
        f"        %r = func.call @btc_model.infer_chunk({', '.join(names)}) : "
        f"({', '.join(_type(a) for a in xs)}) -> {_type(out)}",
        f"        %next = tensor.insert_slice %r into %acc_t[%s, %c{', 0' * rank}] "
        f"[1, 1, {', '.join(str(d) for d in out['shape'])}] [1, 1{', 1' * rank}] : {_type(out)} into {seq_type}",
        f"        scf.yield %next : {seq_type}", "      }", f"      scf.yield %seq : {seq_type}", "    }",
        f"    %result = flow.tensor.tie_shape %out : {seq_type}{{%S, %C}}", f"    return %result : {seq_type}", "  }"]
    if "train_chunk" in fns:
        lines += _train_sequences(fns, abi, head)
    return "\n".join(lines + ["}"]) + "\n"


def _train_sequences(fns: dict, abi: dict, head: list[str]) -> list[str]:
    chunk = fns["train_chunk"]
    per_chunk = [a for a in chunk["inputs"] if a["name"] not in ("lr", "valid")]
    params = fns["get_params"]["outputs"]
    results = ", ".join(["tensor<?xf32>"] + [_type(p) for p in params])
    lines = [f"  func.func @train_sequences({_arguments(per_chunk)}, "
             f"%lr: tensor<f32>) -> ({results}) {{", *head, *_same_counts(per_chunk),
             "    %zero = arith.constant 0.0 : f32",
             "    %empty = tensor.empty(%S) : tensor<?xf32>",
             "    %out = scf.for %s = %c0 to %S step %c1 iter_args(%carried = %empty) -> (tensor<?xf32>) {",
             "      %losses = flow.tensor.tie_shape %carried : tensor<?xf32>{%S}",
             "      func.call @btc_model.reset_state() : () -> ()",
             "      %total = scf.for %c = %c0 to %C step %c1 iter_args(%sum = %zero) -> (f32) {"]
    parts, names = _slices(per_chunk, "        ")
    types = [_type(a) for a in per_chunk]
    if abi["update_every"]:  # continual: the module updates itself every k steps; every step is valid
        parts.append(f"        %valid = arith.constant dense<{abi['chunk']}> : tensor<i32>")
        names += ["%lr", "%valid"]
        types += ["tensor<f32>", "tensor<i32>"]
    outs = ", ".join(_type(a) for a in chunk["outputs"])
    lines += parts + [
        f"        %loss, %rsum = func.call @btc_model.train_chunk({', '.join(names)}) : ({', '.join(types)}) -> ({outs})",
        "        %l = tensor.extract %loss[] : tensor<f32>",
        "        %next = arith.addf %sum, %l : f32",
        "        scf.yield %next : f32", "      }"]
    if not abi["update_every"]:
        lines.append("      %status = func.call @btc_model.apply_update(%lr) : (tensor<f32>) -> tensor<f32>")
    finals = ", ".join(f"%p{i}" for i in range(len(params)))
    lines += ["      %stored = tensor.insert %total into %losses[%s] : tensor<?xf32>",
              "      scf.yield %stored : tensor<?xf32>", "    }",
              f"    {finals} = func.call @btc_model.get_params() : () -> ({', '.join(_type(p) for p in params)})",
              "    %result = flow.tensor.tie_shape %out : tensor<?xf32>{%S}",
              f"    return %result, {finals} : {results}", "  }"]
    return lines

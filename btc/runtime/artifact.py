"""An artifact directory as written by `btc compile`: its files, its manifest, and their hashes checked
before anything is used (the runtime then reads only the bytes that were hashed)."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from btc.errors import BtcError

__all__ = ["MANIFEST_FORMAT", "REQUIRED_FILES", "abi_hash", "read_artifact", "applied_weights"]

# params.irpa: every mutable global's initial value (btc.runtime.parameters), read by the module at load;
# connectivity.npz: each sparse projection's pairs, "<projection>.pre" / ".post" (empty if none)
REQUIRED_FILES = ("manifest.json", "model.vmfb", "params.irpa", "connectivity.npz")
MANIFEST_FORMAT = 5  # 5: apply_update returns a status (btc.status)


def abi_hash(abi: dict) -> str:
    """The hash of an ABI record, as the manifest stores it: an edited manifest is refused."""
    return hashlib.sha256(json.dumps(abi, sort_keys=True).encode()).hexdigest()


def read_artifact(path: str) -> tuple[dict, dict[str, bytes]]:
    """(manifest, file contents) of an artifact directory, every file checked against its hash."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise BtcError(f"artifact path must be a directory name, got {path!r}")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise BtcError(f"artifact directory {path!r} does not exist (create one with `btc compile`)")
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise BtcError(f"artifact {path!r} is missing {missing}; recompile it with `btc compile`")
    try:
        with open(os.path.join(path, "manifest.json")) as f:
            manifest = json.load(f)
    except json.JSONDecodeError as e:
        raise BtcError(f"artifact {path!r}: manifest.json is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT \
            or not isinstance(manifest.get("files"), dict) or set(manifest["files"]) != set(REQUIRED_FILES[1:]):
        raise BtcError(f"artifact {path!r}: manifest.json is not a btc artifact manifest of format {MANIFEST_FORMAT}; "
                       "recompile the artifact with this version of btc")
    if not isinstance(manifest.get("abi"), dict):
        raise BtcError(f"artifact {path!r}: manifest.json has no ABI record ('abi'); recompile the artifact")
    if manifest.get("abi_sha256") != abi_hash(manifest["abi"]):
        raise BtcError(f"artifact {path!r}: the ABI record in manifest.json does not match its hash (the manifest "
                       "was edited); recompile the artifact")
    blobs = {}
    for name, expected in manifest["files"].items():
        with open(os.path.join(path, name), "rb") as f:
            blobs[name] = f.read()
        if hashlib.sha256(blobs[name]).hexdigest() != expected:
            raise BtcError(f"artifact {path!r}: {name} does not match the hash in manifest.json "
                           "(the file was modified or truncated); recompile the artifact")
    return manifest, blobs


def applied_weights(abi: dict, params: dict, connectivity: dict, ties: dict | None = None) -> dict:
    """projection -> the weights it applies ([pre, post]): sign*|W| under Dale's law, else W; a sparse
    projection's (`connectivity`: its pairs) as a scipy.sparse CSR array, a convolution's (`ties`:
    each pair's kernel entry) with its kernel read at every pair."""
    size = {**{i["name"]: i["size"] for i in abi["inputs"]}, **{g["name"]: g["size"] for g in abi["groups"]}}
    out = {}
    for p in abi["projections"]:
        W = params[f"{p['name']}.W"]
        W = p["sign"] * np.abs(W) if p["sign"] else W
        if p["name"] in connectivity:
            from scipy.sparse import csr_array

            pre, post = connectivity[p["name"]]
            if ties and p["name"] in ties:
                W = p["connectivity"].get("scale", 1.0) * W[ties[p["name"]]]
            W = csr_array((W, (pre, post)), shape=(size[p["pre"]], size[p["post"]]))
        out[p["name"]] = W
    return out

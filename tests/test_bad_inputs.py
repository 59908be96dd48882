"""A corpus of bad inputs, one per case, across every entry point: the network builders, sparse
connectivity, connectome files, compile options and outputs, the runtime's inputs, checkpoints,
artifacts and the CLI. Each must end in one BtcError (or a CLI exit with "Error:") whose message
names the problem, and leave every file on disk as it was (a work directory holding a foreign file,
a checkpoint and a copy of an artifact)."""
import json
import os
import shutil

import numpy as np
import pytest
import scipy.sparse
from click.testing import CliRunner

from btc.driver import CompileOptions, compile_network
from btc.errors import BtcError
from btc.frontend import LIF, Network
from btc.frontend.connectivity import Connectivity
from btc.frontend.connectome import from_scipy, load_edge_list, load_flywire, synthetic_connectome
from btc.runtime import load
from btc.tasks.connectome import ConnectomeTask
from btc.tools.cli import main
from nets import NETWORKS

HEADER = "pre_root_id,post_root_id,neuropil,syn_count,nt_type\n"


def _net() -> Network:
    net = Network(seed=1)
    net.input("x", 4)
    net.group("h", 3)
    net.readout("out", 2)
    return net


def _ready() -> Network:
    net = _net()
    net.project("x", "h")
    net.project("h", "out")
    net.set_loss("mse", "out")
    return net


def _file(w, name, text):
    path = os.path.join(w.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _cli(*args):
    result = CliRunner().invoke(main, list(args))
    if result.exit_code != 0 and "Error:" in result.output:
        raise BtcError(result.output)
    raise AssertionError(f"the CLI did not refuse: exit {result.exit_code}\n{result.output}")


X = np.zeros((6, 3, 6), np.float32)  # shared_input_mse: input x of 6 channels, batch 3, 2 readouts (MSE)
T = np.zeros((6, 3, 2), np.float32)

CASES = [
    # ---- network builders
    ("group size 0", lambda w: _net().group("g", 0), r"group 'g': size must be a positive integer, got 0"),
    ("group size string", lambda w: _net().group("g", "5"), r"size must be a positive integer, got '5'"),
    ("group name twice", lambda w: _net().group("h", 2), r"'h'"),
    ("group name not an identifier", lambda w: _net().group("2x", 2), r"'2x'"),
    ("readout tau negative", lambda w: _net().readout("r", 2, tau=-1.0), r"readout 'r': tau must be"),
    ("unknown trainable parameter", lambda w: _net().group("g", 2, trainable=("nope",)), r"nope"),
    ("trainable listed twice", lambda w: _net().group("g", 2, trainable=("tau", "tau")), r"lists a parameter twice"),
    ("LIF negative tau", lambda w: LIF(tau=-1.0), r"LIF.*tau"),
    ("LIF resting above threshold", lambda w: LIF(v_rest=2.0, theta=1.0), r"v_rest \(2.0\) must be below theta"),
    ("dt zero", lambda w: Network(dt=0.0), r"dt"),
    ("unknown presynaptic", lambda w: _net().project("y", "h"), r"unknown presynaptic 'y'"),
    ("unknown postsynaptic", lambda w: _net().project("x", "g"), r"unknown postsynaptic group 'g'"),
    ("readout as presynaptic", lambda w: _net().project("out", "h"), r"a readout emits no spikes"),
    ("recurrent input", lambda w: _net().project("x", "h", recurrent=True), r"an input cannot be recurrent"),
    ("negative delay", lambda w: _net().project("x", "h", delay=-1), r"delay must be a whole number of steps >= 0"),
    ("delay beyond the limit", lambda w: _net().project("x", "h", delay=65), r"delay 65 is longer than btc supports"),
    ("sign not + or -", lambda w: _net().project("x", "h", sign="x"), r"sign must be '\+', '-' or None, got 'x'"),
    ("sign an array", lambda w: _net().project("x", "h", sign=np.ones(2)), r"sign must be"),
    ("weights of the wrong shape", lambda w: _net().project("x", "h", weights=np.zeros((3, 4))),
     r"weights have shape \[3, 4\], expected \[4, 3\]"),
    ("weights with NaN", lambda w: _net().project("x", "h", weights=np.full((4, 3), np.nan)), r"weights must be finite"),
    ("weights of the wrong sign", lambda w: _net().project("x", "h", weights=np.ones((4, 3)), sign="-"),
     r"entries of the wrong sign"),
    ("init a string", lambda w: _net().project("x", "h", init="big"), r"init must be a number"),
    ("trainable not a bool", lambda w: _net().project("x", "h", trainable="no"), r"trainable must be True or False"),
    ("unknown loss", lambda w: _net().set_loss("hinge", "out"), r"hinge"),
    ("no loss at compile", lambda w: compile_network(_net(), CompileOptions(batch=2, chunk=3), os.path.join(w.dir, "a")),
     r"loss"),
    # ---- sparse connectivity
    ("probability above 1", lambda w: _net().project("x", "h", connectivity=1.5), r"probability 1.5 not in \(0, 1\]"),
    ("pair out of range", lambda w: _net().project("x", "h", connectivity=(np.array([0, 9]), np.array([0, 1]))),
     r"pre index 9 is out of range \[0, 4\)"),
    ("pair twice", lambda w: _net().project("x", "h", connectivity=(np.array([1, 1]), np.array([2, 2]))),
     r"connects \(1, 2\) more than once"),
    ("empty mask", lambda w: _net().project("x", "h", connectivity=np.zeros((4, 3), bool)), r"connects no pair"),
    ("mask of the wrong shape", lambda w: _net().project("x", "h", connectivity=np.ones((3, 4), bool)),
     r"the mask has shape \[3, 4\], expected \[4, 3\]"),
    ("weights off the pairs", lambda w: _net().project("x", "h", connectivity=np.eye(4, 3, dtype=bool),
                                                       weights=np.ones((4, 3))), r"which the connectivity does not connect"),
    ("connectivity object out of range", lambda w: _net().project("x", "h", connectivity=Connectivity(
        np.array([0, 9], np.int32), np.array([0, 1], np.int32), (4, 3))), r"pre index 9 is out of range \[0, 4\)"),
    ("connectivity of another kind", lambda w: _net().project("x", "h", connectivity="all"),
     r"connectivity must be a probability"),
    # ---- connectome files (written before the case runs)
    ("connections without a column", lambda w: load_flywire(w.f("c.csv")),
     r"lacks column\(s\) \['neuropil', 'syn_count', 'nt_type'\]", {"c.csv": "pre_root_id,post_root_id\n1,2\n"}),
    ("negative synapse count", lambda w: load_flywire(w.f("c.csv")), r"line 2: syn_count -1 is negative",
     {"c.csv": HEADER + "1,2,AL,-1,ACH\n"}),
    ("root id not a number", lambda w: load_flywire(w.f("c.csv")), r"line 2: post_root_id 'two' is not a whole number",
     {"c.csv": HEADER + "1,two,AL,3,ACH\n"}),
    ("id not in the neuron table", lambda w: load_flywire(w.f("c.csv"), w.f("n.csv")),
     r"line 2: post_root_id 2 is not in the neuron table", {"c.csv": HEADER + "1,2,AL,3,ACH\n",
                                                            "n.csv": "root_id,region\n1,A\n"}),
    ("neuron listed twice", lambda w: load_flywire(w.f("c.csv"), w.f("n.csv")), r"lists root_id 1 more than once",
     {"c.csv": HEADER + "1,2,AL,3,ACH\n", "n.csv": "root_id,region\n1,A\n2,B\n1,C\n"}),
    ("empty connections file", lambda w: load_flywire(w.f("c.csv")), r"is empty", {"c.csv": ""}),
    ("missing connections file", lambda w: load_flywire(os.path.join(w.dir, "none.csv")), r"no such file"),
    ("min_syn_count zero", lambda w: load_flywire(w.f("c.csv"), min_syn_count=0),
     r"min_syn_count must be a whole number >= 1", {"c.csv": HEADER + "1,2,AL,3,ACH\n"}),
    ("edge weight not a number", lambda w: load_edge_list(w.f("e.csv")), r"line 2: weight 'x' is not a number",
     {"e.csv": "pre,post,weight\n1,2,x\n"}),
    ("edge weight infinite", lambda w: load_edge_list(w.f("e.csv")), r"line 2: weight inf is not finite",
     {"e.csv": "pre,post,weight\n1,2,inf\n"}),
    ("edge list row too short", lambda w: load_edge_list(w.f("e.csv")), r"line 2: 2 fields, expected 3",
     {"e.csv": "pre,post,weight\n1,2\n"}),
    ("scipy matrix not square", lambda w: from_scipy(scipy.sparse.csr_matrix(np.ones((2, 3)))), r"square"),
    ("synthetic connectome too small", lambda w: synthetic_connectome(10, 100, regions=8), r"neurons >= 2\*regions"),
    # ---- compile options and outputs
    ("batch 0", lambda w: CompileOptions(batch=0, chunk=3).check(), r"batch must be a positive integer, got 0"),
    ("chunk negative", lambda w: CompileOptions(batch=2, chunk=-1).check(), r"chunk"),
    ("decay 1", lambda w: CompileOptions(batch=2, chunk=3, decay=1.0).check(), r"decay"),
    ("unknown optimizer", lambda w: CompileOptions(batch=2, chunk=3, optimizer="rmsprop").check(), r"rmsprop"),
    ("unknown algorithm", lambda w: CompileOptions(algorithm="magic").check(), r"magic"),
    ("in-module updates with BPTT", lambda w: CompileOptions(algorithm="bptt", update_every=5).check(),
     r"update_every needs an online algorithm"),
    ("unknown target", lambda w: CompileOptions(target="tpu").check(), r"tpu"),
    ("output is a file", lambda w: compile_network(_ready(), CompileOptions(batch=2, chunk=3),
                                                   os.path.join(w.dir, "notes.txt")), r"notes.txt"),
    ("output over a foreign directory", lambda w: compile_network(_ready(), CompileOptions(batch=2, chunk=3), w.dir),
     r"is not empty and holds no btc artifact"),
    # ---- the runtime's inputs
    ("input of the wrong rank", lambda w: w.model.infer_sequence(np.zeros((6, 6))), r"input 'x': expected shape"),
    ("input of the wrong batch", lambda w: w.model.infer_sequence(np.zeros((6, 2, 6))), r"\[T, 3, 6\]"),
    ("input with NaN", lambda w: w.model.infer_sequence(np.full((6, 3, 6), np.nan)), r"contains NaN or infinity"),
    ("input beyond float32", lambda w: w.model.infer_sequence(np.full((6, 3, 6), 1e300)), r"infinity"),
    ("target of the wrong shape", lambda w: w.model.train_sequence(X, np.zeros((6, 3, 5))), r"target"),
    ("negative mask", lambda w: w.model.train_sequence(X, T, -np.ones(6)), r"mask"),
    ("learning rate NaN", lambda w: w.model.train_sequence(X, T, lr=float("nan")), r"lr|learning rate"),
    ("parameter missing", lambda w: w.model.set_params({"x_to_a.W": w.model.params["x_to_a.W"]}), r"a_to_b.W|missing"),
    ("parameter of the wrong shape", lambda w: w.model.set_params({**w.model.params, "x_to_a.W": np.zeros((2, 2))}),
     r"parameter x_to_a.W: expected shape"),
    ("parameter NaN", lambda w: w.model.set_params({**w.model.params, "x_to_a.W": np.full((6, 7), np.nan)}),
     r"x_to_a.W"),
    ("stream of pairs", lambda w: w.model.train_stream([(X[:5], T[:5])]), r"must be a tuple \(x, target, mask\)"),
    ("stream chunk too short", lambda w: w.model.train_stream([(X[:3], T[:3], None)]), r"every chunk must have 5 steps"),
    ("unknown driver", lambda w: load(w.artifact, hal_driver="gpu9"), r"gpu9"),
    ("load(None)", lambda w: load(None), r"None"),
    # ---- checkpoints and artifacts
    ("checkpoint missing", lambda w: w.model.load_checkpoint(os.path.join(w.dir, "none.npz")), r"does not exist"),
    ("checkpoint a .npy file", lambda w: w.model.load_checkpoint(w.npy), r"not a btc checkpoint"),
    ("checkpoint of random bytes", lambda w: w.model.load_checkpoint(w.f("junk.npz")), r"not a readable btc checkpoint",
     {"junk.npz": "not a zip"}),
    ("checkpoint inside an artifact", lambda w: w.model.save_checkpoint(os.path.join(w.artifact, "c.npz")),
     r"inside an artifact|artifact"),
    ("checkpoint over a foreign file", lambda w: w.model.save_checkpoint(os.path.join(w.dir, "notes.txt")),
     r"not a btc checkpoint"),
    ("artifact with an edited manifest", lambda w: load(w.edited), r"manifest|hash"),
    ("connectome task on another artifact", lambda w: ConnectomeTask(w.model), r"needs an artifact of"),
    # ---- the CLI
    ("compile a missing model file", lambda w: _cli("compile", os.path.join(w.dir, "none.py"), "-o",
                                                    os.path.join(w.dir, "a")), r"none.py"),
    ("compile with batch 0", lambda w: _cli("compile", "examples/lif_digits.py", "--batch", "0", "-o",
                                            os.path.join(w.dir, "a")), r"batch"),
    ("inspect a directory that is no artifact", lambda w: _cli("inspect", w.dir), r"manifest|artifact"),
    ("train the connectome task on another artifact", lambda w: _cli("train", w.artifact, "--task", "connectome"),
     r"needs an artifact of"),
    ("train digits on another artifact", lambda w: _cli("train", w.artifact, "--task", "digits"), r"task needs"),
]


class Work:
    """The work directory every case runs beside, and the state of the disk to compare."""

    def __init__(self, root, artifact, model, files: dict):
        self.dir = str(root)
        self.artifact, self.model = artifact, model
        for name, text in dict(files, **{"notes.txt": "mine"}).items():
            _file(self, name, text)
        self.npy = os.path.join(self.dir, "p.npy")
        np.save(self.npy, np.zeros(3))
        self.checkpoint = os.path.join(self.dir, "good.npz")
        model.save_checkpoint(self.checkpoint)
        self.edited = os.path.join(self.dir, "edited")
        shutil.copytree(artifact, self.edited)
        manifest = os.path.join(self.edited, "manifest.json")
        with open(manifest) as f:
            m = json.load(f)
        m["abi"]["batch"] = 7
        with open(manifest, "w") as f:
            json.dump(m, f)

    def f(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def snapshot(self) -> dict:
        out = {}
        for top in (self.dir, self.artifact):
            for base, dirs, files in os.walk(top):
                for name in dirs + files:
                    path = os.path.join(base, name)
                    st = os.lstat(path)
                    out[path] = (st.st_size, st.st_mtime_ns) if os.path.isfile(path) else "dir"
        return out


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bad") / "artifact")
    compile_network(NETWORKS["shared_input_mse"](), CompileOptions(batch=3, chunk=5), out)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(case, artifact, tmp_path, monkeypatch):
    name, call, message, files = case if len(case) == 4 else (*case, {})
    monkeypatch.chdir(os.path.join(os.path.dirname(__file__), ".."))
    work = Work(tmp_path, artifact, load(artifact), files)
    before = work.snapshot()
    with pytest.raises(BtcError, match=message):
        call(work)
    assert work.snapshot() == before, f"{name}: the disk changed"


def test_the_corpus_is_large():
    assert len(CASES) >= 60

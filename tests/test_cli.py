"""The `btc` command line, end to end on the bundled example (real compiles, real training)."""
import json
import os

import pytest
from click.testing import CliRunner

from btc.tools.cli import main

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "lif_digits.py")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits"
    dump = tmp_path_factory.mktemp("cli") / "ir"
    result = CliRunner().invoke(main, ["compile", EXAMPLE, "--algorithm", "pp-prop", "--batch", "16",
                                       "--chunk", "10", "-o", str(out), "--dump-ir-after-all", str(dump)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert len(list(dump.iterdir())) == 9  # the input and the IR after each of the 8 passes
    return out


def test_inspect_lists_functions_and_buffers(artifact):
    result = CliRunner().invoke(main, ["inspect", str(artifact)])
    assert result.exit_code == 0, result.output
    assert "train_chunk(x_x[10, 16, 64]:float32, target[10, 16]:int32, mask[10]:float32)" in result.output
    manifest = json.loads((artifact / "manifest.json").read_text())
    for e in manifest["abi"]["layout"]:
        assert f"{e['bytes']:>12,} B" in result.output
    total = sum(manifest["abi"]["memory_bytes"].values())
    assert f"{total:>14,} B in the module, whatever the sequence length" in result.output


def test_inspect_prints_the_trace_plan_next_to_bptt(tmp_path):
    """A hybrid plan chosen on the command line; every trace's bytes equal its module buffers."""
    out = tmp_path / "hybrid"
    result = CliRunner().invoke(main, ["compile", EXAMPLE, "--algorithm", "hybrid", "--batch", "4", "--chunk", "5",
                                       "--projection-algorithm", "h_to_out=d-rtrl", "--rank", "19", "-o", str(out),
                                       "--event-driven", "on", "--activity", "0.03", "--activity", "x=0.2"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["inspect", str(out), "--steps", "5000"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    plan = manifest["abi"]["trace_plan"]
    assert plan["projections"]["h_to_out"] == "d-rtrl" and plan["projections"]["x_to_h"] == "pp-prop"
    buffers = {e["name"]: e["bytes"] for e in manifest["abi"]["layout"] if e["role"] == "trace"}
    for t in plan["traces"]:
        assert t["bytes"] == sum(b for name, b in buffers.items() if name.startswith(t["name"] + "["))
        assert f"trace {t['name']:<24}" in result.output and f"{t['bytes']:>14,} B" in result.output
    assert plan["trace_bytes"] == sum(buffers.values())
    assert f"total traces {plan['trace_bytes']:>58,} B" in result.output
    per_step = manifest["abi"]["bptt_tape_bytes_per_step"]
    assert f"BPTT would hold {per_step:,} B per time step: T=5,000 -> {per_step * 5000:,} B" in result.output
    assert "algorithm=hybrid decay_pre=0.9 decay_post=0.9" in manifest["pipeline"]
    # the event-driven plan: both projections read spikes; the D-RTRL one keeps its own gradient
    assert "btc-plan-events{mode=on activity=0.03 activities={x=0.2}" in manifest["pipeline"]
    work = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("  projection ")
            and "propagation" in line}
    assert "propagation event  weight gradient event" in work["x_to_h"] and "at 20.0% activity" in work["x_to_h"]
    assert "propagation event  weight gradient dense" in work["h_to_out"] and "at 3.0% activity" in work["h_to_out"]


@pytest.mark.parametrize("flags, message", [
    (["--activity", "x=lots"], "--activity 'x=lots': expected FRACTION or NAME=FRACTION"),
    (["--activity", "0.1", "--activity", "0.2"], "--activity '0.2': the default is given twice"),
    (["--activity", "nobody=0.1"], "activity 'nobody=0.1': no input or group 'nobody'"),
    (["--activity", "x=1.5"], "activity must be the expected fraction"),
    (["--event-driven", "sometimes"], "Invalid value for '--event-driven'"),
])
def test_compile_rejects_bad_event_options(tmp_path, flags, message):
    result = CliRunner().invoke(main, ["compile", EXAMPLE, "--batch", "2", "--chunk", "4", "-o", str(tmp_path / "a"),
                                       *flags])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "a").exists()


def test_compile_rejects_a_bad_projection_choice(tmp_path):
    result = CliRunner().invoke(main, ["compile", EXAMPLE, "--projection-algorithm", "nope=d-rtrl",
                                       "-o", str(tmp_path / "a")])
    assert result.exit_code != 0
    assert "no projection 'nope'" in result.output
    assert not (tmp_path / "a").exists()


def test_train_prints_progress_and_final_metrics(artifact, tmp_path):
    ckpt = tmp_path / "trained.npz"
    result = CliRunner().invoke(main, ["train", str(artifact), "--task", "digits", "--epochs", "2",
                                       "--checkpoint", str(ckpt)])
    assert result.exit_code == 0, result.output
    final = [line for line in result.output.splitlines() if line.startswith("final:")]
    assert len(final) == 1
    fields = dict(kv.split("=") for kv in final[0].split()[1:])
    assert fields["algorithm"] == "pp-prop" and float(fields["test_acc"]) > 0.6
    # a diverging run fails and leaves the good checkpoint as it was; a checkpoint never goes into the artifact
    good = ckpt.read_bytes()
    result = CliRunner().invoke(main, ["train", str(artifact), "--task", "digits", "--epochs", "1", "--lr", "1e38",
                                       "--checkpoint", str(ckpt)])
    assert result.exit_code == 1 and "diverged" in result.output, result.output
    assert ckpt.read_bytes() == good
    manifest = (artifact / "manifest.json").read_bytes()
    result = CliRunner().invoke(main, ["train", str(artifact), "--epochs", "1", "--checkpoint",
                                       str(artifact / "manifest.json")])
    assert result.exit_code == 1 and "inside the artifact directory" in result.output, result.output
    assert (artifact / "manifest.json").read_bytes() == manifest
    assert ckpt.exists()


def test_dialect_irdl_export(tmp_path):
    out = tmp_path / "btc.irdl.mlir"
    result = CliRunner().invoke(main, ["dialect", "--irdl", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("irdl.dialect @btc {")


def test_cli_errors_are_one_line_and_clear(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["compile", EXAMPLE, "--algorithm", "rtrl", "-o", str(tmp_path / "a")])
    assert result.exit_code == 2 and "Invalid value for '--algorithm'" in result.output
    result = runner.invoke(main, ["compile", str(tmp_path / "none.py"), "-o", str(tmp_path / "a")])
    assert result.exit_code == 1 and "model file" in result.output and "does not exist" in result.output
    result = runner.invoke(main, ["compile", EXAMPLE + ":nothing", "-o", str(tmp_path / "a")])
    assert result.exit_code == 1 and "has no function 'nothing'" in result.output
    result = runner.invoke(main, ["train", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not (tmp_path / "a").exists()


def test_compile_accepts_a_model_file_with_dataclasses(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("from __future__ import annotations\nfrom dataclasses import dataclass\n"
                     "from btc.frontend.zoo import recurrent_lif\n\n@dataclass\nclass Size:\n    hidden: int = 16\n\n"
                     "def build():\n    return recurrent_lif(inputs=64, hidden=Size().hidden, classes=10)\n")
    result = CliRunner().invoke(main, ["compile", str(model), "--batch", "4", "--chunk", "5", "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("example", ["lif_digits.py", "qif_digits.py", "ei_coba_cue.py", "alif_dms.py"])
def test_every_example_compiles(example, tmp_path):
    result = CliRunner().invoke(main, ["compile", os.path.join(os.path.dirname(EXAMPLE), example), "--batch", "2",
                                       "--chunk", "5", "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- btc opt
@pytest.mark.parametrize("name, options", [
    ("recurrent_expon", dict(algorithm="hybrid", rank=2, projection_algorithms={"h_to_out": "d-rtrl"},
                             grad_clip=0.3, weight_decay=0.01)),
    ("one_layer_delta", dict(algorithm="bptt", optimizer="sgd")),
])
def test_opt_replays_an_artifacts_pipeline_byte_for_byte(name, options, tmp_path):
    """The manifest's pipeline, run by `btc opt` on the dumped input IR and compiled by IREE, gives the
    artifact's model.vmfb again, byte for byte."""
    from btc.driver import CompileOptions, compile_network
    from btc.passes import parse_pipeline, pipeline_text
    from nets import NETWORKS

    out, dump = tmp_path / "artifact", tmp_path / "ir"
    manifest = compile_network(NETWORKS[name](), CompileOptions(batch=2, chunk=4, **options), str(out), str(dump))
    assert pipeline_text(parse_pipeline(manifest["pipeline"])) == manifest["pipeline"]
    replay = tmp_path / "replay.vmfb"
    result = CliRunner().invoke(main, ["opt", str(dump / "00-input.mlir"), "--pipeline", manifest["pipeline"],
                                       "--emit", "vmfb", "--target", "llvm-cpu", "-o", str(replay)])
    assert result.exit_code == 0, result.output
    assert replay.read_bytes() == (out / "model.vmfb").read_bytes()
    # the same pipeline taken from the artifact; the IR equals the dumped last stage
    result = CliRunner().invoke(main, ["opt", str(dump / "00-input.mlir"), "--pipeline-from", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == (dump / "08-btc-check-lowered.mlir").read_text()
    # an intermediate stage replays from there: the remaining passes only
    rest = pipeline_text(parse_pipeline(manifest["pipeline"])[6:])
    assert rest.startswith("btc-lower-to-linalg{")
    result = CliRunner().invoke(main, ["opt", str(dump / "06-btc-rewrite-online.mlir"), "--pipeline", rest,
                                       "--emit", "vmfb", "-o", str(replay)])
    assert result.exit_code == 0, result.output
    assert replay.read_bytes() == (out / "model.vmfb").read_bytes()


def test_opt_errors_are_one_line_and_clear(tmp_path):
    source = os.path.join(os.path.dirname(__file__), "passes", "btc-analyse", "feedforward_order.mlir")
    runner = CliRunner()
    result = runner.invoke(main, ["opt", source, "--pipeline", "btc-analyse,btc-frobnicate"])
    assert result.exit_code == 1 and "unknown pass 'btc-frobnicate'; known passes: btc-verify" in result.output
    result = runner.invoke(main, ["opt", source, "--pipeline", "btc-analyse", "--emit", "vmfb"])
    assert result.exit_code == 1 and "--emit vmfb writes binary: name the file with -o FILE.vmfb" in result.output
    result = runner.invoke(main, ["opt", source, "--pipeline", "btc-analyse", "--emit", "vmfb",
                                  "-o", str(tmp_path / "m.vmfb")])
    assert result.exit_code == 1 and "--emit vmfb needs a lowered module" in result.output
    assert not (tmp_path / "m.vmfb").exists()
    result = runner.invoke(main, ["opt", str(tmp_path / "none.mlir")])
    assert result.exit_code != 0 and "none.mlir" in result.output
    (tmp_path / "bad.mlir").write_text("module {\n  %x = \n}\n")
    result = runner.invoke(main, ["opt", str(tmp_path / "bad.mlir")])
    assert result.exit_code == 1 and "could not parse btc module" in result.output
    result = runner.invoke(main, ["opt", source, "--pipeline-from", str(tmp_path)])
    assert result.exit_code == 1 and "cannot read the manifest" in result.output

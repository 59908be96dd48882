"""Pipeline text: `pipeline_text` and `parse_pipeline` are inverses for every option type the passes use."""
import math
import random
import struct

import pytest

from btc.driver import CompileOptions
from btc.errors import BtcError
from btc.passes import PASSES, get_pass, parse_pipeline, pipeline_text


@pytest.mark.parametrize("options", [
    CompileOptions(),
    CompileOptions(algorithm="bptt", optimizer="sgd"),
    CompileOptions(algorithm="hybrid", rank=2, decay_post=0.1 + 0.2, bias_correction=False, trace_memory_budget=12345,
                   projection_algorithms={"a": "d-rtrl", "b c": "pp-prop", 'q"{},=x\\': "d-rtrl", "": "pp-prop"},
                   update_every=3, grad_clip=1e-300, weight_decay=5e-324),
])
def test_compile_pipelines_round_trip(options):
    passes = options.pipeline()
    text = pipeline_text(passes)
    assert parse_pipeline(text) == passes
    assert pipeline_text(parse_pipeline(text)) == text


def test_floats_round_trip_exactly():
    rng = random.Random(0)
    for _ in range(500):
        value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isnan(value):
            continue
        p = get_pass("btc-plan-traces", decay_pre=value)
        (back,) = parse_pipeline(pipeline_text([p]))
        assert back.decay_pre == value and math.copysign(1, back.decay_pre) == math.copysign(1, value)


def test_text_form():
    p = get_pass("btc-plan-traces", algorithm="hybrid", decay_pre=0.5, correction=False, overrides=("p=d-rtrl", "a b"))
    assert pipeline_text([get_pass("btc-verify"), p]) == (
        'btc-verify,btc-plan-traces{algorithm=hybrid decay_pre=0.5 decay_post=0.9 correction=false budget=0 '
        'overrides={p=d-rtrl,"a b"}}')
    # whitespace, MLIR-style hyphenated option names, and omitted options (their defaults) are accepted
    assert parse_pipeline(" btc-verify ,btc-plan-traces{ decay-pre=0.5 overrides={ x=d-rtrl , y } } ") == [
        get_pass("btc-verify"), get_pass("btc-plan-traces", decay_pre=0.5, overrides=("x=d-rtrl", "y"))]
    assert parse_pipeline("") == []


def test_pipelines_printed_before_this_grammar_still_parse():
    old = "btc-plan-traces{algorithm=pp-prop decay_pre=0.9 decay_post=0.9 correction=True budget=0 overrides=('a=b',)}"
    assert parse_pipeline(old) == [get_pass("btc-plan-traces", overrides=("a=b",))]


@pytest.mark.parametrize("text, message", [
    ("btc-foo", "unknown pass 'btc-foo'; known passes: " + ", ".join(PASSES)),
    ("btc-verify,", "expected a pass name; known passes:"),
    ("btc-verify btc-analyse", "expected ',' between passes"),
    ("btc-plan-traces{decay=0.9}", "btc-plan-traces: unknown option 'decay'; options: algorithm, decay_pre, decay_post, "
                                   "correction, budget, overrides"),
    ("btc-verify{x=1}", "btc-verify: unknown option 'x'; options: (none)"),
    ("btc-plan-traces{decay_pre=abc}", "btc-plan-traces: option decay_pre=abc: expected a float"),
    ("btc-plan-traces{budget=1.5}", "btc-plan-traces: option budget=1.5: expected an integer"),
    ("btc-plan-traces{correction=maybe}", "btc-plan-traces: option correction=maybe: expected a bool: true or false"),
    ("btc-plan-traces{overrides=a=b}", "btc-plan-traces: option overrides=a=b: expected a list {item,item,...}"),
    ("btc-lower-to-linalg{optimizer={a,b}}", "btc-lower-to-linalg: option optimizer={a,b}: expected a single str, "
                                             "not a list"),
    ("btc-plan-traces{algorithm=rtrl}", "btc-plan-traces: option algorithm=rtrl: expected one of ['pp-prop', "
                                        "'d-rtrl', 'hybrid', 'bptt']"),
    ("btc-plan-traces{algorithm=}", "btc-plan-traces: option algorithm has no value"),
    ("btc-plan-traces{budget=1 budget=2}", "btc-plan-traces: option 'budget' given twice"),
    ("btc-plan-traces{budget=1", "missing '}' after the options of btc-plan-traces"),
    ('btc-plan-traces{overrides={"a}}', "unterminated or malformed quoted string"),
])
def test_bad_pipeline_text_names_what_is_wrong(text, message):
    with pytest.raises(BtcError) as e:
        parse_pipeline(text)
    assert message in str(e.value)


def test_get_pass_refuses_an_unknown_option():
    with pytest.raises(BtcError, match=r"btc-lower-to-linalg: unknown option 'optimiser'; options: optimizer, "):
        get_pass("btc-lower-to-linalg", optimiser="adam")

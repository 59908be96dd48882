"""The btc dialect: declarations, typed builders and accessors, print/parse round trip, IRDL export
checked by iree-opt."""
import re

import pytest
from iree.compiler import ir

from btc.dialect import (OP_CLASSES, OPS, GroupOp, ProjectionOp, SpikeOp, TraceOp, UpdatePreTraceOp, new_context,
                         parse_module, typed, verify_module, verify_op)
from btc.dialect.irdl import irdl_text, verify_with_iree_opt
from btc.errors import BtcError
from btc.frontend.emit import emit_module
from btc.passes import default_pipeline, run_pipeline
from nets import NETWORKS


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_round_trip_print_parse(name):
    module = parse_module(emit_module(NETWORKS[name](), 2, 4))
    verify_module(module)
    assert str(parse_module(str(module))) == str(module)


def test_every_op_is_in_the_irdl_description():
    text = irdl_text()
    for name in OPS:
        if name != "btc.yield":
            assert f"irdl.operation @{name.removeprefix('btc.')} {{" in text


def test_iree_opt_accepts_modules_at_every_btc_stage():
    """The frontend's module and the module after analysis, derivatives, traces and the schedule."""
    module = parse_module(emit_module(NETWORKS["shared_input_mse"](), 2, 4))
    verify_with_iree_opt(str(module))
    run_pipeline(module, default_pipeline()[:6])  # up to btc-rewrite-online
    text = str(module)
    assert "btc.schedule" in text and "btc.derivatives" in text and "btc.trace" in text
    verify_with_iree_opt(text)


def test_iree_opt_rejects_a_missing_attribute():
    text = emit_module(NETWORKS["one_layer_delta"](), 2, 4).replace(', surrogate = "sigmoid"', "", 1)
    with pytest.raises(BtcError, match='btc.spike.*attribute "surrogate" is expected'):
        verify_with_iree_opt(text)


def test_iree_opt_rejects_a_wrong_operand_count():
    text = emit_module(NETWORKS["one_layer_delta"](), 2, 4)
    text = text.replace('"btc.stop_gradient"(%t5) : (f32) -> f32', '"btc.stop_gradient"(%t5, %t5) : (f32, f32) -> f32', 1)
    assert "(%t5, %t5)" in text
    with pytest.raises(BtcError, match="btc.stop_gradient"):
        verify_with_iree_opt(text)


def test_btc_verifier_rejects_what_irdl_cannot_state():
    """Region arity is checked by btc's own verifier (IRDL has no such constraint)."""
    text = emit_module(NETWORKS["one_layer_delta"](), 2, 4).replace('states = ["v"]', 'states = ["v", "w"]')
    with pytest.raises(BtcError, match=r"btc.group h: has 2 states but 1 initial values"):
        verify_module(parse_module(text))


def test_iree_opt_rejects_an_attribute_of_the_wrong_kind():
    """The IRDL constrains each attribute's kind: a size given as a string is refused by iree-opt."""
    text = emit_module(NETWORKS["one_layer_delta"](), 2, 4)
    bad = re.sub(r"size = (\d+) : i64", r'size = "\1"', text, count=1)
    assert bad != text
    wrong_kind = "(?s)expected base attribute 'builtin.integer' but got 'builtin.string'.*btc.input"
    with pytest.raises(BtcError, match=wrong_kind):
        verify_with_iree_opt(bad)
    bad = text.replace('surrogate = "sigmoid"', 'surrogate = "gauss"', 1)
    with pytest.raises(BtcError, match='(?s)"gauss"\' does not satisfy the constraint.*btc.spike'):
        verify_with_iree_opt(bad)


def test_every_op_has_a_typed_class_named_after_it():
    assert set(OP_CLASSES) == set(OPS)
    assert OP_CLASSES["btc.update_pre_trace"] is UpdatePreTraceOp and UpdatePreTraceOp.__name__ == "UpdatePreTraceOp"
    assert OP_CLASSES["btc.group"] is GroupOp and OP_CLASSES["btc.trace"] is TraceOp


def test_typed_build_writes_typed_attributes_and_reads_them_back():
    with new_context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            t = TraceOp.build(sym_name="e", kind="post", of="h", delay=0, size=3, num_states=2, decay=0.5,
                              rows=None, correction=True)
            p = ProjectionOp.build(sym_name="p", pre="x", post="h", recurrent=False, bias=True)
        attrs = t.operation.attributes
        assert isinstance(attrs["size"], ir.IntegerAttr) and str(attrs["size"].type) == "i64"
        assert isinstance(attrs["decay"], ir.FloatAttr) and str(attrs["decay"].type) == "f64"
        assert isinstance(attrs["of"], ir.FlatSymbolRefAttr) and isinstance(attrs["correction"], ir.BoolAttr)
        assert "rows" not in attrs and "port" not in attrs  # None: left out
        w = typed(t.operation)
        assert isinstance(w, TraceOp) and (w.size, w.of, w.decay, w.correction) == (3, "h", 0.5, True)
        assert (w.rows, w.param, w.port) == (0, "", "y")  # the declared defaults of absent attributes
        assert (p.port, p.sign, p.delay, p.pre) == ("y", 0, 0, "x")
        for op in module.body.operations:  # each matches its declaration (the symbols are dangling here)
            verify_op(op)


def test_typed_build_refuses_unknown_missing_and_mistyped_attributes():
    with new_context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            with pytest.raises(BtcError, match="btc.projection: unknown attribute 'init_scale'"):
                ProjectionOp.build(sym_name="p", pre="x", post="h", recurrent=False, bias=True, init_scale=1.0)
            with pytest.raises(BtcError, match="btc.projection: missing attribute 'bias' \\(bool\\)"):
                ProjectionOp.build(sym_name="p", pre="x", post="h", recurrent=False)
            with pytest.raises(BtcError, match="btc.trace: attribute 'size': expected int, got '3'"):
                TraceOp.build(sym_name="e", kind="pre", of="x", delay=0, size="3", num_states=1, decay=0.5)
            with pytest.raises(BtcError, match="btc.spike: attribute 'surrogate' is 'gauss'; expected one of"):
                SpikeOp.build(surrogate="gauss", slope=1.0)
        with pytest.raises(BtcError, match=r"unknown op func.func; the btc dialect has \['btc.accumulate"):
            typed(parse_module("func.func private @f()").body.operations[0])

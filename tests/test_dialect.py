"""The btc dialect: declarations, print/parse round trip, IRDL export checked by iree-opt."""
import pytest

from btc.dialect import OPS, parse_module, verify_module
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
    run_pipeline(module, default_pipeline()[:5])
    text = str(module)
    assert "btc.schedule" in text and "btc.derivatives" in text and "btc.trace" in text
    verify_with_iree_opt(text)


def test_iree_opt_rejects_a_missing_attribute():
    text = emit_module(NETWORKS["one_layer_delta"](), 2, 4).replace('surrogate = "sigmoid", ', "", 1)
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

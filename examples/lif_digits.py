"""A recurrent LIF network with exponential (AlignPost) synapses for the rate-coded 8x8 digits.

    btc compile examples/lif_digits.py --algorithm pp-prop --batch 32 --chunk 20 -o build/digits
    btc train build/digits --task digits --epochs 10

The network is written out in btc/frontend/zoo.py; a model file only has to return a Network.
"""
from btc.frontend.zoo import recurrent_lif


def build(hidden: int = 128):
    return recurrent_lif(inputs=64, hidden=hidden, classes=10)

"""A convolutional spiking network for the rate-coded 8x8 digits: the image as a (1, 8, 8) map, a 3x3
convolution into 8 maps of LIF neurons, a 2x2 sum pool of their spikes and a 3x3 convolution into 16
maps, then a dense readout. The kernels are shared across positions and learn online like any weights.

    btc compile examples/conv_digits.py --algorithm pp-prop --batch 32 --chunk 20 -o build/conv
    btc train build/conv --task digits --epochs 10
"""
import math

from btc.frontend import LIF, Conv, Expon, Network, Pool


def build(channels: int = 8):
    net = Network(seed=0)
    net.input("x", 64)
    c1 = Conv((1, 8, 8), channels, 3, padding=1)
    net.group("maps1", math.prod(c1.out_shape()), LIF(tau=20.0, synapse=Expon(5.0)))
    net.project("x", "maps1", connectivity=c1, bias=True, init=4.0)
    c2 = Conv(c1.out_shape(), 2 * channels, 3, padding=1, pool=Pool(2))
    net.group("maps2", math.prod(c2.out_shape()), LIF(tau=20.0, synapse=Expon(5.0)))
    net.project("maps1", "maps2", connectivity=c2, bias=True, init=2.0)
    net.readout("out", 10, tau=20.0)
    net.project("maps2", "out")
    net.set_loss("cross_entropy", "out")
    return net

"""A spiking network wired by a fly connectome, trained online to reproduce a hidden teacher's
region-averaged activity (the whole-brain experiment of the pp-prop paper, at its size).

    btc compile examples/fly_connectome.py --batch 1 --chunk 50 -o build/fly
    btc train build/fly --task connectome --epochs 10 --steps 1000 --lr 0.005

`build()`: the synthetic connectome (135,000 neurons, about 3.1 million connections, 78 regions,
heavy-tailed degrees), or the FlyWire Codex export when BTC_FLYWIRE names its connections.csv[.gz]
(BTC_FLYWIRE_NEURONS: an optional neuron table with root_id and a region column; connections of
5 or more synapses; weight_scale may need retuning: its synapse counts are larger).
`small()`: 3,000 neurons in 10 regions, for a quick run.
"""
import os

from btc.frontend.connectome import load_flywire, synthetic_connectome
from btc.frontend.zoo import connectome_lif

WEIGHT_SCALE = 0.06  # x synapse count; the synthetic network is active (a few % per step) and stable here


def build():
    path = os.environ.get("BTC_FLYWIRE")
    if path:
        conn = load_flywire(path, os.environ.get("BTC_FLYWIRE_NEURONS"), min_syn_count=5)
    else:
        conn = synthetic_connectome(135_000, 3_000_000, regions=78, seed=0)
    return connectome_lif(conn, weight_scale=WEIGHT_SCALE)


def small():
    return connectome_lif(synthetic_connectome(3_000, 70_000, regions=10, seed=0), weight_scale=WEIGHT_SCALE)

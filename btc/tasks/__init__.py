"""Tasks that need no download: data generators and the online training loop that uses them.

Imports only numpy (and scikit-learn for its bundled digits), so trained artifacts can be driven
without the compiler.
"""
from btc.tasks.cue import CueAccumulationTask
from btc.tasks.digits import DigitsTask
from btc.tasks.dms import DelayedMatchTask
from btc.tasks.train import TASKS, evaluate, get_task, train

__all__ = ["DigitsTask", "CueAccumulationTask", "DelayedMatchTask", "TASKS", "get_task", "train", "evaluate"]

"""The network description: inputs, neuron groups, projections, a readout and a loss.

Every builder call validates its arguments at once, so a mistake is reported where it was made,
naming the group or projection; `Network.check()` validates the whole (one loss, no feed-forward
cycle, every group reachable by the loss).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from btc.errors import BtcError
from btc.frontend.connectivity import Connectivity, Normal, connectivity_of, weights_at_pairs
from btc.frontend.neurons import LIF, NEURONS
from btc.frontend.synapses import PreSynapse

__all__ = ["Network", "Input", "Group", "Readout", "Projection", "Loss", "Normal", "LOSSES"]

LOSSES = ("cross_entropy", "mse")
# A step of delay is a buffer carried through the time loop (delay=500 did not compile in 300 s): README, "Semantics"
MAX_DELAY = 64
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Input:
    name: str
    size: int
    binary: bool = True  # a spike train: enables trace and matmul specialisations


@dataclass(frozen=True)
class Group:
    name: str
    size: int
    neuron: object  # one of btc.frontend.neurons.NEURONS
    trainable: tuple[str, ...] = ()  # per-neuron parameters learned with their exact traces
    dale: str | None = None  # "exc" | "inh": the sign (CUBA) or receptor (COBA) of its outgoing projections
    driven_by: str | None = None  # AlignPre synapses: the input or group whose spikes drive it one-to-one

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(f"{self.name}.{p}" for p in self.trainable)

    @property
    def model(self) -> str:
        if isinstance(self.neuron, PreSynapse):
            return f"pre_{type(self.neuron.synapse).__name__.lower()}"
        return getattr(self.neuron, "name", None) or type(self.neuron).__name__.lower()


@dataclass(frozen=True)
class Readout:
    """Leaky integrator `r = kappa*r + y`, `kappa = exp(-dt/tau)`; it is a group without spikes.
    tau = 0 makes it memoryless (`r = y`)."""

    name: str
    size: int
    tau: float


@dataclass(frozen=True)
class Projection:
    """`y_post[port] += pre(t - lag) @ W (+ b)`; lag = delay (+1 if recurrent: spikes of step t-1).
    sign = +1/-1 constrains the weights (Dale's law): W = sign * |W_raw|; 0 leaves them free."""

    name: str
    pre: str
    post: str
    recurrent: bool
    bias: bool
    init: Normal
    weights: np.ndarray | None = None  # explicit initial W, [pre size, post size]
    port: str = "y"
    sign: int = 0
    delay: int = 0  # synaptic delay in whole time steps
    connectivity: Connectivity | None = None  # sparse: only these pairs have weights (W is [nnz])
    frozen: bool = False  # trainable=False: its weights stay as initialised (no traces, no gradient)
    biases: np.ndarray | None = None  # explicit initial b, [post size] (zeros if None; set by importers)

    @property
    def lag(self) -> int:
        return self.delay + (1 if self.recurrent else 0)

    @property
    def params(self) -> tuple[str, ...]:
        return (f"{self.name}.W",) + ((f"{self.name}.b",) if self.bias else ())


@dataclass(frozen=True)
class Loss:
    kind: str
    readout: str


@dataclass
class Network:
    """A spiking network to compile. `dt` is in ms; `seed` fixes the initial weights."""

    dt: float = 1.0
    seed: int = 0
    inputs: dict[str, Input] = field(default_factory=dict)
    groups: dict[str, Group | Readout] = field(default_factory=dict)
    projections: dict[str, Projection] = field(default_factory=dict)
    loss: Loss | None = None

    def __post_init__(self):
        if not isinstance(self.dt, (int, float)) or not math.isfinite(self.dt) or not self.dt > 0:
            raise BtcError(f"Network: dt must be a positive number of ms, got {self.dt!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise BtcError(f"Network: seed must be an integer >= 0, got {self.seed!r}")

    # ---- builders
    def input(self, name: str, size: int, binary: bool = True) -> str:
        self._new_name(name, "input")
        self.inputs[name] = Input(name, _size("input", name, size), bool(binary))
        return name

    def group(self, name: str, size: int, neuron=None, trainable=(), dale: str | None = None) -> str:
        """`neuron`: LIF (default), IF, ALIF, GIF, Izhikevich or a CustomNeuron. `trainable` names
        per-neuron parameters to learn (e.g. ("tau", "theta")); each becomes a parameter
        `<group>.<name>` of shape [size], learned under every algorithm with its exact trace.
        `dale="exc"|"inh"` makes it an excitatory or inhibitory population (Dale's law): its
        outgoing weights keep their sign (CUBA targets) or go to the matching receptor (COBA)."""
        self._new_name(name, "group")
        neuron = LIF() if neuron is None else neuron
        if not isinstance(neuron, NEURONS):
            raise BtcError(f"group {name!r}: neuron must be one of {[n.__name__ for n in NEURONS]}, "
                           f"got {type(neuron).__name__}")
        trainable = (trainable,) if isinstance(trainable, str) else tuple(trainable)
        for p in trainable:
            if p not in neuron.ELEMENTWISE:
                raise BtcError(f"group {name!r}: {p!r} is not a per-neuron parameter of {type(neuron).__name__}; "
                               f"trainable ones: {list(neuron.ELEMENTWISE)}")
        if len(set(trainable)) != len(trainable):
            raise BtcError(f"group {name!r}: trainable lists a parameter twice: {list(trainable)}")
        if dale not in (None, "exc", "inh"):
            raise BtcError(f"group {name!r}: dale must be 'exc', 'inh' or None, got {dale!r}")
        names = list(neuron.state_names(self.dt)) + list(trainable)
        for kind, items in (("state", neuron.state_names(self.dt)), ("port", neuron.ports), ("parameter", trainable)):
            bad = [n for n in items if not isinstance(n, str) or not _NAME.match(n)]
            if bad:
                raise BtcError(f"group {name!r}: {kind} name {bad[0]!r} must be an identifier (letters, digits, _; "
                               "a letter first)")
        if len(set(names)) != len(names):
            raise BtcError(f"group {name!r}: state and parameter names must differ, got {names}")
        self.groups[name] = Group(name, _size("group", name, size), neuron, trainable, dale)
        return name

    def readout(self, name: str, size: int, tau: float = 10.0) -> str:
        self._new_name(name, "readout")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 0:
            raise BtcError(f"readout {name!r}: tau must be a number of ms >= 0 (0: memoryless), got {tau!r}")
        self.groups[name] = Readout(name, _size("readout", name, size), float(tau))
        return name

    def project(self, pre: str, post: str, *, recurrent: bool = False, bias: bool | None = None,
                init: Normal | float = 1.0, name: str | None = None, weights=None, port: str | None = None,
                sign: str | int | None = None, delay: int = 0, synapse=None, connectivity=None,
                trainable: bool = True) -> str:
        """`port`: the postsynaptic entry point (COBA: "exc" or "inh"); `sign`: "+"/"-" (or +1/-1)
        keeps every weight of that sign through training; `delay`: whole time steps.
        `synapse` (Expon, Alpha, DualExp or STP) makes the projection AlignPre: the synaptic state
        lives on the presynaptic neurons (shared by every projection from `pre` with the same synapse)
        and the weights multiply its output instead of the spikes.
        `connectivity` makes the projection sparse: a connection probability (float or
        FixedProbability), (pre_index, post_index) arrays, a boolean [pre, post] mask or a
        scipy.sparse matrix. Only the connected pairs have weights: `<name>.W` is then a vector, one
        entry per pair in (pre, post) order, and `weights=` may give it as such a vector, a dense
        [pre, post] array or a scipy.sparse matrix (read at the pairs); `Conv(...)`: a convolution (its kernel).
        `trainable=False` keeps W (and b) as initialised: no traces, no gradient (a fixed input map,
        a fixed readout such as region averages)."""
        if not isinstance(trainable, (bool, np.bool_)):
            raise BtcError(f"projection {pre}->{post}: trainable must be True or False, got {trainable!r}")
        if synapse is None:
            return self._project(pre, post, recurrent, bias, init, name, weights, port, sign, delay, connectivity,
                                 trainable)
        if pre not in self.inputs and pre not in self.groups:
            raise BtcError(f"projection {pre}->{post}: unknown presynaptic {pre!r}")
        if isinstance(self.groups.get(pre), Readout):
            raise BtcError(f"projection {pre}->{post}: a readout emits no spikes and cannot drive a synapse")
        before = dict(self.groups)
        try:  # a refused projection leaves no synapse group behind
            syn = self._pre_synapse(pre, synapse)
            return self._project(syn, post, recurrent, bias, init, name or f"{pre}_to_{post}", weights, port, sign,
                                 delay, connectivity, trainable)
        except Exception:
            self.groups = before
            raise

    def _project(self, pre, post, recurrent, bias, init, name, weights, port, sign, delay, connectivity,
                 trainable) -> str:
        if pre not in self.inputs and pre not in self.groups:
            raise BtcError(f"projection {pre}->{post}: unknown presynaptic {pre!r}; known: "
                           f"{sorted(self.inputs) + sorted(self.groups)}")
        if post not in self.groups:
            raise BtcError(f"projection {pre}->{post}: unknown postsynaptic group {post!r}; known: "
                           f"{sorted(self.groups)}")
        if isinstance(self.groups.get(pre), Readout):
            raise BtcError(f"projection {pre}->{post}: a readout emits no spikes and cannot be presynaptic")
        if recurrent and pre in self.inputs:
            raise BtcError(f"projection {pre}->{post}: an input cannot be recurrent (only group spikes are)")
        name = name or f"{pre}_to_{post}"
        if name in self.projections:
            raise BtcError(f"projection {name!r} already exists; pass name= to add another")
        _check_name(name, "projection")
        init = Normal(float(init)) if isinstance(init, (int, float)) else init
        if not isinstance(init, Normal):
            raise BtcError(f"projection {name!r}: init must be a number or btc.frontend.Normal, got {init!r}")
        bias = isinstance(self.groups[post], Readout) if bias is None else bool(bias)
        port, sign = self._port_and_sign(name, pre, post, port, sign)
        if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
            raise BtcError(f"projection {name!r}: delay must be a whole number of steps >= 0, got {delay!r}")
        if delay > MAX_DELAY:
            raise BtcError(f"projection {name!r}: delay {delay} is longer than btc supports ({MAX_DELAY} steps: each "
                           "step of delay is a buffer carried through the time loop); use a longer dt")
        shape = (self.size(pre), self.size(post))
        conn = None
        if connectivity is not None:
            conn = connectivity_of(connectivity, shape, f"projection {name!r}", [self.seed, len(self.projections), 1])
        if weights is not None and conn is not None:
            weights = weights_at_pairs(f"projection {name!r}", weights, conn)
        elif weights is not None:
            weights = np.asarray(weights)
            expected = shape
            if weights.shape != expected:
                raise BtcError(f"projection {name!r}: weights have shape {list(weights.shape)}, expected "
                               f"{list(expected)} ({pre!r} has {expected[0]}, {post!r} has {expected[1]} neurons)")
            if weights.dtype.kind not in "iuf" or not np.all(np.isfinite(weights)):
                raise BtcError(f"projection {name!r}: weights must be finite numbers")
        if weights is not None:
            weights = weights.astype(np.float32)
            if sign and np.any(weights * sign < 0):
                raise BtcError(f"projection {name!r}: weights= has entries of the wrong sign for sign={sign:+d}")
        self.projections[name] = Projection(name, pre, post, bool(recurrent), bias, init, weights, port, sign,
                                            int(delay), conn, not trainable)
        return name

    def _pre_synapse(self, pre: str, synapse) -> str:
        """The AlignPre synapse group of `pre` with this synapse, created on first use."""
        neuron = PreSynapse(synapse)
        for g in self.groups.values():
            if isinstance(g, Group) and g.driven_by == pre and g.neuron == neuron:
                return g.name
        k = 0
        while f"{pre}_syn{k}" in self.groups or f"{pre}_syn{k}" in self.inputs:
            k += 1
        name = f"{pre}_syn{k}"
        # the synapse relays its neurons' type (Dale's law)
        self.groups[name] = Group(name, self.size(pre), neuron, dale=getattr(self.groups.get(pre), "dale", None),
                                  driven_by=pre)
        return name

    def _port_and_sign(self, name: str, pre: str, post: str, port, sign) -> tuple[str, int]:
        target = self.groups[post]
        ports = target.neuron.ports if isinstance(target, Group) else ("y",)
        dale = getattr(self.groups.get(pre), "dale", None)
        signs = {None: 0, "+": 1, "-": -1, 1: 1, -1: -1, 0: 0}
        if isinstance(sign, bool) or not isinstance(sign, (str, int, np.integer, type(None))) or sign not in signs:
            raise BtcError(f"projection {name!r}: sign must be '+', '-' or None, got {sign!r}")
        sign = signs[sign]
        if dale and dale in ports:  # COBA: the population's receptor; conductances are positive
            if port not in (None, dale):
                raise BtcError(f"projection {name!r}: {pre!r} is {dale} (Dale's law) but port={port!r}")
            port, dale_sign = dale, 1
        else:
            dale_sign = {"exc": 1, "inh": -1, None: 0}[dale]
            synapse = getattr(getattr(target, "neuron", None), "synapse", None)
            if dale_sign < 0 and getattr(synapse, "conductance", False):
                raise BtcError(f"projection {name!r}: {pre!r} is inh (Dale's law), but {post!r}'s "
                               f"{type(synapse).__name__} synapse is a conductance, which must stay positive; "
                               "project inhibitory populations onto a COBA synapse's inh port")
        if dale and sign and sign != dale_sign:
            raise BtcError(f"projection {name!r}: {pre!r} is {dale} (Dale's law), so its sign is {dale_sign:+d}, "
                           f"not {sign:+d}")
        sign = sign or dale_sign
        if port is None:
            if len(ports) > 1:
                raise BtcError(f"projection {name!r}: {post!r} has several input ports {list(ports)}; choose one "
                               "with port=")
            port = ports[0]
        if port not in ports:
            raise BtcError(f"projection {name!r}: {post!r} has no port {port!r}; ports: {list(ports)}")
        return port, sign

    def set_loss(self, kind: str, readout: str) -> None:
        if kind not in LOSSES:
            raise BtcError(f"unknown loss {kind!r}; expected one of {list(LOSSES)}")
        if not isinstance(self.groups.get(readout), Readout):
            raise BtcError(f"loss {kind}: {readout!r} is not a readout; readouts: "
                           f"{[g for g, v in self.groups.items() if isinstance(v, Readout)]}")
        if kind == "cross_entropy" and self.groups[readout].size < 2:
            raise BtcError(f"loss cross_entropy: readout {readout!r} has {self.groups[readout].size} class; "
                           "cross-entropy over one class is always 0 (use mse, or two or more classes)")
        self.loss = Loss(kind, readout)

    # ---- queries
    def size(self, name: str) -> int:
        return (self.inputs.get(name) or self.groups[name]).size

    def into(self, group: str) -> list[Projection]:
        return [p for p in self.projections.values() if p.post == group]

    def order(self) -> list[str]:
        """Groups in the order one time step computes them (feed-forward edges only)."""
        deps = {g: {p.pre for p in self.into(g) if p.lag == 0 and p.pre in self.groups}
                for g in self.groups}
        for g, grp in self.groups.items():
            if getattr(grp, "driven_by", None) in self.groups:
                deps[g].add(grp.driven_by)
        done: list[str] = []
        while len(done) < len(deps):
            ready = [g for g in deps if g not in done and deps[g] <= set(done)]
            if not ready:
                stuck = {g for g in deps if g not in done}
                while True:  # drop groups that only wait on the cycle: what is left is the cycle
                    downstream = {g for g in stuck if not any(g in deps[o] for o in stuck)}
                    if not downstream or downstream == stuck:
                        break
                    stuck -= downstream
                cycle = sorted(stuck)
                raise BtcError(f"feed-forward projections form a cycle among groups {cycle}; "
                               "mark one of them recurrent=True (it then reads spikes of step t-1)")
            done.extend(ready)
        return done

    def check(self) -> None:
        if self.loss is None:
            raise BtcError("network has no loss; call net.set_loss('cross_entropy'|'mse', readout)")
        if not self.inputs:
            raise BtcError("network has no input; call net.input(name, size)")
        order = self.order()
        owners: dict[str, str] = {}  # parameter name -> what declares it: names must not collide
        for p in self.projections.values():
            owners.update({n: f"projection {p.name!r}" for n in p.params})
        for g in order:
            for n in getattr(self.groups[g], "params", ()):
                if n in owners:
                    raise BtcError(f"group {g!r}: its learned parameter {n!r} has the name of a parameter of "
                                   f"{owners[n]}; rename the group, the parameter or the projection")
        for g in order:
            if not self.into(g) and not getattr(self.groups[g], "driven_by", None):
                raise BtcError(f"group {g!r} receives no projection; connect it with net.project(pre, {g!r})")
        reaches_loss = {self.loss.readout}
        grown = True
        while grown:  # to a fixed point: recurrent projections can lead back upstream
            before = len(reaches_loss)
            reaches_loss |= {p.pre for p in self.projections.values() if p.post in reaches_loss}
            reaches_loss |= {g.driven_by for g in self.groups.values()
                             if getattr(g, "driven_by", None) and g.name in reaches_loss}
            grown = len(reaches_loss) > before
        for g in order:
            if g not in reaches_loss:
                raise BtcError(f"group {g!r} has no path to the loss (readout {self.loss.readout!r}); "
                               "its weights would never learn")

    def init_params(self) -> dict[str, np.ndarray]:
        """Initial parameters, name -> float32 array; the same seed always gives the same arrays."""
        params: dict[str, np.ndarray] = {}
        for index, p in enumerate(self.projections.values()):
            rng = np.random.default_rng([self.seed, index])
            if p.weights is not None:
                params[f"{p.name}.W"] = p.weights.copy()
            elif p.connectivity is not None:
                params[f"{p.name}.W"] = p.init.sample_sparse(rng, p.connectivity)
            else:
                params[f"{p.name}.W"] = p.init.sample(rng, (self.size(p.pre), self.size(p.post)))
            if p.sign:  # W = sign * |W_raw|: start from weights of the right sign
                params[f"{p.name}.W"] = np.abs(params[f"{p.name}.W"]) * p.sign
            if p.bias:  # one per postsynaptic neuron, or per output channel of a convolution
                n = self.size(p.post) if p.connectivity is None else p.connectivity.n_biases
                params[f"{p.name}.b"] = np.zeros(n, np.float32) if p.biases is None else np.array(p.biases, np.float32)
        for g in self.order():
            grp = self.groups[g]
            for p in getattr(grp, "trainable", ()):
                params[f"{g}.{p}"] = np.full(grp.size, grp.neuron.param({}, p), np.float32)
        return params

    def readout_decay(self, name: str) -> float:
        tau = self.groups[name].tau
        return 0.0 if tau == 0 else math.exp(-self.dt / tau)

    def _new_name(self, name: str, what: str) -> None:
        _check_name(name, what)
        if name in self.inputs or name in self.groups:
            raise BtcError(f"{what} {name!r}: the name is already used")


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BtcError(f"{what} name {name!r} must be an identifier (letters, digits, _; a letter first)")


def _size(what: str, name: str, size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise BtcError(f"{what} {name!r}: size must be a positive integer, got {size!r}")
    return int(size)

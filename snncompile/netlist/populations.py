"""Netlist population kinds, one class each.

A population is a group of units a lowering places on the chip; what it computes is its
type. Every concern that must handle each kind (the simulators, quantization, the Lava,
ONNX and NIR emissions …) keeps a :class:`PopulationRegistry` keyed by these classes, and
``tests/netlist/test_population_registries.py`` fails when a kind lacks an entry. A new
kind is a new subclass here (its ``kind`` name registers it in :data:`POPULATION_TYPES`)
plus one entry per registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from snncompile.ir.dynamics import Dynamics, OrPool
from snncompile.ir.host import HostFn, Identity
from snncompile.ir.typeregistry import TypeRegistry

POPULATION_TYPES: dict[str, type[Population]] = {}      # kind name → class (serialisation, coverage)
POPULATION_REGISTRIES: dict[str, TypeRegistry] = {}


class MissingPopulation(NotImplementedError):
    """A population kind has no entry in a registry (a bug in snncompile, not a user error)."""


class PopulationRegistry(TypeRegistry):
    """Maps population classes to one function each for one concern."""

    key_kind = "population kind"
    missing_error = MissingPopulation

    def __init__(self, concern: str) -> None:
        super().__init__(concern, POPULATION_REGISTRIES)

    def universe(self) -> dict[str, type]:
        return dict(POPULATION_TYPES)


@dataclass(frozen=True)
class BiasMap:
    """A constant per-neuron input stored compactly: ``compact`` broadcasts to the
    population's logical ``shape`` (one value per channel where the bias is a folded layer
    bias), ``index`` the kept neurons (None: all). Expanded to one float64 per neuron on the
    first read of :attr:`Population.bias`: a paper-size network keeps tens of millions of
    neurons whose bias nothing reads unless it is simulated or emitted. ``source`` is the
    compact map, or a function computing it on its first read (an energy estimate's lowering
    reads no bias: see ``lower(lazy_bias=True)``)."""

    source: np.ndarray | Callable[[], np.ndarray]
    shape: tuple[int, ...]
    index: np.ndarray | None = None

    @property
    def compact(self) -> np.ndarray:
        if callable(self.source):
            object.__setattr__(self, "source", self.source())
        return self.source

    def full(self) -> np.ndarray:
        flat = np.empty(int(np.prod(self.shape)), dtype=np.float64)   # always a fresh array
        flat.reshape(self.shape)[...] = self.compact
        return flat if self.index is None else flat[self.index]

    def kept(self, index: np.ndarray) -> BiasMap:
        source = (lambda: self.compact) if callable(self.source) else self.source
        return BiasMap(source, self.shape, index if self.index is None else self.index[index])


@dataclass
class Population:
    """Units of one kind: ``size`` kept of the logical ``shape`` (``index`` lists the kept
    ones, None = all), with a constant drive ``bias`` per kept unit and ``depth`` synapse
    hops from the input."""

    kind: ClassVar[str]               # the kind's name in reports, JSON and ONNX metadata
    name: str
    size: int                         # kept units
    shape: tuple[int, ...]            # logical shape (removed units included)
    bias: np.ndarray | None = None    # constant input per step (folded biases), per kept unit
    depth: int = 0                    # synapse hops from the input (Lava latency)
    index: np.ndarray | None = None   # kept logical units (flat), None = all

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            if cls.kind in POPULATION_TYPES:
                raise ValueError(f"population kind {cls.kind!r} defined twice")
            POPULATION_TYPES[cls.kind] = cls

    @property
    def graded(self) -> bool:
        """Sends real values rather than spikes."""
        raise NotImplementedError

    @property
    def logical_size(self) -> int:
        return int(math.prod(self.shape))   # np.prod costs ~5 µs a call

    def expand(self, values: np.ndarray) -> np.ndarray:
        """[..., size] of kept units → [..., logical_size] with zeros for removed ones."""
        if self.index is None:
            return values
        full = np.zeros((*values.shape[:-1], self.logical_size), dtype=values.dtype)
        full[..., self.index] = values
        return full


def _bias(pop: Population) -> np.ndarray | None:
    b = pop.__dict__.get("_bias")
    if isinstance(b, BiasMap):
        b = pop.__dict__["_bias"] = b.full()
    return b


def _set_bias(pop: Population, value: np.ndarray | BiasMap | None) -> None:
    pop.__dict__["_bias"] = value


def bias_map(pop: Population) -> BiasMap | None:
    """The population's bias as stored, without expanding it (None once it is a plain array)."""
    b = pop.__dict__.get("_bias")
    return b if isinstance(b, BiasMap) else None


# a property over the dataclass field: __init__, replace() and repr() go through it; subclasses
# must not re-declare ``bias`` (their own field would hide the property)
Population.bias = property(_bias, _set_bias, doc="constant input per step, per kept unit (float64)")


@dataclass
class InputPopulation(Population):
    """The network's input: sends the input values of each step (real values)."""

    kind: ClassVar[str] = "input"

    @property
    def graded(self) -> bool:
        return True


@dataclass(kw_only=True)
class NeuronPopulation(Population):
    """Neurons: each step its drive (synapses + bias) advances ``params``' dynamics and it
    sends the spikes (or, for non-spiking dynamics, the membrane values)."""

    kind: ClassVar[str] = "neuron"
    params: Dynamics

    @property
    def graded(self) -> bool:
        return not self.params.spiking


@dataclass(kw_only=True)
class OrPopulation(NeuronPopulation):
    """OR neurons of a max-pool of spikes: spikes iff a spike reached it this step
    (:class:`~snncompile.ir.dynamics.OrPool` dynamics)."""

    kind: ClassVar[str] = "or"
    params: Dynamics = field(default_factory=OrPool)


@dataclass
class Operand:
    """One factor of a dynamic product: population ``src`` gathered by ``idx`` into ``shape``."""

    src: str
    idx: np.ndarray                   # logical indices into src, one per operand element
    shape: tuple[int, ...]
    delay: int = 0                    # steps to hold src's values so both factors align
    scale: float = 1.0                # constant factor (e.g. attention scale applied before ·V)


@dataclass(kw_only=True)
class ProductPopulation(Population):
    """The product of two populations' outputs each step (spike·spike attention scores):
    ``operands`` gathered into matrices and multiplied (``product`` "matmul") or
    element-wise (``product`` "hadamard"); sends real values."""

    kind: ClassVar[str] = "matmul"
    operands: list[Operand] = field(default_factory=list)
    product: str = "matmul"           # "matmul" | "hadamard"

    @property
    def graded(self) -> bool:
        return True


OFF_CORE = "needs the embedded CPU / host"


@dataclass(kw_only=True)
class HostPopulation(Population):
    """A host partition: runs ``fn`` (:mod:`snncompile.ir.host`) off the neuromorphic cores,
    on the chip's embedded CPU or the host. Its inputs are graded values: when ``driven``, its
    drive (Σ projections + bias, shaped ``in_shape``), else ``operands`` gathered from other
    populations; it sends ``fn``'s real values (0/1 for a keep mask). ``source``: the op's
    module path in the source model."""

    kind: ClassVar[str] = "host"
    fn: HostFn = field(default_factory=Identity)
    operands: list[Operand] = field(default_factory=list)
    in_shape: tuple[int, ...] = ()
    driven: bool = False
    source: str = ""

    @property
    def graded(self) -> bool:
        return not self.fn.binary_out()


def host_populations(net: object) -> list[HostPopulation]:
    """The host partitions of a netlist (for emissions that must refuse them by name)."""
    return [p for p in getattr(net, "populations", {}).values() if isinstance(p, HostPopulation)]


def host_refusal(pop: HostPopulation, where: str) -> str:
    """The message an emission that cannot run host partitions gives for ``pop``."""
    return (f"`{pop.name}` is a host partition ({pop.fn.describe()} at `{pop.source or pop.name}`), which {OFF_CORE}; "
            f"{where} runs only neuromorphic cores")


def window_refusal(pop: HostPopulation, where: str) -> str:
    """The message of a simulator or emission that steps one time step at a time, for a window
    host (a time barrier: it needs every step of its input before its first output)."""
    return (f"`{pop.name}` is a window host ({pop.fn.describe()} at `{pop.source or pop.name}`): a time barrier "
            f"that needs all T steps of its input before its first output; {where} runs one step at a time")


WINDOW_HINT = ("simulate with the reference (the energy target, or --check): it runs the network before the barrier "
               "for all T steps, then the host, then the network after it")


@dataclass(kw_only=True)
class DelayPopulation(Population):
    """Sends its drive of ``steps`` steps ago (per neuron if an array): a recurrent loop or
    a NIR Delay. ``relay``: the drive is one population's spikes, so it sends spikes."""

    kind: ClassVar[str] = "delay"
    steps: int | np.ndarray = 1
    relay: bool = False

    @property
    def graded(self) -> bool:
        return not self.relay

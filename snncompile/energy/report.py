"""The energy report as types: per-layer rows, totals per variant, storage, cost model.

``EnergyReport.to_dict()`` is the ``energy`` object of ``report.json`` (its keys are a
published format: tests and consumers read them). Energies are pJ per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snncompile.energy.costs import CostModel

VARIANTS = ("ann", "snn", "snn_binary", "bnn")
SPIKING = ("snn", "snn_binary")
CATEGORIES = ("mac", "synaptic", "neuron", "memory", "host")


def num(v: float | None) -> int | float | None:
    """JSON-friendly number: ints stay ints, integral floats become ints."""
    if v is None:
        return None
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2**63 else v


@dataclass
class Breakdown:
    """Energy (pJ) by category."""

    mac: float = 0.0
    synaptic: float = 0.0
    neuron: float = 0.0
    memory: float = 0.0
    host: float = 0.0                  # host partitions (off the cores): operations and boundary transfers

    @property
    def total(self) -> float:
        return float(self.mac + self.synaptic + self.neuron + self.memory + self.host)

    def add(self, other: Breakdown) -> None:
        # spelled out (CATEGORIES, test_report_categories): a sweep adds ~150 per ticket
        self.mac += other.mac
        self.synaptic += other.synaptic
        self.neuron += other.neuron
        self.memory += other.memory
        self.host += other.host

    def get(self, category: str) -> float:
        return float(getattr(self, category))

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in CATEGORIES}


@dataclass
class Priced:
    """A row's energy in each variant (None: not priced, e.g. an SNN without spikes)."""

    breakdown: dict[str, Breakdown | None] = field(default_factory=lambda: dict.fromkeys(VARIANTS))

    def energy(self, variant: str) -> float | None:
        b = self.breakdown.get(variant)
        return None if b is None else b.total

    def energy_dict(self) -> dict[str, float | None]:
        return {v: self.energy(v) for v in VARIANTS}

    def breakdown_dict(self) -> dict[str, dict[str, float] | None]:
        return {v: None if b is None else b.to_dict() for v, b in self.breakdown.items()}


@dataclass
class SynapticRow:
    """A Conv2d / Linear layer."""

    name: str
    op: str
    source: str
    role: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    input_spiking: bool
    synapses: int
    synapses_dense: int
    weights: int
    weights_nnz: int
    weight_bits: int
    binary_weights: bool
    macs: int                          # ANN MACs (0 for the synapses of OR neurons)
    macs_sparse: int
    sops: float | None
    snn_macs: float | None
    bops: int
    snn_weight_bits: int
    firing_rate_in: float | None
    input_spikes: float | None
    weight_format: dict[str, str]
    memory_bits: dict[str, int]
    priced: Priced
    neurons: int = 0
    weights_nonzero: int = 0
    ir_name: str = ""

    @property
    def synapse_sparsity(self) -> float | None:
        """1 − synapses / synapses_dense: (pre, post) pairs over output positions."""
        return None if not self.synapses_dense else 1.0 - self.synapses / self.synapses_dense

    @property
    def weight_sparsity(self) -> float | None:
        """1 − nonzero weights / weights of the layer's tensor (None for OR synapses: no user weights)."""
        return None if not self.weights or self.role == "or" else 1.0 - self.weights_nonzero / self.weights

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "ir_name": self.ir_name or self.name, "op": self.op, "source": self.source,
            "role": self.role, "synapse_sparsity": self.synapse_sparsity, "weight_sparsity": self.weight_sparsity,
            "weights_nonzero": self.weights_nonzero,
            "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
            "input": "spikes" if self.input_spiking else "real", "neurons": 0,
            "synapses": self.synapses, "synapses_dense": self.synapses_dense, "weights": self.weights,
            "weights_nnz": self.weights_nnz, "weight_bits": self.weight_bits,
            "binary_weights": self.binary_weights, "macs": self.macs, "macs_sparse": self.macs_sparse,
            "sops": num(self.sops), "snn_macs": num(self.snn_macs), "bops": self.bops,
            "snn_weight_bits": self.snn_weight_bits, "firing_rate_in": self.firing_rate_in,
            "input_spikes": num(self.input_spikes), "neuron_updates": 0,
            "weight_format": dict(self.weight_format), "memory_bits": dict(self.memory_bits),
            "energy_pj": self.priced.energy_dict(), "breakdown_pj": self.priced.breakdown_dict(),
        }


@dataclass
class NeuronRow:
    """A neuron population (or the OR neurons of a max-pool)."""

    name: str
    model: str
    reset: str
    source: str
    shape: tuple[int, ...]
    neurons: int
    firing_rate_out: float | None
    spikes: float | None
    neuron_updates: int
    role: str
    removed: int
    memory_bits: dict[str, int]
    priced: Priced
    ir_name: str = ""
    op: str = "neuron"
    synapses: int = 0
    synapses_dense: int = 0
    macs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "ir_name": self.ir_name or self.name, "op": "neuron", "model": self.model, "reset": self.reset, "source": self.source,
            "in_shape": list(self.shape), "out_shape": list(self.shape), "input": None,
            "neurons": self.neurons, "synapses": 0, "synapses_dense": 0, "macs": 0, "sops": None,
            "firing_rate_in": None, "firing_rate_out": self.firing_rate_out, "spikes": num(self.spikes),
            "neuron_updates": self.neuron_updates, "role": self.role, "removed": self.removed,
            "memory_bits": dict(self.memory_bits),
            "energy_pj": self.priced.energy_dict(), "breakdown_pj": self.priced.breakdown_dict(),
        }


@dataclass
class ProductRow:
    """A spike·spike product (attention): ACs on nonzero factor pairs, no synapses."""

    name: str
    mode: str                          # "matmul" | "hadamard"
    shape: tuple[int, ...]
    macs: int
    acs: float | None
    priced: Priced
    ir_name: str = ""
    role: str = ""
    neurons: int = 0
    synapses: int = 0
    synapses_dense: int = 0
    firing_rate_in: float | None = None

    @property
    def op(self) -> str:
        return self.mode

    @property
    def sops(self) -> float | None:
        return self.acs

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ir_name": self.ir_name or self.name, "op": self.mode, "role": "", "input": "spikes", "neurons": 0,
                "kind": "spike product (custom process, no synapses)", "binary_weights": False,
                "out_shape": list(self.shape), "macs": self.macs, "sops": num(self.acs), "acs": num(self.acs),
                "firing_rate_in": None, "synapses": 0, "synapses_dense": 0,
                "energy_pj": self.priced.energy_dict(), "breakdown_pj": self.priced.breakdown_dict()}


@dataclass
class ShortcutRow:
    """Weight-1 synapses between populations that cross no synaptic layer."""

    name: str
    synapses: int
    sops: float | None
    priced: Priced
    op: str = "shortcut"
    role: str = ""
    neurons: int = 0
    macs: int = 0
    firing_rate_in: float | None = None
    ir_name: str = ""

    @property
    def synapses_dense(self) -> int:
        return self.synapses

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ir_name": self.ir_name or self.name, "op": "shortcut", "role": "", "input": "spikes", "neurons": 0,
                "kind": "direct synapses between populations (residual shortcut / relay), weight 1",
                "binary_weights": False, "macs": 0, "sops": num(self.sops), "firing_rate_in": None,
                "synapses": self.synapses, "synapses_dense": self.synapses,
                "energy_pj": self.priced.energy_dict(), "breakdown_pj": self.priced.breakdown_dict()}


@dataclass
class HostRow:
    """A host partition (off the neuromorphic cores: the embedded CPU / host): its operations per
    sample over all steps and the values crossing the core/host boundary, priced in category
    ``host`` (:mod:`snncompile.energy.host`)."""

    name: str
    source: str
    fn: str
    shape: tuple[int, ...]
    macs: int
    comparisons: int
    transcendentals: int
    transfers: int
    parts_pj: dict[str, float]
    priced: Priced
    role: str = "host"
    neurons: int = 0
    synapses: int = 0
    synapses_dense: int = 0
    firing_rate_in: float | None = None
    sops: float | None = None
    ir_name: str = ""

    @property
    def op(self) -> str:
        return f"host:{self.fn}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ir_name": self.ir_name or self.name, "op": self.op, "role": "host", "input": "values", "neurons": 0,
                "kind": "host partition (off-core: needs the embedded CPU / host)", "binary_weights": False,
                "source": self.source, "out_shape": list(self.shape), "macs": self.macs,
                "comparisons": self.comparisons, "transcendentals": self.transcendentals,
                "transfers": self.transfers, "host_pj": dict(self.parts_pj), "sops": None,
                "firing_rate_in": None, "synapses": 0, "synapses_dense": 0, "off_core": True,
                "energy_pj": self.priced.energy_dict(), "breakdown_pj": self.priced.breakdown_dict()}


Row = SynapticRow | NeuronRow | ProductRow | ShortcutRow | HostRow


@dataclass
class AnnTotal:
    """The ANN twin: MACs and ReLU activations, one pass."""

    macs: int
    activations: int
    breakdown: Breakdown

    @property
    def energy_pj(self) -> float:
        return self.breakdown.total

    def to_dict(self) -> dict[str, Any]:
        return {"macs": int(self.macs), "activations": self.activations, "energy_pj": self.energy_pj,
                "breakdown_pj": self.breakdown.to_dict()}


@dataclass
class BnnTotal:
    """The binary ANN: XNOR-popcount BOPs on spike-input layers, MACs elsewhere."""

    bops: int
    macs: int
    ops: float                         # Bi-Real / ReActNet OPs: BOPs/64 + MACs (synaptic layers)
    activations: int
    breakdown: Breakdown

    @property
    def energy_pj(self) -> float:
        return self.breakdown.total

    def to_dict(self) -> dict[str, Any]:
        return {"bops": int(self.bops), "macs": int(self.macs), "ops": self.ops, "activations": self.activations,
                "energy_pj": self.energy_pj, "breakdown_pj": self.breakdown.to_dict()}


@dataclass
class SnnTotal:
    """A spiking variant: SOPs, MACs on real-valued input, neuron updates, spikes."""

    sops: int | float | None
    macs: int | float | None
    neuron_updates: int
    spikes: int | float | None
    breakdown: Breakdown
    shortcut_sops: int | float | None = None     # reported only if the network has shortcuts
    has_shortcuts: bool = False
    attention_acs: int | float | None = None     # reported only if it has spike products
    has_products: bool = False

    @property
    def energy_pj(self) -> float:
        return self.breakdown.total

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"sops": self.sops, "macs": self.macs, "neuron_updates": self.neuron_updates,
                             "spikes": self.spikes, "energy_pj": self.energy_pj,
                             "breakdown_pj": self.breakdown.to_dict()}
        if self.has_shortcuts:
            d["shortcut_sops"] = self.shortcut_sops
        if self.has_products:
            d["attention_acs"] = self.attention_acs
        return d


@dataclass
class Variants:
    ann: AnnTotal
    snn: SnnTotal | None
    snn_binary: SnnTotal | None
    bnn: BnnTotal

    def get(self, variant: str) -> AnnTotal | SnnTotal | BnnTotal | None:
        return getattr(self, variant)

    def energy(self, variant: str) -> float | None:
        t = self.get(variant)
        return None if t is None else t.energy_pj

    def to_dict(self) -> dict[str, dict | None]:
        return {v: None if self.get(v) is None else self.get(v).to_dict() for v in VARIANTS}


@dataclass
class Savings:
    """Energy ratios (> 1: the second variant needs less)."""

    snn_vs_ann: float | None
    snn_binary_vs_snn: float | None
    snn_binary_vs_ann: float | None
    bnn_vs_ann: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"snn_vs_ann": self.snn_vs_ann, "snn_binary_vs_snn": self.snn_binary_vs_snn,
                "snn_binary_vs_ann": self.snn_binary_vs_ann, "bnn_vs_ann": self.bnn_vs_ann}


@dataclass
class Storage:
    """Bits to store one variant: weights, biases, and activations (ANN/BNN) or membrane
    state and spikes (SNN variants)."""

    weights_bits: int
    bias_bits: int
    activation_bits: int | None = None
    state_bits: int | None = None
    spike_bits: int | None = None

    @property
    def total_bits(self) -> int:
        return int(sum(v for v in (self.weights_bits, self.bias_bits, self.activation_bits, self.state_bits,
                                   self.spike_bits) if v is not None))

    def to_dict(self) -> dict[str, int]:
        d = {"weights_bits": self.weights_bits, "bias_bits": self.bias_bits}
        if self.activation_bits is not None:
            d["activation_bits"] = self.activation_bits
        else:
            d["state_bits"] = int(self.state_bits or 0)
            d["spike_bits"] = int(self.spike_bits or 0)
        d["total_bits"] = self.total_bits
        return d


@dataclass
class EnergyReport:
    """The energy of one model in four variants, per layer, under a cost model."""

    model: str
    cost: CostModel
    mode: str                          # "exact" | "analytic" | "static"
    steps: int
    ann_sparse: bool
    mac_layers: list[str]
    binary_weight_layers: list[str]
    model_variant: str                 # "snn" | "snn_binary" | "mixed"
    variants: Variants
    savings: Savings
    memory: dict[str, Storage]
    layers: list[Row]
    notes: list[str]
    token_selection: Any = None        # energy.tokens.TokenSaving: what token selectors save

    @property
    def cost_model(self) -> str:
        return self.cost.name

    @property
    def source(self) -> str:
        return self.cost.source

    def sparsity(self) -> dict[str, Any]:
        """Totals of the table: synapses over every synaptic row (the ``synapses`` column),
        weights over the layers' own tensors (OR synapses excluded)."""
        syn = [r for r in self.layers if not isinstance(r, NeuronRow)]
        w = [r for r in self.layers if isinstance(r, SynapticRow) and r.weight_sparsity is not None]
        s, sd = sum(r.synapses for r in syn), sum(r.synapses_dense for r in syn)
        n, nz = sum(r.weights for r in w), sum(r.weights_nonzero for r in w)
        return {"synapses": s, "synapses_dense": sd, "synapse_sparsity": 1.0 - s / sd if sd else None,
                "weights": n, "weights_nonzero": nz, "weight_sparsity": 1.0 - nz / n if n else None,
                "macs": sum(r.macs for r in syn), "neurons": sum(r.neurons for r in self.layers),
                "layers": len(syn)}

    @property
    def unverified(self) -> list[str]:
        return sorted(set(self.cost.unverified) | set(self.cost.derived))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "cost_model": self.cost.name, "source": self.cost.source,
            "unverified": self.unverified, "cost": self.cost.describe(), "units": "pJ", "per": "sample",
            "mode": self.mode, "first_layer": "mac", "mac_layers": list(self.mac_layers), "steps": self.steps,
            "ann_sparse": bool(self.ann_sparse), "binary_weight_layers": list(self.binary_weight_layers),
            "model_variant": self.model_variant, "variants": self.variants.to_dict(),
            "savings": self.savings.to_dict(), "memory": {v: m.to_dict() for v, m in self.memory.items()},
            "layers": [r.to_dict() for r in self.layers], "totals": self.sparsity(), "notes": list(self.notes),
            **({"token_selection": self.token_selection.to_dict()} if self.token_selection is not None else {}),
        }

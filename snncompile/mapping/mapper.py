"""Greedy partition of each population onto cores of a chip profile.

Neurons of one population fill a core in order until the next neuron would exceed a
per-core limit: compartments, distinct input axons (presynaptic neurons feeding the core),
or synaptic memory (each synapse entry = weight bits + target index bits; convolutions
unrolled, binary synapses 1 bit). Output axons are checked afterwards: a neuron needs one
per distinct destination core. A neuron that alone exceeds a limit cannot be placed: that
is an error naming the layer, the limit and what would make it fit.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from snncompile import schema
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.netlist import (
    OFF_CORE,
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    PopulationRegistry,
    ProductPopulation,
    window_stages,
)

CHIPS_DIR = Path(__file__).parent / "chips"
LIMITS = ("neurons", "input_axons", "synapse_bits", "output_axons")


@dataclass(frozen=True)
class ChipProfile:
    name: str
    source: str
    cores_per_chip: int
    neurons_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    synapse_bits_per_core: int
    synapse_index_bits: int
    max_weight_bits: int = 8
    weight_sharing: bool = False
    unverified: tuple[str, ...] = ()


def load_chip(name_or_path: str) -> ChipProfile:
    path = Path(name_or_path)
    if not path.suffix:
        path = CHIPS_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CHIPS_DIR.glob("*.toml")))
        raise SnnCompileError(f"unknown chip profile {name_or_path!r}", f"use {known} or a TOML file",
                              EXIT_USAGE)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SnnCompileError(f"cannot parse chip profile {path}: {exc}", "fix the TOML syntax "
                              "(see snncompile/mapping/chips/loihi1.toml)", EXIT_USAGE) from None
    except OSError as exc:
        raise SnnCompileError(f"cannot read chip profile {path}: {exc.strerror}",
                              "check the path and its permissions", EXIT_USAGE) from None
    data = schema.validate(f"chip profile {path}", data, schema.CHIP, closed=True)
    data.setdefault("source", "")
    data["unverified"] = tuple(data.get("unverified", ()))
    return ChipProfile(**data)


@dataclass
class CoreUse:
    layer: str
    neurons: int
    input_axons: int
    synapse_bits: int
    output_axons: int = 0
    bound: str = ""

    def utilisation(self, chip: ChipProfile) -> dict[str, float]:
        return {"neurons": self.neurons / chip.neurons_per_core,
                "input_axons": self.input_axons / chip.input_axons_per_core,
                "synapse_bits": self.synapse_bits / chip.synapse_bits_per_core,
                "output_axons": self.output_axons / chip.output_axons_per_core}


@dataclass
class CoreMap:
    chip: ChipProfile
    cores: list[CoreUse] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)   # custom processes (not synapses)
    host: dict[str, str] = field(default_factory=dict)  # host partition → its op (needs the embedded CPU / host)
    labels: dict[str, str] = field(default_factory=dict)  # population → module path (reports)
    stages: int = 1   # > 1: window hosts (time barriers) split a run into stages (netlist.window_stages)

    @property
    def chips(self) -> int:
        return -(-len(self.cores) // self.chip.cores_per_chip)

    def layers(self) -> list[dict]:
        out: dict[str, dict] = {}
        for c in self.cores:
            row = out.setdefault(c.layer, {"layer": c.layer, "cores": 0, "neurons": 0, "synapse_bits": 0,
                                           "bound": {}})
            row["cores"] += 1
            row["neurons"] += c.neurons
            row["synapse_bits"] += c.synapse_bits
            row["bound"][c.bound] = row["bound"].get(c.bound, 0) + 1
        for row in out.values():
            row["binding_limit"] = max(row["bound"], key=row["bound"].get)
            util = [c.utilisation(self.chip) for c in self.cores if c.layer == row["layer"]]
            row["utilisation"] = {k: round(float(np.mean([u[k] for u in util])), 4) for k in LIMITS}
            del row["bound"]
        return list(out.values())

    def to_dict(self) -> dict:
        """Layers named by module path (``population``: the netlist's name)."""
        lab = self.labels.get
        layers = [{**r, "layer": lab(r["layer"], r["layer"]), "population": r["layer"]} for r in self.layers()]
        per_core = ("neurons_per_core", "input_axons_per_core", "output_axons_per_core", "synapse_bits_per_core",
                    "synapse_index_bits")
        return {"chip": self.chip.name, "source": self.chip.source, "unverified": list(self.chip.unverified),
                "limits": {k: {"value": getattr(self.chip, k),
                               "status": "unverified" if k in self.chip.unverified else "cited (source)"}
                           for k in per_core},
                "cores": len(self.cores), "chips": self.chips, "layers": layers,
                "unmapped": [lab(n, n) for n in self.unmapped],
                "off_core": {lab(name, name): f"{op}: {OFF_CORE}" for name, op in self.host.items()},
                **({"stages": {"count": self.stages, "schedule": "the cores run each stage for all T steps; "
                               "between stages the host computes the window hosts from every step"}}
                   if self.stages > 1 else {}),
                "per_core": [{"layer": lab(c.layer, c.layer), "population": c.layer, "neurons": c.neurons,
                              "input_axons": c.input_axons,
                              "synapse_bits": c.synapse_bits, "output_axons": c.output_axons,
                              "bound": c.bound} for c in self.cores]}


def _incoming(plan: Netlist, name: str, offsets: dict[str, int], total: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows = neurons of ``name``; columns = global presynaptic ids; and bits per entry."""
    blocks, bits = [], []
    size = plan.populations[name].size
    for proj in plan.into(name):
        w = proj.weights.tocsr().copy()
        w.eliminate_zeros()
        coo = w.tocoo()
        blocks.append(sp.csr_matrix((np.ones(coo.nnz), (coo.row, coo.col + offsets[proj.src])),
                                    shape=(size, total)))
        bits.append(proj.weight_bits)
    if not blocks:
        return sp.csr_matrix((size, total)), np.zeros(size)
    m = blocks[0]
    per_row_bits = np.zeros(size)
    for blk, b in zip(blocks, bits):
        per_row_bits += np.diff(blk.indptr) * b
    for blk in blocks[1:]:
        m = m + blk
    return m.tocsr(), per_row_bits


@dataclass
class _Placing:
    """What placing one population reads and fills."""

    plan: Netlist
    chip: ChipProfile
    cmap: CoreMap
    core_of: np.ndarray
    offsets: dict[str, int]
    total: int
    out_cost: np.ndarray           # output axons each neuron needs (from the previous placement)


PLACE = PopulationRegistry("core placement")   # (_Placing, name, population): place it (or not)


@PLACE.register(InputPopulation)
def _off_chip(ctx: _Placing, name: str, pop) -> None:
    """The input arrives as messages: no core holds it."""


@PLACE.register(ProductPopulation)
def _unmapped(ctx: _Placing, name: str, pop) -> None:
    """A spike·spike product has no static synapses: it runs off the cores (reported as unmapped)."""
    ctx.cmap.unmapped.append(name)


@PLACE.register(HostPopulation)
def _host(ctx: _Placing, name: str, pop: HostPopulation) -> None:
    """A host partition runs on the embedded CPU / host: no core; listed as off-core."""
    ctx.cmap.unmapped.append(name)
    ctx.cmap.host[name] = f"{pop.fn.describe()} at `{pop.source}`"


@PLACE.register(NeuronPopulation, OrPopulation, DelayPopulation)
def _on_cores(ctx: _Placing, name: str, pop) -> None:
    """Neurons (and a delay's relay units) with their incoming synapses, on as few cores as fit."""
    chip = ctx.chip
    m, w_bits = _incoming(ctx.plan, name, ctx.offsets, ctx.total)
    w_bits = np.minimum(w_bits, np.diff(m.indptr) * chip.max_weight_bits)
    entry_bits = w_bits + np.diff(m.indptr) * chip.synapse_index_bits
    _check_one_neuron_fits(name, pop.size, np.diff(m.indptr), entry_bits, chip)
    out_cost = ctx.out_cost[ctx.offsets[name]:ctx.offsets[name] + pop.size]
    _place_layer(ctx.cmap, name, pop.size, m, entry_bits, out_cost, ctx.core_of, ctx.offsets[name], ctx.total)


RESPLITS = 8   # placements tried with the output axons of the previous one


def map_to_cores(plan: Netlist, chip: ChipProfile) -> CoreMap:
    """Place every population; a core whose neurons need more output axons (one per
    destination core) than the chip has is re-split: the layers are placed again with each
    neuron's output axons from the previous placement as a fourth per-core resource, until
    every core fits (re-splitting a destination can raise its sources' fan-out, hence a loop)."""
    offsets, total = {}, 0
    for name, pop in plan.populations.items():
        offsets[name] = total
        total += pop.size
    out_cost = np.zeros(total, dtype=np.int64)
    for _ in range(RESPLITS):
        cmap = CoreMap(chip, labels=dict(plan.labels), stages=max(window_stages(plan).values(), default=0) + 1)
        core_of = np.full(total, -1)
        for name, pop in plan.populations.items():
            PLACE(pop)(_Placing(plan, chip, cmap, core_of, offsets, total, out_cost), name, pop)
        needed = _output_axons(plan, core_of, offsets, total)
        placed = core_of >= 0
        per_core = np.bincount(core_of[placed], weights=needed[placed], minlength=len(cmap.cores))
        for c, n in zip(cmap.cores, per_core):
            c.output_axons = int(n)
        if all(c.output_axons <= chip.output_axons_per_core for c in cmap.cores):
            return cmap
        _check_one_neuron_fans_out(plan, chip, needed, offsets)
        out_cost = np.maximum(out_cost, needed)
    worst = max(cmap.cores, key=lambda c: c.output_axons)
    raise SnnCompileError(
        f"layer {worst.layer} does not fit {chip.name}: after {RESPLITS} re-splits a core still needs "
        f"{worst.output_axons:,} output axons, above {chip.output_axons_per_core:,}",
        "reduce the layer's fan-out (prune its outgoing weights)", EXIT_UNSUPPORTED)


def _check_one_neuron_fans_out(plan: Netlist, chip: ChipProfile, needed: np.ndarray, offsets: dict[str, int]) -> None:
    """A neuron that alone reaches more destination cores than a core has output axons cannot be placed."""
    worst = int(np.argmax(needed))
    if needed[worst] > chip.output_axons_per_core:
        layer = max((n for n in offsets if offsets[n] <= worst), key=offsets.get)
        raise SnnCompileError(
            f"layer {layer} does not fit {chip.name}: a neuron reaches {int(needed[worst]):,} destination cores, "
            f"above the {chip.output_axons_per_core:,} output axons of one core",
            "reduce the layer's fan-out (prune its outgoing weights)", EXIT_UNSUPPORTED)


def _check_one_neuron_fits(name: str, size: int, fan_in: np.ndarray, entry_bits: np.ndarray,
                           chip: ChipProfile) -> None:
    worst = int(np.argmax(fan_in)) if size else 0
    if size and fan_in[worst] > chip.input_axons_per_core:
        raise SnnCompileError(
            f"layer {name} does not fit {chip.name}: a neuron has {fan_in[worst]:,} inputs, above the "
            f"{chip.input_axons_per_core:,} input axons of one core",
            f"prune {name}'s incoming weights to at most {chip.input_axons_per_core:,} per neuron "
            "(prune_synapses drops zeros), or split its input layer", EXIT_UNSUPPORTED)
    if size and entry_bits.max() > chip.synapse_bits_per_core:
        raise SnnCompileError(
            f"layer {name} does not fit {chip.name}: one neuron needs {int(entry_bits.max()):,} bits of "
            f"synapses, above {chip.synapse_bits_per_core:,} per core",
            "prune or binarize the layer's weights", EXIT_UNSUPPORTED)


def _binding(core: CoreUse, chip: ChipProfile, new_axons: int, bits: float, out_axons: int = 0) -> str:
    """The resource that one more neuron (``new_axons`` new inputs, ``bits``, ``out_axons``
    destination cores) would overflow."""
    if core.neurons + 1 > chip.neurons_per_core:
        return "neurons"
    if core.input_axons + new_axons > chip.input_axons_per_core:
        return "input_axons"
    if core.synapse_bits + bits > chip.synapse_bits_per_core:
        return "synapse_bits"
    if core.output_axons + out_axons > chip.output_axons_per_core:
        return "output_axons"
    return ""


def _place_layer(cmap: CoreMap, name: str, size: int, m: sp.csr_matrix, entry_bits: np.ndarray,
                 out_cost: np.ndarray, core_of: np.ndarray, offset: int, total: int) -> None:
    """Fill cores with the layer's neurons in order, a new core when one resource runs out."""
    chip = cmap.chip
    used = np.zeros(total, dtype=bool)
    core = CoreUse(name, 0, 0, 0)
    for i in range(size):
        cols = m.indices[m.indptr[i]:m.indptr[i + 1]]
        new_axons = int(np.count_nonzero(~used[cols]))
        bound = _binding(core, chip, new_axons, entry_bits[i], int(out_cost[i]))
        if bound:
            core.bound = bound
            cmap.cores.append(core)
            core, used[:] = CoreUse(name, 0, 0, 0), False
            new_axons = len(np.unique(cols))
        used[cols] = True
        core.neurons += 1
        core.input_axons += new_axons
        core.synapse_bits += int(entry_bits[i])
        core.output_axons += int(out_cost[i])   # an estimate while placing; recounted afterwards
        core_of[offset + i] = len(cmap.cores)
    if core.neurons:  # the layer ended: name the fullest resource instead
        util = core.utilisation(chip)
        util.pop("output_axons")
        core.bound = max(util, key=util.get)
        cmap.cores.append(core)


def _output_axons(plan: Netlist, core_of: np.ndarray, offsets: dict[str, int], total: int) -> np.ndarray:
    """Output axons per neuron (global id): one per distinct destination core it reaches."""
    needed = np.zeros(total, dtype=np.int64)
    for name, pop in plan.populations.items():
        if isinstance(pop, InputPopulation):
            continue   # the input arrives as messages from off the chip
        keys = []
        cores = int(core_of.max()) + 2   # destination core ids (−1: off the cores) shifted by one
        for proj in plan.projections:
            if proj.src == name and proj.dst in offsets:
                coo = proj.weights.tocoo()
                keys.append(coo.col.astype(np.int64) * cores + core_of[offsets[proj.dst] + coo.row] + 1)
        if keys:   # one (neuron, destination core) pair per key
            pairs = np.unique(np.concatenate(keys))
            needed[offsets[name]:offsets[name] + pop.size] = np.bincount(pairs // cores, minlength=pop.size)
    return needed

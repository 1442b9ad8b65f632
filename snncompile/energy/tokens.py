"""What a token selector saves (SparseSpikformer's dynamic token sparsity), priced exactly.

A selector is a top-k over token scores turned into a 0/1 keep mask
(``zeros_like(s).scatter(dim, topk_idx, 1)``) and multiplied into the tokens. A synaptic
layer whose input is the masked tokens (through reshapes) is *token-pruned*: a dropped
token sends nothing, so per sample its SOPs and the synapses it touches count kept tokens
only, and its ANN MACs are those of the kept tokens (the "−GFLOPs" of the paper).

The baseline is the same network keeping every token: every selector's k set to the number
of tokens (:func:`keep_every_token`), simulated on the same input (``exact``), or — without
input — the stated keep ratio applied to the token-pruned layers' MACs (``keep ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from snncompile.energy.estimate import estimate_energy
from snncompile.energy.report import EnergyReport, num
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.ir import Conv2d, Host, IRGraph, Linear, Reshape, Slice, Transpose
from snncompile.ir.host import Gather, IndexSelect, Product, ScatterOnes, Sort, TopK
from snncompile.ir.structure import binary_spikes

_VIEWS = (Reshape, Transpose, Slice)


@dataclass
class PrunedLayer:
    """One token-pruned synaptic layer, per sample: ANN MACs with every token and with kept
    tokens only; SNN SOPs as simulated (None without input)."""

    name: str
    macs_all: int
    macs_kept: float
    sops: float | None = None
    sops_all_tokens: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "macs_all_tokens": self.macs_all, "macs_kept_tokens": num(self.macs_kept),
                "sops": num(self.sops), "sops_all_tokens": num(self.sops_all_tokens)}


@dataclass
class TokenSaving:
    """The selector's saving against the same network keeping every token (per sample)."""

    mode: str                                  # "exact" (simulated) | "keep ratio" (stated)
    selectors: list[str]
    kept_fraction: float                       # tokens kept / tokens, mean over selectors, steps, samples
    layers: list[PrunedLayer] = field(default_factory=list)
    ann_macs: float = 0.0                      # whole network, kept tokens in the pruned layers
    ann_macs_all_tokens: float = 0.0
    snn_pj: float | None = None                # the compiled SNN (exact mode)
    snn_pj_all_tokens: float | None = None

    @property
    def ann_mac_saving(self) -> float:
        """1 − MACs(kept)/MACs(all): the paper's "−GFLOPs"."""
        return 1.0 - self.ann_macs / self.ann_macs_all_tokens if self.ann_macs_all_tokens else 0.0

    @property
    def snn_saving(self) -> float | None:
        if self.snn_pj is None or not self.snn_pj_all_tokens:
            return None
        return 1.0 - self.snn_pj / self.snn_pj_all_tokens

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "selectors": list(self.selectors), "kept_fraction": self.kept_fraction,
                "ann_macs": num(self.ann_macs), "ann_macs_all_tokens": num(self.ann_macs_all_tokens),
                "ann_mac_saving": self.ann_mac_saving, "snn_pj": self.snn_pj,
                "snn_pj_all_tokens": self.snn_pj_all_tokens, "snn_saving": self.snn_saving,
                "layers": [r.to_dict() for r in self.layers]}


def selectors(graph: IRGraph) -> dict[str, tuple[str, str]]:
    """Keep-mask products → (their ScatterOnes mask, the TopK it scatters)."""
    out = {}
    for name in graph.of_type(Host):
        node = graph.node(name)
        if not isinstance(node.fn, Product):
            continue
        for src in graph.inputs(name):
            mask = _through_views(graph, src)
            m = graph.node(mask)
            if isinstance(m, Host) and isinstance(m.fn, ScatterOnes) and m.fn.binary_out():
                top = _through_views(graph, graph.inputs(mask)[0])
                if isinstance(graph.node(top), Host) and isinstance(graph.node(top).fn, TopK):
                    out[name] = (mask, top)
    return out


def gather_selectors(graph: IRGraph) -> dict[str, tuple[int, int]]:
    """Gathers of kept tokens (index_select / gather whose indices are a slice of a sort or a top-k: the
    official SparseSpikformer, TP-Spikformer) → (tokens kept, tokens) per row; every later layer has
    the kept tokens only in its shapes, so its counts are those of the kept tokens already."""
    out = {}
    for name in graph.of_type(Host):
        node = graph.node(name)
        if not isinstance(node.fn, (IndexSelect, Gather)) or len(graph.inputs(name)) != 2:
            continue
        x, idx = graph.inputs(name)
        src = _through_views(graph, idx)
        if isinstance(graph.node(src), Host) and isinstance(graph.node(src).fn, (Sort, TopK)):
            axis = node.fn.axis
            out[name] = (int(node.shape[axis]), int(graph.node(x).shape[axis]))
    return out


def _through_views(graph: IRGraph, name: str) -> str:
    while isinstance(graph.node(name), _VIEWS):
        name = graph.inputs(name)[0]
    return name


def pruned_layers(graph: IRGraph, products: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Synaptic layers reading masked tokens (through reshapes) → the keep-mask product."""
    out = {}
    for name in graph.of_type(Linear) + graph.of_type(Conv2d):
        src = _through_views(graph, graph.inputs(name)[0])
        if src in products:
            out[name] = src
    return out


def keep_every_token(graph: IRGraph) -> IRGraph:
    """A copy of ``graph`` whose selectors keep every token (each TopK's k = the tokens)."""
    g = graph.copy()
    for _, top in selectors(graph).values():
        node = g.node(top)
        n = g.node(g.inputs(top)[0]).shape[node.fn.axis]
        shape = list(node.shape)
        shape[node.fn.axis] = n
        g.nx.nodes[top]["node"] = replace(node, shape=tuple(shape), fn=replace(node.fn, k=n))
    return g


def _kept_fraction(graph: IRGraph, masks: list[str], values: dict[str, np.ndarray] | None,
                   keep_ratio: float | None) -> float:
    if values is None:
        return float(keep_ratio)
    return float(np.mean([np.asarray(values[m], dtype=np.float64).mean() for m in masks]))


def token_saving(graph: IRGraph, *, steps: int, x: np.ndarray | None = None, keep_ratio: float | None = None,
                 cost_model: str = "45nm", report: EnergyReport | None = None,
                 values: dict[str, np.ndarray] | None = None) -> TokenSaving:
    """The selectors' saving: exact from input ``x`` [T, B, ...] (both networks simulated;
    ``values``: ``graph``'s simulated values on ``x`` if known), or from a stated ``keep_ratio``
    (fraction of tokens kept) without input."""
    from snncompile.sim import simulate  # (the simulator ranks after energy)

    products = selectors(graph)
    if not products:
        raise SnnCompileError("the model has no token selector (a top-k keep mask multiplied into the tokens)",
                              "--keep-ratio applies to SparseSpikformer-style token selectors", EXIT_UNSUPPORTED)
    if x is None and (keep_ratio is None or not 0.0 < keep_ratio <= 1.0):
        raise SnnCompileError(f"keep ratio {keep_ratio!r} is not in (0, 1]", "e.g. --keep-ratio 0.7", EXIT_USAGE)
    layers = pruned_layers(graph, products)
    masks = [m for m, _ in products.values()]
    if x is not None and values is None:
        values = simulate(graph, x, keep_values=True).values
    values = values if x is not None else None
    kept = _kept_fraction(graph, masks, values, keep_ratio)
    base = report or estimate_energy(graph, steps=steps, values=values, cost_model=cost_model)
    rows = {getattr(r, "ir_name", "") or r.name: r for r in base.layers}   # IR names: rows show module paths
    out = TokenSaving("exact" if x is not None else "keep ratio", sorted(products), kept)
    ir_names = {}
    for name, product in layers.items():
        r = rows[name]
        mask = products[product][0]
        share = kept if values is None else float(np.asarray(values[mask], dtype=np.float64).mean())
        out.layers.append(PrunedLayer(r.name, r.macs, r.macs * share, r.sops))
        ir_names[r.name] = name
    ann = base.variants.ann.macs
    out.ann_macs_all_tokens = float(ann)
    out.ann_macs = float(ann) - sum(p.macs_all - p.macs_kept for p in out.layers)
    if values is not None:
        full = keep_every_token(graph)
        every = estimate_energy(full, steps=steps, values=simulate(full, x, keep_values=True).values,
                                cost_model=cost_model)
        full_rows = {getattr(r, "ir_name", "") or r.name: r for r in every.layers}
        for p in out.layers:
            p.sops_all_tokens = full_rows[ir_names[p.name]].sops
        out.snn_pj, out.snn_pj_all_tokens = base.variants.energy("snn"), every.variants.energy("snn")
    return out


__all__ = ["PrunedLayer", "TokenSaving", "binary_spikes", "gather_selectors", "keep_every_token", "pruned_layers",
           "selectors", "token_saving"]

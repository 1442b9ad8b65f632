"""What a token selector saves (SparseSpikformer's dynamic token sparsity), priced exactly.

A selector keeps k of the N tokens of each step by their scores (kinds and the baseline:
:mod:`snncompile.energy.every_token`). Downstream of a ``gather`` selector the layers are k
tokens wide: every count of the report (MACs, SOPs, synapses touched, neuron updates) is
that of the k kept tokens, as the source computes them. Downstream of a ``mask`` selector
the dropped tokens are multiplied by 0: a synaptic layer reading the masked tokens (through
reshapes) is *token-pruned*, its SOPs and synapses touched count the kept tokens only (a 0
sends nothing) and its ANN MACs are the kept tokens' (the paper's "−GFLOPs"); the neurons
after it still exist for every token and update every step (a dropped token's neuron
receives its bias and leaks: the source computes it, and it may fire), so their neuron
updates count all N tokens.

The baseline is the same network keeping every token (each selector's k set to N,
:func:`keep_every_token`): simulated on the same input (``exact``), or — without input — its
MACs (static), with a mask selector's token-pruned layers at the stated keep ratio
(``keep ratio``). ANN GFLOPs are 2 × MACs per sample, as papers count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snncompile.energy.estimate import estimate_energy
from snncompile.energy.every_token import Selector, find_selectors, keep_every_token, refusal, through_views
from snncompile.energy.report import EnergyReport, num
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.ir import Conv2d, IRGraph, Linear
from snncompile.ir.structure import binary_spikes


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

    mode: str                                  # "exact" (simulated) | "keep ratio" (stated) | "static" (gathers' k/N)
    selectors: list[str]
    kept_fraction: float                       # tokens kept / tokens, mean over selectors, steps, samples
    layers: list[PrunedLayer] = field(default_factory=list)
    ann_macs: float = 0.0                      # whole network, kept tokens in the pruned layers
    ann_macs_all_tokens: float = 0.0
    snn_pj: float | None = None                # the compiled SNN (exact mode)
    snn_pj_all_tokens: float | None = None
    kinds: dict[str, str] = field(default_factory=dict)   # selector → "mask" | "gather"
    notes: list[str] = field(default_factory=list)

    @property
    def ann_gflops(self) -> float:
        """2 × MACs / 10⁹ per sample, kept tokens (as papers count FLOPs)."""
        return 2.0 * self.ann_macs / 1e9

    @property
    def ann_gflops_all_tokens(self) -> float:
        return 2.0 * self.ann_macs_all_tokens / 1e9

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
                "ann_mac_saving": self.ann_mac_saving, "ann_gflops": self.ann_gflops,
                "ann_gflops_all_tokens": self.ann_gflops_all_tokens, "selector_kinds": dict(self.kinds),
                "notes": list(self.notes), "snn_pj": self.snn_pj,
                "snn_pj_all_tokens": self.snn_pj_all_tokens, "snn_saving": self.snn_saving,
                "layers": [r.to_dict() for r in self.layers]}


def selectors(graph: IRGraph) -> dict[str, Selector]:
    """The token selectors of ``graph`` by their output node (mask product or gather)."""
    return {sel.name: sel for sel in find_selectors(graph)[0]}


def pruned_layers(graph: IRGraph, found: dict[str, Selector]) -> dict[str, str]:
    """Synaptic layers reading mask-selected tokens (through reshapes) → the keep-mask product."""
    out = {}
    for name in graph.of_type(Linear) + graph.of_type(Conv2d):
        src = through_views(graph, graph.inputs(name)[0])
        if src in found and found[src].kind == "mask":
            out[name] = src
    return out


def _kept(sel: Selector, values: dict[str, np.ndarray] | None, keep_ratio: float | None) -> float:
    """Fraction of tokens ``sel`` keeps: a gather's k/N; a mask's simulated mean, or the stated ratio."""
    if sel.kind == "gather":
        return sel.k / sel.n
    if values is None:
        return float(keep_ratio)
    return float(np.asarray(values[sel.mask], dtype=np.float64).mean())


def _checked(graph: IRGraph, x: np.ndarray | None, keep_ratio: float | None) -> dict[str, Selector]:
    found, unknown = find_selectors(graph)
    if unknown:
        raise refusal("; ".join(dict.fromkeys(unknown)))
    if not found:
        raise SnnCompileError("the model has no token selector (top-k or sorted-order indices picking tokens, or a "
                              "keep mask made from them)", "--keep-ratio applies to SparseSpikformer-style token "
                              "selectors", EXIT_UNSUPPORTED)
    static = all(s.kind == "gather" for s in found)   # k of N by construction: no ratio to state
    if x is None and not (static and keep_ratio is None) and (keep_ratio is None or not 0.0 < keep_ratio <= 1.0):
        raise SnnCompileError(f"keep ratio {keep_ratio!r} is not in (0, 1]", "e.g. --keep-ratio 0.7", EXIT_USAGE)
    return {s.name: s for s in found}


def _rows(report: EnergyReport) -> dict[str, Any]:
    return {r.ir_name: r for r in report.layers}   # IR names: rows show module paths


def token_saving(graph: IRGraph, *, steps: int, x: np.ndarray | None = None, keep_ratio: float | None = None,
                 cost_model: str = "45nm", report: EnergyReport | None = None,
                 values: dict[str, np.ndarray] | None = None) -> TokenSaving:
    """The selectors' saving: exact from input ``x`` [T, B, ...] (both networks simulated;
    ``values``: ``graph``'s simulated values on ``x`` if known), or from a stated ``keep_ratio``
    (fraction of tokens a mask selector keeps) without input; gathers alone keep k of N by
    construction, priced without either (``static``)."""
    from snncompile.sim import simulate  # (the simulator ranks after energy)

    found = _checked(graph, x, keep_ratio)
    full = keep_every_token(graph, list(found.values()))
    if x is not None and values is None:
        values = simulate(graph, x, keep_values=True).values
    values = values if x is not None else None
    if report is not None and report.mode != ("exact" if x is not None else "static"):
        report = None   # its SOPs are from --firing-rates: the every-token network's are not, so price both alike
    base = report or estimate_energy(graph, steps=steps, values=values, cost_model=cost_model)
    every = estimate_energy(full, steps=steps, cost_model=cost_model,
                            values=None if x is None else simulate(full, x, keep_values=True).values)
    rows, full_rows = _rows(base), _rows(every)
    mode = "exact" if x is not None else "keep ratio" if keep_ratio is not None else "static"
    out = TokenSaving(mode, sorted(found),
                      float(np.mean([_kept(s, values, keep_ratio) for s in found.values()])),
                      kinds={n: s.kind for n, s in found.items()})
    masked, cut = pruned_layers(graph, found), 0.0
    for name in graph.of_type(Linear) + graph.of_type(Conv2d):
        r, f = rows[name], full_rows[name]
        if name in masked:   # the graph counts every token: the dropped ones' MACs come off
            share = _kept(found[masked[name]], values, keep_ratio)
            out.layers.append(PrunedLayer(r.name, r.macs, r.macs * share, r.sops, f.sops))
            cut += r.macs * (1.0 - share)
        elif r.macs != f.macs:   # downstream of a gather: k tokens wide, as the graph counts
            out.layers.append(PrunedLayer(r.name, f.macs, r.macs, r.sops, f.sops))
    out.ann_macs_all_tokens = float(every.variants.ann.macs)
    out.ann_macs = float(base.variants.ann.macs) - cut
    if x is None:
        for p in out.layers:
            p.sops = p.sops_all_tokens = None
    else:
        out.snn_pj, out.snn_pj_all_tokens = base.variants.energy("snn"), every.variants.energy("snn")
    if x is None and keep_ratio is not None and any(s.kind == "gather" for s in found.values()):
        out.notes.append("a gather selector keeps k of N tokens by construction: its k/N is used, not --keep-ratio")
    return out


__all__ = ["PrunedLayer", "Selector", "TokenSaving", "binary_spikes", "keep_every_token", "pruned_layers",
           "selectors", "token_saving"]

"""Per-layer energy chart of the ``energy`` report (matplotlib, Agg backend, atomic write)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snncompile.energy.report import CATEGORIES, VARIANTS, Breakdown, EnergyReport, NeuronRow
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.fsutil import write_atomic

LABELS = {"ann": "ANN", "snn": "SNN", "snn_binary": "SNN bin-w", "bnn": "BNN"}
CAT_LABELS = {"mac": "MAC", "synaptic": "synaptic (AC / bin. add / BOP)", "neuron": "neuron update / activation",
              "memory": "memory access", "host": "host partitions (off-core)"}
CAT_COLORS = {"mac": "#4C72B0", "synaptic": "#55A868", "neuron": "#C44E52", "memory": "#8172B2", "host": "#DD8452"}
HATCH = {"ann": "", "snn": "//", "snn_binary": "..", "bnn": "xx"}


def _unit(max_pj: float) -> tuple[str, float]:
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if max_pj >= scale:
            return unit, scale
    return "pJ", 1.0


def _groups(energy: EnergyReport) -> list[dict[str, Any]]:
    """Per synaptic layer (merged with the neurons it feeds): energy by variant and category."""
    groups: list[dict[str, Any]] = []
    for row in energy.layers:
        if isinstance(row, NeuronRow) and groups:
            g = groups[-1]   # the neurons the previous synaptic layer feeds
            g["neurons"] = True
        else:
            g = {"name": row.name, "neurons": False, "e": {v: Breakdown() for v in VARIANTS}}
            groups.append(g)
        for v in VARIANTS:
            b = row.priced.breakdown.get(v)
            if b is not None:
                g["e"][v].add(b)
    return groups


def plot_energy(energy: EnergyReport, path: str | Path, write=write_atomic) -> Path:
    """Write a PNG: per layer, one bar per variant stacked by energy category; totals below.

    Neuron layers are merged into the synaptic layer that feeds them, so each group is
    "a layer and its neurons". Written to a temporary file and renamed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SnnCompileError(f"plot file {path} is not a .png", "e.g. --plot energy.png", EXIT_USAGE)
    groups = _groups(energy)
    present = [v for v in VARIANTS if energy.variants.get(v)]
    cats = [c for c in CATEGORIES if any(g["e"][v].get(c) for g in groups for v in present)]
    peak = max([g["e"][v].total for g in groups for v in present] + [1e-12])
    unit, scale = _unit(peak)

    n = len(groups)
    fig, (ax, axt) = plt.subplots(2, 1, figsize=(max(8.0, 0.55 * n * len(present) / 2 + 3), 8.5),
                                  gridspec_kw={"height_ratios": [3, 1.4]})
    width = 0.8 / max(len(present), 1)
    for j, v in enumerate(present):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(n)]
        bottom = [0.0] * n
        for c in cats:
            h = [g["e"][v].get(c) / scale for g in groups]
            ax.bar(xs, h, width, bottom=bottom, color=CAT_COLORS[c], hatch=HATCH[v],
                   edgecolor="white", linewidth=0.4)
            bottom = [b + x for b, x in zip(bottom, h)]
    ax.set_xticks(range(n))
    ax.set_xticklabels([g["name"] + (" +n" if g["neurons"] else "") for g in groups],
                       rotation=60 if n > 6 else 0, ha="right" if n > 6 else "center", fontsize=8)
    ax.set_ylabel(f"energy per sample ({unit})")
    ax.set_xlabel("synaptic layer (+n: with the neurons it feeds)", fontsize=8)
    ax.set_title(f"{energy.model}: energy per layer (T={energy.steps}, cost model "
                 f"{energy.cost_model}, SOPs {energy.mode})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=CAT_COLORS[c], label=CAT_LABELS[c]) for c in cats]
    handles += [Patch(facecolor="white", edgecolor="black", hatch=HATCH[v], label=LABELS[v]) for v in present]
    ax.legend(handles=handles, fontsize=7, ncol=2, loc="upper right")

    # Totals: one horizontal stacked bar per variant, with the saving against the ANN.
    tot = {v: energy.variants.get(v).breakdown for v in present}
    tmax = max([t.total for t in tot.values()] + [1e-12])
    tunit, tscale = _unit(tmax)
    for k, v in enumerate(present):
        left = 0.0
        for c in cats:
            w = tot[v].get(c) / tscale
            axt.barh(k, w, left=left, color=CAT_COLORS[c], hatch=HATCH[v], edgecolor="white", linewidth=0.4)
            left += w
        e_ann, e_v = energy.variants.energy("ann"), energy.variants.energy(v)
        txt = f" {left:.3g} {tunit}" + ("" if v == "ann" or not e_v else f"  (ANN/{LABELS[v]} = {e_ann / e_v:.2f}×)")
        axt.text(left, k, txt, va="center", fontsize=8)
    axt.set_yticks(range(len(present)))
    axt.set_yticklabels([LABELS[v] for v in present])
    axt.invert_yaxis()
    axt.set_xlim(0, tmax / tscale * 1.45)
    axt.set_xlabel(f"total energy per sample ({tunit})")
    unverified = energy.unverified
    foot = f"source: {energy.source}"
    if unverified:
        foot += f"\nUNVERIFIED figures: {', '.join(unverified)}"
    fig.text(0.01, 0.005, foot, fontsize=6.5, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))

    try:
        return write(path, lambda fh: fig.savefig(fh, dpi=130, format="png"))
    finally:
        plt.close(fig)

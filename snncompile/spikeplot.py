"""Pictures of a simulation: a spike raster of chosen layers and per-layer firing rates (PNG,
matplotlib Agg), written with ``--plot`` next to the energy chart when inputs were simulated.

Spikes are the reference simulator's (the IR's semantics, which every run is verified
against); layers are named by the user's module paths. A layer with more neurons than a
raster row can show is subsampled: neurons that fire at least once, evenly spaced, and the
caption says how many of how many are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.fsutil import write_atomic

MAX_NEURONS = 150     # raster rows per layer: beyond this the ticks merge into a solid band
MAX_SAMPLES = 4       # samples shown one after another along the raster's time axis
DEFAULT_LAYERS = 4    # layers in the default raster: first, last and evenly spaced between


@dataclass
class Layer:
    """One neuron layer's spikes [T, N, neurons] (kept neurons only) and its names."""

    name: str           # the IR node
    label: str          # the user's module path (or the IR name when there is none)
    spikes: np.ndarray  # [T, N, kept]
    size: int           # neurons before the passes removed any

    @property
    def rate(self) -> float:
        """Spikes per kept neuron per time step, over every sample."""
        return float(self.spikes.mean()) if self.spikes.size else 0.0


def layers_of(graph, spikes: dict[str, np.ndarray]) -> list[Layer]:
    """The neuron layers of ``graph`` in order, with their reference spikes (kept neurons)."""
    from snncompile.ir import Neuron

    out = []
    for name, node in graph.items():
        if not isinstance(node, Neuron) or name not in spikes:
            continue
        s = np.asarray(spikes[name])
        s = s.reshape(s.shape[0], s.shape[1], -1)
        if node.alive is not None:
            s = s[:, :, np.asarray(node.alive).reshape(-1)]
        out.append(Layer(name, node.source or name, s, node.size))
    return out


def choose(layers: list[Layer], wanted: list[str] | None) -> list[Layer]:
    """Layers named in ``wanted`` (module paths or IR names), or a few spread over the network."""
    if wanted:
        by = {ly.label: ly for ly in layers} | {ly.name: ly for ly in layers}
        unknown = [w for w in wanted if w not in by]
        if unknown:
            raise SnnCompileError(f"--plot-layers names no spiking layer {', '.join(map(repr, unknown))}",
                                  f"choose from {', '.join(ly.label for ly in layers)}", EXIT_USAGE)
        return [by[w] for w in dict.fromkeys(wanted)]
    if len(layers) <= DEFAULT_LAYERS:
        return layers
    idx = np.unique(np.linspace(0, len(layers) - 1, DEFAULT_LAYERS).round().astype(int))
    return [layers[i] for i in idx]


def _rows(layer: Layer) -> tuple[np.ndarray, str]:
    """Which neurons the raster shows, and the caption saying so."""
    kept = layer.spikes.shape[2]
    firing = np.flatnonzero(layer.spikes.any(axis=(0, 1)))
    removed = f", {layer.size - kept:,} removed by the passes" if kept < layer.size else ""
    if kept <= MAX_NEURONS:
        return np.arange(kept), f"all {kept:,} neurons{removed}"
    pool = firing if len(firing) else np.arange(kept)
    pick = pool[np.unique(np.linspace(0, len(pool) - 1, min(MAX_NEURONS, len(pool))).round().astype(int))]
    return pick, (f"{len(pick)} of {kept:,} neurons{removed}: evenly spaced among the {len(firing):,} "
                  "that fire at least once")


def plot_raster(layers: list[Layer], path: str | Path, title: str, write=write_atomic) -> Path:
    """Spike raster: one panel per layer, time steps of the first samples along x."""
    plt = _pyplot()
    T, N = layers[0].spikes.shape[:2]
    shown = min(N, MAX_SAMPLES)
    fig, axes = plt.subplots(len(layers), 1, figsize=(10, 1.2 + 2.3 * len(layers)), sharex=True, squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        rows, caption = _rows(layer)
        s = layer.spikes[:, :shown][:, :, rows]                     # [T, shown, rows]
        t, n, r = np.nonzero(s)
        ax.scatter(n * T + t, r, marker="|", s=max(4.0, 400.0 / max(len(rows), 1)), lw=0.8, color="black")
        for k in range(1, shown):
            ax.axvline(k * T - 0.5, color="tab:red", lw=0.8, alpha=0.6)
        ax.set_xlim(-0.5, shown * T - 0.5)
        ax.set_ylim(-0.5, len(rows) - 0.5)
        ax.set_ylabel("neuron")
        ax.set_title(f"layer {layer.label}: rate {layer.rate:.3f} spikes/neuron/step; {caption}", fontsize=8.5, loc="left")
    axes[-1, 0].set_xlabel(f"time step (samples 0 … {shown - 1} one after another, T = {T} each; red lines "
                           "separate samples)")
    fig.suptitle(title, fontsize=10)
    return _save(fig, plt, path, write)


def plot_rates(layers: list[Layer], path: str | Path, title: str, write=write_atomic) -> Path:
    """Firing rate of every neuron layer (kept neurons, all samples and steps), in network order."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.38 * len(layers)))
    rates = [ly.rate for ly in layers]
    ys = np.arange(len(layers))
    ax.barh(ys, rates, color="#4C72B0")
    for y, ly in zip(ys, layers):
        ax.text(ly.rate, y, f" {ly.rate:.3f}  ({ly.spikes.shape[2]:,} neurons)", va="center", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([ly.label for ly in layers], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(rates + [1e-3]) * 1.5)
    ax.set_xlabel("firing rate (spikes per kept neuron per time step)")
    ax.set_ylabel("spiking layer (module path)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, plt, path, write)


def spike_paths(plot: str | Path) -> dict[str, Path]:
    """Where --plot FILE.png puts the pictures of a simulation: FILE_raster.png, FILE_rates.png."""
    p = Path(plot)
    return {"raster": p.with_name(f"{p.stem}_raster.png"), "rates": p.with_name(f"{p.stem}_rates.png")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: str | Path, write) -> Path:
    fig.tight_layout()
    try:
        return write(Path(path), lambda fh: fig.savefig(fh, dpi=110, format="png"))
    finally:
        plt.close(fig)

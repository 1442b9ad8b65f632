"""Compare spike trains and predictions between two runs of the same network."""

from __future__ import annotations

import numpy as np


def spike_agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                    keep: dict[str, np.ndarray] | None = None) -> tuple[float, dict[str, float]]:
    """Fraction of (step, sample, neuron) entries equal over all layers, and per layer.

    ``a`` and ``b`` map layer names to [T, N, ...] arrays; only common layers count.
    ``keep`` (per layer, bool over the neuron axes) restricts the comparison to neurons
    that exist in the compiled network.
    """
    keep = keep or {}
    equal = total = 0
    per_layer = {}
    for name in a:
        if name not in b:
            continue
        x = np.asarray(a[name]).reshape(a[name].shape[0], a[name].shape[1], -1)
        y = np.asarray(b[name]).reshape(x.shape)
        if name in keep:
            sel = np.asarray(keep[name]).ravel()
            x, y = x[..., sel], y[..., sel]
        eq = int((x == y).sum())
        per_layer[name] = eq / x.size if x.size else 1.0
        equal += eq
        total += x.size
    return (equal / total if total else 1.0), per_layer


def predictions(output: np.ndarray, time_reduced: bool = False) -> np.ndarray:
    """Class index per sample: argmax of the output summed over time (first index on ties)."""
    out = np.asarray(output, dtype=np.float64)
    if not time_reduced:
        out = out.sum(axis=0)
    return out.reshape(out.shape[0], -1).argmax(axis=1)

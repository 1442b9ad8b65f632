"""Remove masked patches/tokens: their neurons and every synapse touching them.

The keep-mask comes from the model (``x * self.patch_mask`` in forward, traced as a Mask
node), from a ``patch_mask``/``token_mask`` buffer the forward does not use, or from
``--patch-mask FILE.npy``. A mask that is not yet in the graph is applied to the output
of the last spiking layer whose grid (H, W) — or token axis — matches the mask's shape:
the patch embedding's output. That last case changes the network on purpose; the report
says so.
"""

from __future__ import annotations

import numpy as np

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.ir import IRGraph, Mask, Neuron, Reshape, Transpose
from snncompile.passes.base import PassStats


def _patch_shapes(graph: IRGraph) -> list[tuple[int, ...]]:
    """Mask shapes a spiking layer accepts: its spatial (H, W) or its tokens (N,)."""
    out = []
    for name in graph.of_type(Neuron):
        shape = tuple(graph.node(name).shape)
        out.append(shape[1:] if len(shape) == 3 else shape[:1])
    return out


def _patch_target(graph: IRGraph, keep: np.ndarray) -> str | None:
    match = None
    for name in graph.of_type(Neuron):
        shape = graph.node(name).shape
        if tuple(shape[1:]) == keep.shape or (len(shape) == 2 and shape[:1] == keep.shape):
            match = name
    return match


def _insert_mask(graph: IRGraph, target: str, keep: np.ndarray) -> str:
    shape = graph.node(target).shape
    full = np.broadcast_to(keep if len(shape) == 3 else keep.reshape(-1, 1), shape).copy()
    users = graph.users(target)
    name = graph.add(graph.unique_name(f"{target}_patch_mask"), Mask(tuple(shape), "patch_mask",
                                                                      keep=full), [target])
    for user in users:
        graph.replace_input(user, target, name)
    return name


def _neuron_behind(graph: IRGraph, name: str, keep: np.ndarray) -> tuple[str | None, np.ndarray]:
    """The neuron layer whose outputs the mask gates, through reshapes and transposes, and
    the keep-mask in that layer's own layout."""
    (src,) = graph.inputs(name)
    while isinstance(graph.node(src), (Reshape, Transpose)):
        node = graph.node(src)
        (prev,) = graph.inputs(src)
        if isinstance(node, Transpose):
            keep = keep.transpose(np.argsort(node.perm))
        else:
            keep = keep.reshape(graph.node(prev).shape)
        src = prev
    return (src, keep) if isinstance(graph.node(src), Neuron) else (None, keep)


def mask_patches(graph: IRGraph) -> PassStats:
    stats = PassStats("mask_patches")
    keep, graph.patch_mask = graph.patch_mask, None
    if keep is not None:
        keep = np.asarray(keep, dtype=bool)
        target = _patch_target(graph, keep)
        if target is None:
            shapes = sorted({str(s) for s in _patch_shapes(graph)})
            raise SnnCompileError(f"the patch mask has shape {keep.shape}, which matches no spiking layer's "
                                  "patches (H, W) or tokens (N,)",
                                  f"give a 0/1 mask of one of the shapes {', '.join(shapes) or '(none)'}",
                                  EXIT_USAGE)
        else:
            _insert_mask(graph, target, keep)
            stats.warnings.append(f"the patch mask was applied after {target}; the PyTorch model does not "
                                  "mask, so its outputs may differ")
            stats.notes.append(f"patch mask {keep.shape} ({int(keep.sum())}/{keep.size} kept) applied "
                               f"after {target} (the PyTorch model does not mask: outputs change)")
    for name in graph.of_type(Mask):
        mask = graph.node(name)
        neuron_name, keep = _neuron_behind(graph, name, mask.keep)
        if neuron_name is None:
            stats.notes.append(f"{name}: masks non-spike values; synapses from masked inputs dropped")
            continue
        neuron = graph.node(neuron_name)
        keep = keep.reshape(neuron.shape)
        before = neuron.kept
        neuron.alive = keep.copy() if neuron.alive is None else (neuron.alive & keep)
        stats.neurons_removed += before - neuron.kept
        stats.notes.append(f"{name}: {int((~mask.keep).sum())} masked positions of {neuron_name} removed")
    return stats

"""Drop zero-weight synapses and choose how each convolution is implemented.

After this pass a synapse exists only where its weight is nonzero (and its mask is set);
the lowering emits CSR matrices (Lava ``Sparse``) instead of dense ones.

Convolution cost model (stated; per layer): synaptic memory in bits, the scarce resource
of a neuromorphic core.
- shared kernel (Lava ``Conv``): Cout·Cin/g·k² weights × weight bits, stored densely;
- unrolled (Lava ``Sparse``): one entry per live (pre, post) pair: weight bits + a column
  index of ⌈log2(fan-in)⌉ bits, plus one row pointer (32 bits) per output neuron.
The cheaper one is chosen; ties go to the unrolled form (no dense zeros are computed).
"""

from __future__ import annotations

import numpy as np

from snncompile.ir import Conv2d, IRGraph, Linear
from snncompile.ir.counting import conv_counts, synaptic_memory_bits
from snncompile.passes.base import PassStats


def conv_memory_bits(node: Conv2d, in_shape: tuple[int, ...]) -> tuple[int, int]:
    """(shared-kernel bits, unrolled-sparse bits) of a convolution."""
    synapses, _, _ = conv_counts(node, in_shape)
    kernel = synaptic_memory_bits("conv", weight_bits=node.weight_bits, kernel_weights=int(node.weight.size))
    unrolled = synaptic_memory_bits("sparse", weight_bits=node.weight_bits, entries=synapses, rows=node.size,
                                    cols=int(np.prod(in_shape)))
    return kernel, unrolled


def prune_synapses(graph: IRGraph) -> PassStats:
    stats = PassStats("prune_synapses")
    for name, node in graph.items():
        if not isinstance(node, (Conv2d, Linear)):
            continue
        in_shape = graph.node(graph.inputs(name)[0]).shape
        before = conv_counts(node, in_shape)[0] if isinstance(node, Conv2d) else None
        lead = node.size // node.weight.shape[0] if isinstance(node, Linear) else 1
        n_before = int(node.mask.sum())
        nonzero = node.weight != 0
        if not nonzero.all():  # a dense layer keeps its (storage-free) all-true mask
            node.mask = node.mask & nonzero
        if np.any(nonzero & ~node.mask):  # masked synapses had nonzero weights
            node.weight = np.where(node.mask, node.weight, 0).astype(node.weight.dtype)
        if isinstance(node, Conv2d):
            removed = before - conv_counts(node, in_shape)[0]
            kernel, unrolled = conv_memory_bits(node, in_shape)
            if not node.impl:
                node.impl = "conv" if kernel < unrolled else "sparse"
            stats.notes.append(f"{name}: {node.impl} (kernel {kernel:,} b vs unrolled {unrolled:,} b)")
        else:
            removed = (n_before - int(node.mask.sum())) * lead
        stats.synapses_removed += removed
    return stats

"""Sparse graph IR: typed nodes in a networkx DiGraph."""

from snncompile.ir.graph import IRGraph
from snncompile.ir.io import load_ir, save_ir
from snncompile.ir.nodes import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
    Host,
    Input,
    Linear,
    Mask,
    MatMul,
    Neuron,
    Node,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Slice,
    Transpose,
)

__all__ = ["IRGraph", "load_ir", "save_ir", "Node", "Input", "Conv2d", "Linear",
           "BatchNorm", "Pool2d", "Reshape", "Add", "Mask", "Neuron", "Output",
           "Transpose", "Scale", "Reduce", "MatMul", "Concat", "Slice", "AdaptiveAvgPool2d", "Delay", "Host"]

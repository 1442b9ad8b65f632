"""The Report: one object assembled from every stage, rendered as tables or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snncompile.energy.report import EnergyReport
from snncompile.fsutil import write_atomic
from snncompile.ir import (
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
from snncompile.ir.registry import Registry


@dataclass
class LayerRow:
    name: str
    op: str
    shape: tuple[int, ...]
    neurons: int = 0
    synapses: int = 0
    synapses_dense: int = 0
    detail: str = ""
    weights: int = 0                   # the layer's own weight tensor (0: none, or OR synapses)
    weights_nonzero: int = 0
    ir_name: str = ""                  # the IR node (``name`` is the user's module path)

    @property
    def sparsity(self) -> float | None:
        """Synapse sparsity: 1 − synapses / synapses_dense (pairs over output positions)."""
        if not self.synapses_dense:
            return None
        return 1.0 - self.synapses / self.synapses_dense

    @property
    def weight_sparsity(self) -> float | None:
        """1 − nonzero weights / weights of the layer's tensor."""
        return 1.0 - self.weights_nonzero / self.weights if self.weights else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ir_name": self.ir_name or self.name, "op": self.op, "shape": list(self.shape),
                "neurons": self.neurons, "synapses": self.synapses, "synapses_dense": self.synapses_dense,
                "sparsity": self.sparsity, "synapse_sparsity": self.sparsity, "weights": self.weights,
                "weights_nonzero": self.weights_nonzero, "weight_sparsity": self.weight_sparsity,
                "detail": self.detail}


@dataclass
class Report:
    model: str
    target: str
    steps: int | None
    layers: list[LayerRow] = field(default_factory=list)
    simulation: dict[str, Any] | None = None
    energy: EnergyReport | None = None
    lowering: dict[str, Any] | None = None
    passes: list[dict[str, Any]] = field(default_factory=list)
    fixed_point: dict[str, Any] | None = None
    mapping: dict[str, Any] | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def graph(self) -> dict[str, int | float | None]:
        syn = [r for r in self.layers if r.synapses_dense]
        dense, kept = sum(r.synapses_dense for r in syn), sum(r.synapses for r in syn)
        weights, nonzero = sum(r.weights for r in self.layers), sum(r.weights_nonzero for r in self.layers)
        return {"layers": len(syn),
                "neurons": sum(r.neurons for r in self.layers if r.op == "neuron"),
                "synapses_dense": dense, "synapses": kept,
                "synapse_sparsity": 1 - kept / dense if dense else 0.0,
                "weights": weights, "weights_nonzero": nonzero,
                "weight_sparsity": 1 - nonzero / weights if weights else None}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "target": self.target, "steps": self.steps,
                             "graph": self.graph, "layers": [r.to_dict() for r in self.layers]}
        if self.passes:
            d["passes"] = self.passes
        for key in ("lowering", "simulation", "fixed_point", "mapping"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.energy is not None:
            d["energy"] = self.energy.to_dict()
        if self.outputs:
            d["outputs"] = self.outputs
        if self.notes:
            d["notes"] = self.notes
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def write_json(self, path: str | Path, write=write_atomic) -> Path:
        """``write(path, fn)``: atomic by default; a run's staged outputs otherwise."""
        text = self.to_json(indent=2) + "\n"
        return write(Path(path), lambda fh: fh.write(text.encode("utf-8")))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


REPORT_ROW = Registry("report row")


def row_detail(node: Node) -> str:
    """The ``detail`` column of a node's row in the layer table."""
    return REPORT_ROW(node)(node)


@REPORT_ROW.register(Neuron)
def _neuron_detail(node: Neuron) -> str:
    detail = node.describe()
    return detail + (f"; {node.size - node.kept} removed" if node.kept != node.size else "")


@REPORT_ROW.register(Conv2d, Linear)
def _synapse_detail(node: Conv2d | Linear) -> str:
    if isinstance(node, Conv2d):
        k = node.weight.shape[2:]
        detail = (f"{node.weight.shape[1] * node.groups}→{node.weight.shape[0]} "
                  f"k{k[0]}x{k[1]} s{node.stride[0]} p{node.padding[0]}")
    else:
        detail = f"{node.weight.shape[1]}→{node.weight.shape[0]}"
    detail += "" if node.bias is None else " +bias"
    if node.binary:
        detail += " binary(1b)"
    if getattr(node, "impl", ""):
        detail += f" [{node.impl}]"
    return detail


@REPORT_ROW.register(Pool2d)
def _pool_detail(node: Pool2d) -> str:
    return f"{node.mode} k{node.kernel[0]} s{node.stride[0]}"


@REPORT_ROW.register(Scale)
def _scale_detail(node: Scale) -> str:
    return f"{node.factor:g}·x" + (f" {node.offset:+g}" if node.offset else "")


@REPORT_ROW.register(Concat)
def _concat_detail(node: Concat) -> str:
    return f"axis {node.axis}"


@REPORT_ROW.register(AdaptiveAvgPool2d)
def _adaptive_detail(node: AdaptiveAvgPool2d) -> str:
    return f"adaptive avg → {node.shape[-2]}×{node.shape[-1]}"


@REPORT_ROW.register(Slice)
def _slice_detail(node: Slice) -> str:
    return f"axis {node.axis} [{node.start}:{node.stop}]"


@REPORT_ROW.register(Delay)
def _delay_detail(node: Delay) -> str:
    from snncompile.netlist.netlist import steps_text

    return f"{steps_text(node.steps)} late"


@REPORT_ROW.register(BatchNorm)
def _bn_detail(node: BatchNorm) -> str:
    return f"{node.shape[0]} channels"


@REPORT_ROW.register(Host)
def _host_detail(node: Host) -> str:
    return f"{node.fn.describe()} [off-core: embedded CPU / host]"


@REPORT_ROW.register(Input, Output, Reshape, Add, Mask, Transpose, Reduce, MatMul)
def _no_detail(node: Node) -> str:
    return ""

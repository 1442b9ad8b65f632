"""A small ONNX graph builder: unique names, constants and nodes, one dtype for values."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17       # ReduceSum takes axes as an input, ReduceMean as an attribute
IR_VERSION = 8   # the IR version of opset 17: readable by onnxruntime ≥ 1.14
DTYPES = {"float64": (np.float64, TensorProto.DOUBLE), "float32": (np.float32, TensorProto.FLOAT)}


class Builder:
    """Collects nodes, initializers, inputs and outputs of one graph.

    Values are ``dtype`` (float64 or float32); index constants are int64.
    """

    def __init__(self, dtype: str = "float64") -> None:
        self.dtype = dtype
        self.np_dtype, self.onnx_dtype = DTYPES[dtype]
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: set[str] = set()
        self._scalars: dict[tuple[str, float], str] = {}

    def name(self, hint: str) -> str:
        """A value name not used before, derived from ``hint``."""
        base, k = hint, 1
        while hint in self._used:
            k += 1
            hint = f"{base}_{k}"
        self._used.add(hint)
        return hint

    def const(self, array: Any, hint: str, dtype: Any = None) -> str:
        """An initializer holding ``array`` (the value dtype unless ``dtype`` is given)."""
        name = self.name(hint)
        a = np.ascontiguousarray(np.asarray(array, dtype=self.np_dtype if dtype is None else dtype))
        self.initializers.append(numpy_helper.from_array(a, name))
        return name

    def scalar(self, value: float) -> str:
        """A shared scalar constant of the value dtype."""
        key = (self.dtype, float(value))
        if key not in self._scalars:
            self._scalars[key] = self.const(np.asarray(value), f"c_{value:g}")
        return self._scalars[key]

    def ints(self, values: Any, hint: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint, np.int64)

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        """Append one node; returns its (single) output's name."""
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def reshape(self, x: str, shape: tuple[int, ...], hint: str) -> str:
        """[N, ...] → [N, *shape] (the batch axis kept as it is)."""
        return self.op("Reshape", [x, self.ints((-1, *shape) if shape else (-1,), f"{hint}_shape")], hint)

    def add_input(self, name: str, shape: tuple[int, ...]) -> str:
        self._used.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, self.onnx_dtype, ["N", *shape]))
        return name

    def add_output(self, value: str, name: str, shape: tuple[int, ...]) -> str:
        """Expose ``value`` as graph output ``name`` (through an Identity when renamed)."""
        if value != name:
            self._used.add(name)
            self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        self.outputs.append(helper.make_tensor_value_info(name, self.onnx_dtype, ["N", *shape]))
        return name

    def model(self, graph_name: str, doc: str, metadata: dict[str, str]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                  producer_name="snncompile", doc_string=doc)
        helper.set_model_props(model, metadata)
        return model

"""The parts of a netlist both ONNX models share: population values, projections, products,
the readout. :mod:`backends.onnx.step` adds the neurons' time step, :mod:`backends.onnx.ann`
the ANN variant's activations."""

from __future__ import annotations

import numpy as np

from backends.onnx.builder import Builder
from backends.onnx.ops import LINEAR, MAX, ONNX
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.netlist import (
    OUTPUT,
    FixedNetlist,
    InputPopulation,
    Netlist,
    OutputKind,
    Population,
    Projection,
)

INPUT = "x"
READOUT = "readout"


def check_float(net: Netlist) -> None:
    if isinstance(net, FixedNetlist):
        raise SnnCompileError("the ONNX export writes the float network; this netlist is fixed point",
                              "drop --fixed-point (the ONNX model computes in float64)", EXIT_UNSUPPORTED)


def order(net: Netlist) -> list[Population]:
    """Populations other than the input, every source before its targets."""
    return [p for p in sorted(net.populations.values(), key=lambda p: p.depth) if not isinstance(p, InputPopulation)]


class NetworkEmitter:
    """Emits one time step's values of ``net`` into builder ``b``.

    ``kept[pop]``: the population's output on its kept neurons, [N, size];
    :meth:`logical` the same with zeros for removed neurons, [N, logical size].
    """

    def __init__(self, b: Builder, net: Netlist) -> None:
        check_float(net)
        self.b, self.net = b, net
        self.kept: dict[str, str] = {}
        self._logical: dict[str, str] = {}
        source = net.source
        self.input_shape = tuple(source.shape)
        x = b.add_input(INPUT, self.input_shape)
        self.kept[source.name] = self._logical[source.name] = b.reshape(x, (source.size,), "x_flat")

    def logical(self, name: str) -> str:
        if name not in self._logical:
            pop = self.net.populations[name]
            if pop.index is None:
                self._logical[name] = self.kept[name]
            else:  # removed neurons read the zero column appended at position `size`
                where = np.full(pop.logical_size, pop.size, dtype=np.int64)
                where[pop.index] = np.arange(pop.size)
                self._logical[name] = self._gather_padded(self.kept[name], where, f"{name}_logical")
        return self._logical[name]

    def _gather_padded(self, x: str, where: np.ndarray, hint: str) -> str:
        b = self.b
        padded = b.op("Pad", [x, b.ints([0, 0, 0, 1], f"{hint}_pads")], f"{hint}_padded")
        return b.op("Gather", [padded, b.ints(where, f"{hint}_idx")], hint, axis=1)

    def projection(self, proj: Projection, mode: str = LINEAR) -> str:
        """The drive of ``proj``'s kept targets: Σ over its chains, [N, rows]."""
        b = self.b
        out = None
        for k, chain in enumerate(proj.chains):
            hint = f"{proj.src}_to_{proj.dst}" + (f"_c{k}" if len(proj.chains) > 1 else "")
            x = b.reshape(self.logical(proj.src), tuple(chain.in_shape), f"{hint}_in")
            shape = tuple(chain.in_shape)
            for node in chain.nodes:
                x = ONNX(node)(b, node, x, shape, mode, b.name(node.source.replace(".", "_") or node.op))
                shape = tuple(node.shape)
            y = b.reshape(x, (int(np.prod(shape)),), f"{hint}_flat")
            out = y if out is None else b.op("Add", [out, y], f"{hint}_sum")
        if proj.rows is not None:
            out = b.op("Gather", [out, b.ints(proj.rows, f"{proj.dst}_rows")], f"{proj.src}_to_{proj.dst}_kept",
                       axis=1)
        return out

    def drive(self, dst: str, bias: np.ndarray, mode: str = LINEAR) -> str:
        """Σ of the projections into ``dst`` (in netlist order) + its bias, [N, size]."""
        b = self.b
        acc = None
        for proj in self.net.into(dst):
            if proj.nnz == 0:
                continue
            y = self.projection(proj, mode)
            acc = y if acc is None else b.op("Max" if mode == MAX else "Add", [acc, y], f"{dst}_acc")
        hint = "readout_drive" if dst == OUTPUT else f"{dst}_drive"
        if acc is None:  # driven by its bias alone
            acc = self.zeros(len(bias), hint)
        if mode == MAX:
            return acc
        return b.op("Add", [acc, b.const(np.asarray(bias, dtype=np.float64), f"{hint}_bias")], hint)

    def zeros(self, size: int, hint: str) -> str:
        """Zeros [N, size] (N: the input's batch)."""
        b = self.b
        per_sample = b.op("ReduceSum", [self.kept_input, b.ints([1], f"{hint}_axis")], f"{hint}_any", keepdims=1)
        zeros = b.op("Mul", [per_sample, b.scalar(0.0)], f"{hint}_zero")   # [N, 1]
        return b.op("Expand", [zeros, b.ints([1, size], f"{hint}_shape")], f"{hint}_zeros")

    @property
    def kept_input(self) -> str:
        return self.kept[self.net.source.name]

    def product(self, pop: Population) -> str:
        """A matmul population: its two factors gathered from their sources, multiplied."""
        b = self.b
        factors = []
        for k, o in enumerate(pop.operands):
            hint = f"{pop.name}_op{k}"
            src = self.net.populations[o.src]
            v = b.op("Gather", [self.logical(o.src), b.ints(o.idx, f"{hint}_idx")], hint, axis=1) \
                if src.index is None else self._gather_padded(self.kept[o.src], _positions(src, o.idx), hint)
            v = b.reshape(v, tuple(o.shape), f"{hint}_shaped")
            if o.scale != 1.0:
                v = b.op("Mul", [v, b.scalar(o.scale)], f"{hint}_scaled")
            factors.append(v)
        y = b.op("MatMul" if pop.product == "matmul" else "Mul", factors, f"{pop.name}_product")
        return b.reshape(y, (pop.size,), f"{pop.name}_out")

    def readout(self) -> str:
        """The network's output value at this step, [N, *output_shape]."""
        net = self.net
        if net.output_kind is OutputKind.VALUES:
            y = self.drive(OUTPUT, np.asarray(net.output_bias, dtype=np.float64))
        else:
            y = self.logical(net.output_pop)
        return self.b.reshape(y, tuple(net.output_shape), "readout_value")


def _positions(pop: Population, idx: np.ndarray) -> np.ndarray:
    """Position of each logical index among the kept neurons; removed ones → ``size`` (zero)."""
    pos = np.full(pop.logical_size, pop.size, dtype=np.int64)
    pos[pop.index] = np.arange(pop.size)
    return pos[np.asarray(idx, dtype=np.int64)]

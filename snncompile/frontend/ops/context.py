"""The state of one conversion (fx graph → IR graph) and the helpers handlers share."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import timefold
from snncompile.frontend.fold import Folder, constant_nodes
from snncompile.frontend.guard import Site
from snncompile.frontend.ops.common import unsupported, unsupported_layer
from snncompile.frontend.ops.registry import family_of, module_handler, op_name
from snncompile.ir import Conv2d, Host, Input, IRGraph, Linear, Neuron, Reshape, Scale, Slice, Transpose
from snncompile.ir.dynamics import OrPool
from snncompile.ir.structure import binary_spikes, is_population

# Shape-probe sizes: primes unlikely to equal a feature dimension, so the time and batch
# axes can be told apart from the per-sample axes in every recorded shape.
PROBE_T, PROBE_B = 3, 5


class Converter:
    """What handlers read (the fx graph, recorded shapes, the model's modules) and write
    (the IR graph, the fx → IR name map and the facts later nodes need)."""

    def __init__(self, gm: fx.GraphModule, rec: Any, mode: str, name: str,
                 probe_root: nn.Module, layout: timefold.TimeLayout | None = None,
                 batch: int = PROBE_B, modules: dict[str, nn.Module] | None = None) -> None:
        self.gm, self.rec = gm, rec
        self.layout = layout or timefold.TimeLayout(mode, steps=PROBE_T if mode in ("m", "m-bf") else None)
        # per-sample layout: "s"/"loop" tensors are [B, ...]; "m"/"static-m" [T, B, ...] or [T·B, ...]
        self.mode = "m" if mode in ("m", "static-m", "m-bf") else "s"
        self.T, self.B = (self.layout.steps or PROBE_T), batch
        self.lifted: set[str] = set()     # static [1, B, ...] values about to be repeated over T
        self.pieces: dict[str, tuple[str, int, list[tuple[int, int]], bool]] = {}   # chunk/split results
        self.host_pieces: dict[str, tuple[str, Any]] = {}   # topk/sort/max results: (IR input, HostFn)
        self.no_host = False                                # --no-host: refuse host operations
        # the model's own modules (``dict(gm.named_modules())``, if the caller has it): weights are read here
        self.modules = modules if modules is not None else dict(gm.named_modules())
        self.probe_root = probe_root               # the same model on the probe's device
        self._probe_modules: dict[str, nn.Module] | None = None
        self.g = IRGraph(name)
        self.env: dict[str, str] = {}           # fx node name → IR node name
        self.time_reduced: set[str] = set()
        self.after_mean: set[str] = set()        # fx values computed from a mean over time
        self.windowed: set[str] = set()          # fx values computed from a window host (frontend.ops.window)
        self.neuron_sources: dict[str, str] = {}
        self.neuron_calls: dict[str, int] = {}
        self.masks: dict[str, np.ndarray] = {}   # module path → explicit synapse mask
        self.consts: dict[str, torch.Tensor] = {}  # get_attr fx node → buffer value
        self.consts_used: set[str] = set()          # buffer names applied as keep-masks
        self.folder = Folder(gm, constant_nodes(gm.graph))  # what forward() computes from parameters only
        self.sites: list[Site] = []                 # every synaptic IR node and its source, for the guard

    @property
    def probe_modules(self) -> dict[str, nn.Module]:
        """The probe model's modules by path (made when first asked: most models never do)."""
        if self._probe_modules is None:
            self._probe_modules = dict(self.probe_root.named_modules())
        return self._probe_modules

    # per-sample shape of a recorded fx value
    def sample_shape(self, n: fx.Node) -> tuple[int, ...]:
        sh = self.rec.shapes[n.name]
        if self.mode == "s":
            return sh[1:]
        T, B = self.T, self.B
        if sh[:2] == (T, B) or (sh[:2] == (1, B) and n.name in self.lifted):
            return sh[2:]
        if sh and sh[0] in (T * B, B):
            if sh[0] == B:
                self.time_reduced.add(n.name)
            return sh[1:]
        raise SnnCompileError(f"cannot tell the time and batch axes of `{n.format_node()}` "
                              f"(shape {sh} for T={T}, B={B})",
                              "keep tensors as [T, B, ...] or [T*B, ...] between layers",
                              EXIT_UNSUPPORTED)

    def sample_axis(self, arg: fx.Node, dim: int, where: str) -> int:
        """Map a full-tensor axis to the per-sample axis (errors for time/batch axes)."""
        full = len(self.rec.shapes[arg.name])
        rank = len(self.sample_shape(arg))
        d = dim + full if dim < 0 else dim
        axis = d - (full - rank)
        if not 0 <= axis < rank:
            raise unsupported(f"operation over the time/batch axis {dim}", where)
        return axis

    def add(self, base: str, node: Any, inputs: list[str]) -> str:
        base = base.replace(".", "_")
        if base[:1].isdigit():  # Sequential indices: "0" → "conv2d_0"
            base = f"{node.op}_{base}"
        return self.g.add(self.g.unique_name(base), node, inputs)

    def ir_input(self, arg: Any, where: str) -> str:
        if not isinstance(arg, fx.Node) or arg.name not in self.env:
            raise unsupported(f"non-tensor operand {arg!r}", where)
        return self.env[arg.name]

    def tensor_args(self, n: fx.Node) -> list[fx.Node]:
        """The positional arguments that are tensors already in the IR."""
        return [a for a in n.args if isinstance(a, fx.Node) and a.name in self.env]

    def reshape(self, src: str, shape: tuple[int, ...], where: str, base: str) -> str:
        if tuple(shape) == tuple(self.g.node(src).shape):
            return src
        if int(np.prod(shape)) != self.g.node(src).size:
            raise unsupported(f"reshape {self.g.node(src).shape} → {shape} that mixes samples", where)
        return self.add(base, Reshape(tuple(shape), where), [src])

    def module(self, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
        """The IR of leaf module ``m`` (at ``path``) applied to IR node ``src``."""
        if family_of(m) is not None:
            from snncompile.frontend.ops.neurons import neuron_call  # (imports this module)

            return neuron_call(self, m, path, src, out_shape)
        handler = module_handler(m)
        if handler is None:
            raise unsupported_layer(m, path)
        before = len(self.g.nx)
        out = handler(self, m, path, src, out_shape)
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):   # containers record their own layers
            self.sites.extend(Site(name, path, module=m) for name in list(self.g.nx.nodes)[before:]
                              if isinstance(self.g.node(name), (Conv2d, Linear)))
        return out

    def synapse(self, path: str, node: Conv2d | Linear, inputs: list[str], n: fx.Node) -> str:
        """Add synaptic ``node``, computed by the functional call ``n`` (checked by the guard)."""
        name = self.add(path, node, inputs)
        self.sites.append(Site(name, path, call=n))
        return name

    def refuse(self, n: fx.Node) -> str | None:
        """No handler applies: a Python value is skipped, a tensor operation refused by name."""
        if n.name not in self.rec.shapes:
            return None
        raise unsupported(f"operation `{op_name(n)}`", n.format_node())

    def module_of(self, n: fx.Node) -> str:
        stack = list((n.meta.get("nn_module_stack") or {}).values())
        return stack[-1][0] if stack else "forward"

    def from_host(self, name: str) -> bool:
        """``name`` is a host operation's output, possibly reshaped, transposed or sliced."""
        while isinstance(self.g.node(name), (Reshape, Transpose, Slice)):
            name = self.g.inputs(name)[0]
        return isinstance(self.g.node(name), Host)

    def operand(self, src: str, where: str, module: str) -> str:
        """A product's factor as a population's spikes: a binary value that is not one
        (``1 − s``, an AND result summed or concatenated) is relayed through OR neurons
        (τ = 1, V_th = 1: they fire exactly when the value is 1)."""
        name = src
        while isinstance(self.g.node(name), (Reshape, Transpose, Slice)) or (
                isinstance(self.g.node(name), Scale) and not self.g.node(name).offset):
            name = self.g.inputs(name)[0]
        if is_population(self.g, name) and not isinstance(self.g.node(name), Input):
            return src
        if not binary_spikes(self.g, src):
            raise unsupported("elementwise product whose factor is neither spikes nor a 0/1 function of "
                              "spikes (e.g. 1 − spike)", where)
        node = self.g.node(src)
        return self.add("relay", Neuron(node.shape, f"{module} (relay)", dynamics=OrPool()), [src])

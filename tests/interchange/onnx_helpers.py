"""Shared by the ONNX tests: compile a torch model to a netlist, and an ANN computed
without the netlist or ONNX (the compiled IR, neurons as ReLU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from nets import CASES, SDSANet, TicketNet, cifar_ticket, spikformer_net

from snncompile.frontend import trace_model
from snncompile.ir import Conv2d, Input, IRGraph, Neuron
from snncompile.ir.semantics import STEP
from snncompile.lower import lower
from snncompile.netlist import Netlist
from snncompile.passes import run_passes


def _uniform(seed: int, shape: tuple[int, ...]):
    return lambda: np.random.default_rng(seed).random(shape)


# name → (model factory, per-sample input shape, inputs [T, N, ...])
NETS = {
    **CASES,
    "ticket": (TicketNet, (1, 8, 8), _uniform(21, (5, 6, 1, 8, 8))),
    "spikformer": (spikformer_net, (1, 8, 8), _uniform(22, (4, 5, 1, 8, 8))),
    "sdsa": (SDSANet, (6, 8), _uniform(23, (5, 6, 6, 8))),
    "cifar": (cifar_ticket, (3, 32, 32), _uniform(24, (4, 4, 3, 32, 32))),
}


@dataclass
class Compiled:
    graph: IRGraph
    net: Netlist


def compile_model(model: torch.nn.Module, shape: tuple[int, ...], passes: list[str] | None = None) -> Compiled:
    graph, _ = run_passes(trace_model(model, shape).graph, passes)
    return Compiled(graph, lower(graph))


def kept(net: Netlist, name: str, spikes: np.ndarray) -> np.ndarray:
    """Reference spikes [T, N, *shape] → [T, N, kept size] of population ``name``."""
    flat = spikes.reshape(*spikes.shape[:2], -1)
    idx = net.populations[name].index
    return flat if idx is None else flat[..., idx]


def ann_reference(graph: IRGraph, x: np.ndarray) -> np.ndarray:
    """The compiled IR run once on x [N, *shape] with every neuron as ReLU (removed ones 0) and
    every OR neuron as a max-pool over its synapses' window."""
    vals: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, node in graph.items():
            ins = [vals[s] for s in graph.inputs(name)]
            if isinstance(node, Input):
                out = torch.as_tensor(np.array(x, dtype=np.float64))
            elif isinstance(node, Neuron) and node.role == "or":
                (syn,) = graph.inputs(name)
                conv: Conv2d = graph.node(syn)
                out = F.max_pool2d(vals[graph.inputs(syn)[0]], conv.weight.shape[2:], conv.stride, conv.padding)
            elif isinstance(node, Neuron):
                out = torch.relu(ins[0])
            else:
                out = STEP(node)(node, ins, 1)
            if isinstance(node, Neuron) and node.alive is not None:
                out = out * torch.as_tensor(node.alive.astype(np.float64))
            vals[name] = out.reshape(out.shape[0], *node.shape)
    return vals[graph.output_name].numpy()

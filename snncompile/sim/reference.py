"""Reference simulator: runs the IR over T steps, batched, in float64 torch.

It is the oracle every backend is checked against. Each node computes what its entry in
:data:`snncompile.ir.semantics.STEP` says: stateless nodes on all time steps at once,
neuron populations stepping through time. A recurrent loop (a component of
:meth:`IRGraph.schedule`) is stepped through time as a whole: at step t each of its nodes
computes step t (a Delay returns its input of ``steps`` ago), neurons carry their state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import Delay, Host, Input, IRGraph, Neuron, Output, dynamics
from snncompile.ir.semantics import STEP, delayed_step, neuron_params


@dataclass
class SimResult:
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # neuron → [T, B, *shape] uint8 (float64
    #                                                               membrane of a non-spiking neuron)
    output: np.ndarray | None = None                               # [T, B, *out] float64
    values: dict[str, np.ndarray] = field(default_factory=dict)   # every node, if asked


def simulate(graph: IRGraph, x: np.ndarray, keep_values: bool = False) -> SimResult:
    """Run ``graph`` on ``x`` of shape [T, B, *input_shape]; return spikes and output."""
    x = np.array(x, dtype=np.float64)  # a private, writable copy (inputs may be broadcast views)
    T, B = x.shape[:2]
    vals: dict[str, torch.Tensor] = {}   # node → [T*B, *shape]
    res = SimResult()
    loops = {n: group for group in graph.schedule() if len(group) > 1 or _self_loop(graph, group[0])
             for n in group}
    with torch.no_grad():
        for name, node in graph.items_releasing(vals):  # big activations at 224 px
            srcs = graph.inputs(name)
            if name in loops:
                if name == loops[name][0]:   # the whole loop, once its outside inputs exist
                    vals.update(_run_loop(graph, loops[name], vals, T, B))
                out = vals[name]
            else:
                ins = [torch.as_tensor(x).reshape(T * B, *node.shape)] if isinstance(node, Input) \
                    else [vals[s] for s in srcs]
                out = STEP(node)(node, ins, T)
            if tuple(out.shape[1:]) != tuple(node.shape):
                raise ValueError(f"{name}: produced shape {tuple(out.shape[1:])}, IR says {node.shape}")
            if isinstance(node, Neuron):
                out_t = out.reshape(T, B, *node.shape)
                res.spikes[name] = (out_t.to(torch.uint8) if node.emits_spikes else out_t).numpy()
            elif isinstance(node, Output):
                res.output = out.reshape(T, B, *node.shape).numpy().copy()
            vals[name] = out
            if keep_values:
                res.values[name] = out.reshape(T, B, *node.shape).numpy()
    return res


def _self_loop(graph: IRGraph, name: str) -> bool:
    return graph.nx.has_edge(name, name)


def _run_loop(graph: IRGraph, group: list[str], vals: dict[str, torch.Tensor], T: int,
              B: int) -> dict[str, torch.Tensor]:
    """Step a recurrent component through time; returns each member's [T·B, *shape] values."""
    inside = set(group)
    hist: dict[str, list[torch.Tensor]] = {n: [] for n in group}
    state: dict[str, torch.Tensor] = {}
    outside = {s: vals[s].reshape(T, B, *graph.node(s).shape) for n in group for s in graph.inputs(n)
               if s not in inside}
    for t in range(T):
        for name in group:
            node = graph.node(name)
            if isinstance(node, Delay):
                src = graph.inputs(name)[0]
                past = hist[src] if src in inside else outside[src]
                y = delayed_step(node, past.__getitem__, t, B)
            else:
                ins = [hist[s][t] if s in inside else outside[s][t] for s in graph.inputs(name)]
                if isinstance(node, Neuron):
                    p = neuron_params(node, ins[0])
                    v = state.get(name)
                    if v is None:
                        v = dynamics.initial_state(p, torch.full_like(ins[0], p.v_init))
                    y, state[name] = dynamics.step(v, ins[0], p)
                    if node.alive is not None:
                        y = y * torch.as_tensor(node.alive.astype(np.float64))
                else:
                    if isinstance(node, Host) and node.fn.window:   # one step of a loop is not the window
                        raise SnnCompileError(f"`{node.fn.describe()}` at `{node.source or name}` is inside a "
                                              "recurrent loop: a window host needs all T steps of its input "
                                              "first, and the loop computes them from its own output",
                                              "take the mean over time outside the loop", EXIT_UNSUPPORTED)
                    y = STEP(node)(node, ins, 1)
            hist[name].append(y)
    return {n: torch.stack(hist[n]).reshape(T * B, *graph.node(n).shape) for n in group}

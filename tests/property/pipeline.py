"""Compile a generated network the way the pipeline does, and brute-force counts of it.

The brute-force counts use the generated PyTorch model only: the dense Jacobian of each
bias-free stateless map (autograd, float64), the pooling windows enumerated index by
index, and the inputs the synaptic modules received in the float64 PyTorch run (forward
pre-hooks). The compiler's answers are read from its own outputs: which neurons it kept
(``Neuron.alive``), the netlist's projections and the energy report.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from equivalence import Runs, assert_equivalent_after_each, assert_same_spikes
from hypothesis import event, note, reject
from spikingjelly.activation_based import functional
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.frontend.trace import detach_pruned, reset_states
from snncompile.ir import IRGraph, Neuron, Pool2d
from snncompile.ir.dynamics import step as neuron_step
from snncompile.ir.semantics import neuron_params
from snncompile.lower import lower
from snncompile.netlist import Netlist
from snncompile.passes import run_passes
from snncompile.passes.base import PassStats
from snncompile.sim import run_torch, simulate

from .netgen import NetSpec, SpecNet, build_model, make_inputs


@dataclass
class Case:
    """A generated network, compiled: the PyTorch float64 run, the optimized graph and its
    netlist (``runs.plan`` is that netlist)."""

    spec: NetSpec
    model: SpecNet
    x: np.ndarray
    runs: Runs
    graph: IRGraph
    stats: list[PassStats]
    plan: Netlist


def announce(spec: NetSpec) -> None:
    """Print the network with a failing example (hypothesis shows notes on failure)."""
    note("generated network:\n" + spec.describe() + "\nrebuild it with:\n" + spec.repro())


def compile_model(model: nn.Module, x: np.ndarray, input_shape: tuple[int, ...],
                  check_each_pass: bool = False) -> tuple[Runs, IRGraph, list[PassStats]]:
    """Trace, run PyTorch (float64), check the unoptimized reference simulator spike for
    spike, run the default passes (checking the reference after each one if asked) and
    lower the optimized graph (``runs.plan``), as the pipeline does: the unoptimized graph
    is not lowered."""
    tr = trace_model(model, input_shape)
    torch_run = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()),
                          tr.graph.output_time_reduced)
    ref = simulate(tr.graph, x)
    spikes = {n: torch_run.spikes[p] for n, p in tr.neuron_sources.items()}
    runs = Runs(tr, None, spikes, torch_run.output, ref.spikes, ref.output)  # type: ignore[arg-type]
    assert_same_spikes(spikes, ref.spikes, "unoptimized reference simulator vs PyTorch:")
    if check_each_pass:
        graph, by_name = assert_equivalent_after_each(runs, x)
        stats = list(by_name.values())
    else:
        graph, stats = run_passes(tr.graph)
    runs.plan = lower(graph)
    return runs, graph, stats


def compile_case(spec: NetSpec, check_each_pass: bool = False) -> Case:
    """:func:`compile_model` on the network ``spec`` describes (printed if the test fails)."""
    announce(spec)
    model, x = build_model(spec), make_inputs(spec)
    try:
        runs, graph, stats = compile_model(model, x, spec.input_shape, check_each_pass)
    except SnnCompileError as exc:
        # refusing a max-pool of a sum of spikes (not an OR) is a correct answer; anything
        # else the generator makes must compile
        if exc.exit_code != EXIT_UNSUPPORTED or not any(
                s.kind == "maxpool" and len(s.src) == 2 for s in spec.stages):
            raise
        event(f"refused by the compiler: {exc.message}")
        reject()
    record_events(spec, runs, graph, x)
    return Case(spec, model, x, runs, graph, stats, runs.plan)


def fired(case_or_runs: Case | Runs) -> int:
    """Spikes of all neuron layers in the PyTorch run."""
    runs = case_or_runs.runs if isinstance(case_or_runs, Case) else case_or_runs
    return sum(int(s.sum()) for s in runs.torch_spikes.values())


def record_events(spec: NetSpec, runs: Runs, graph: IRGraph, x: np.ndarray) -> None:
    """Statistics shown by --hypothesis-show-statistics: what the example exercised."""
    layers = [bool(s.any()) for s in runs.torch_spikes.values()]
    event("neuron layers that spiked: " + ("all" if all(layers) else "some" if any(layers) else "none"))
    hits = "yes" if count_threshold_hits(runs.trace.graph, x) else "no"
    event(f"membrane exactly at threshold: {hits} ({'exact' if spec.exact else 'mixed'} network)")
    removed = sum(graph.node(n).size - graph.node(n).kept for n in graph.of_type(Neuron))
    event(f"neurons removed by passes: {'yes' if removed else 'no'}")
    event(f"binarized layers: {'yes' if any(getattr(n, 'binary', False) for _, n in graph.items()) else 'no'}")
    event(f"step mode {spec.step_mode}, {'value' if spec.readout else 'spike'} output")
    for s in spec.stages:
        if len(s.src) == 2:
            event("residual add")
        if s.kind == "maxpool":
            event("max-pool (OR neurons)")
            continue
        event(f"layer {s.layer}" + (" after avg-pool" if s.avgpool else ""))
        event(f"neuron {s.neuron.model}, {'soft' if s.neuron.v_reset is None else 'hard'} reset")
        event(f"weights {s.weights.style}" + (", pruned" if s.weights.sparsity else ""))
        if s.bn:
            event(f"batch norm ({s.bn})")
        if s.mask:
            event("keep-mask")


# -- exact-threshold statistics -----------------------------------------------------------

def count_threshold_hits(graph: IRGraph, x: np.ndarray) -> int:
    """Number of (step, sample, neuron) entries whose charged membrane equals the threshold
    exactly, in the reference simulation of ``graph`` (statistics only, not an oracle)."""
    res = simulate(graph, x, keep_values=True)
    hits = 0
    for name in graph.of_type(Neuron):
        node = graph.node(name)
        drive = torch.as_tensor(res.values[graph.inputs(name)[0]]).reshape(x.shape[0], x.shape[1], -1)
        p = neuron_params(node)
        v = torch.full(drive.shape[1:], p.v_init, dtype=torch.float64)
        th = torch.as_tensor(np.broadcast_to(np.asarray(p.v_threshold, np.float64), drive.shape[2:]).copy())
        for t in range(drive.shape[0]):
            h = p.charge(v, drive[t])
            hits += int((h == th).sum())
            _, v = neuron_step(v, drive[t], p)
    return hits


# -- brute force ------------------------------------------------------------------------------

def float64_single_step(model: nn.Module) -> nn.Module:
    """A float64, single-step copy of ``model`` (pruning hooks detached first)."""
    detach_pruned(model)
    m = copy.deepcopy(model).to(torch.float64).eval()
    functional.set_step_mode(m, "s")
    return m


def jacobian(fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...]) -> np.ndarray:
    """Dense (out size × in size) Jacobian of ``fn`` on one sample of ``in_shape`` at 0: for
    an affine map, its bias-free matrix."""
    x0 = torch.zeros((1, *in_shape), dtype=torch.float64)
    with torch.no_grad():
        n_out = int(fn(x0).numel())
    j = torch.autograd.functional.jacobian(lambda x: fn(x).reshape(-1), x0)
    return j.reshape(n_out, -1).detach().numpy()


def _exact(v: float) -> Fraction:
    """A pooling weight 1/n (stored as the float nearest to it) as the exact fraction, any
    other float as itself (floats are rationals)."""
    if 0 < v < 1:
        n = round(1 / v)
        if abs(n * v - 1) < 1e-12:
            return Fraction(1, n)
    return Fraction(v)


def exact_nonzero_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Nonzero pattern of a @ b in exact arithmetic: entries whose float value could be a
    rounding residue of an exact cancellation are recomputed with fractions."""
    prod = a @ b
    bound = np.abs(a) @ np.abs(b)
    nz = prod != 0
    doubt = np.argwhere((np.abs(prod) <= 1e-9 * bound) & (bound > 0))
    for o, i in doubt:
        ks = np.flatnonzero((a[o] != 0) & (b[:, i] != 0))
        nz[o, i] = sum((_exact(float(a[o, k])) * _exact(float(b[k, i])) for k in ks), Fraction(0)) != 0
    return nz


def window_matrix(in_shape: tuple[int, ...], out_shape: tuple[int, ...], k: int, s: int, p: int) -> np.ndarray:
    """0/1 (out × in) matrix of a max-pool's windows, enumerated index by index (padding
    positions are no input)."""
    c, h, w = in_shape
    _, ho, wo = out_shape
    m = np.zeros((c * ho * wo, c * h * w), dtype=np.int64)
    for ch in range(c):
        for oy in range(ho):
            for ox in range(wo):
                for dy in range(k):
                    for dx in range(k):
                        iy, ix = oy * s - p + dy, ox * s - p + dx
                        if 0 <= iy < h and 0 <= ix < w:
                            m[(ch * ho + oy) * wo + ox, (ch * h + iy) * w + ix] = 1
    return m


def stage_names(graph: IRGraph) -> dict[int, str]:
    """Stage index → IR population name (0 = the input), from the nodes' module paths
    (``sn{i}`` for neurons, ``pool{i}`` for max-pools, as OR neurons after the passes)."""
    names = {0: graph.input_name}
    for name, node in graph.items():
        m = re.fullmatch(r"(?:sn|pool)(\d+)", getattr(node, "source", ""))
        if m and isinstance(node, (Neuron, Pool2d)):
            names[int(m.group(1))] = name
    return names


def kept(graph: IRGraph, name: str) -> np.ndarray:
    """Flat bool: the neurons of population ``name`` that exist in the compiled network."""
    node = graph.node(name)
    alive = getattr(node, "alive", None)
    return np.ones(node.size, bool) if alive is None else np.asarray(alive, bool).ravel()


@dataclass
class Recording:
    """Per stage (0: readout), [T, N, size] values of one float64 PyTorch run."""

    syn_in: dict[int, np.ndarray]    # input of the Linear/Conv2d module
    pool_in: dict[int, np.ndarray]   # input of a max-pool stage
    pool_out: dict[int, np.ndarray]  # output of a max-pool stage


class Brute:
    """Connectivity of a generated model from its PyTorch modules alone. Stage i ≥ 1 is a
    network stage, i = 0 the readout."""

    def __init__(self, spec: NetSpec, model: SpecNet) -> None:
        self.spec = spec
        self.m = float64_single_step(model)

    def sources(self, i: int) -> tuple[int, ...]:
        return self.spec.readout.src if i == 0 else self.spec.stages[i - 1].src

    def _masked(self, j: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """Stage j's output as later stages see it (its keep-mask applied)."""
        if j and self.spec.stages[j - 1].mask:
            keep = getattr(self.m, f"keep{j}").to(torch.float64)
            return lambda s: s * keep
        return lambda s: s

    def split(self, i: int) -> tuple[nn.Module, nn.Module]:
        """(pools/flatten before the synapse, Linear/Conv2d [+ BatchNorm])."""
        mods = list(self.m.head if i == 0 else getattr(self.m, f"pre{i}"))
        first = next(k for k, mod in enumerate(mods) if isinstance(mod, (nn.Linear, nn.Conv2d)))
        return nn.Sequential(*mods[:first]), nn.Sequential(*mods[first:])

    def synapse(self, i: int) -> nn.Module:
        """The Linear/Conv2d module."""
        return self.split(i)[1][0]

    def synapse_in_shape(self, i: int) -> tuple[int, ...]:
        pre, _ = self.split(i)
        with torch.no_grad():
            return tuple(pre(torch.zeros((1, *self.spec.shape_of(self.sources(i)[0])),
                                         dtype=torch.float64)).shape[1:])

    def bn_scale(self, i: int) -> np.ndarray | None:
        """Per-channel BatchNorm scale γ/√(σ²+ε) after the synapse, if any."""
        _, part = self.split(i)
        if len(part) == 1:
            return None
        bn = part[1]
        return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()

    def _rows_scaled(self, i: int, nz: np.ndarray) -> np.ndarray:
        """``nz`` (synapse outputs × ...) without the rows a zero BatchNorm scale removes."""
        scale = self.bn_scale(i)
        return nz if scale is None else nz & (scale != 0).repeat(nz.shape[0] // scale.size)[:, None]

    def projection(self, i: int, j: int) -> np.ndarray:
        """Bool matrix (stage i's neurons, or the readout outputs, × stage j's neurons):
        joined by a nonzero effective weight, decided in exact arithmetic."""
        assert j in self.sources(i)
        if i and self.spec.stages[i - 1].kind == "maxpool":
            s = self.spec.stages[i - 1]
            return window_matrix(self.spec.shape_of(j), s.shape, s.kernel, s.stride, s.padding) != 0
        pre, _ = self.split(i)
        mask = self._masked(j)
        before = jacobian(lambda v: pre(mask(v)), self.spec.shape_of(j))   # mask, pools, flatten
        weights = jacobian(self.synapse(i), self.synapse_in_shape(i))
        return self._rows_scaled(i, exact_nonzero_product(weights, before))

    def layer(self, i: int) -> np.ndarray:
        """Bool matrix of the synapse (then BatchNorm) alone: output element × input element
        joined by a nonzero weight (one weight per pair: no sums, no cancellation)."""
        return self._rows_scaled(i, jacobian(self.synapse(i), self.synapse_in_shape(i)) != 0)

    def reached_inputs(self, i: int, graph: IRGraph, names: dict[int, str]) -> np.ndarray:
        """Flat over the synapse's input: elements driven by a kept neuron (or by the input)
        through the mask, pools and flatten before it. Where a sum of populations reaches the
        synapse element for element (no pooling between), the number of populations: each
        has its own synapses in the deployed network."""
        pre, _ = self.split(i)
        stage = self.spec.stages[i - 1] if i else None
        per_population = not (stage and stage.avgpool)
        out = np.zeros(int(np.prod(self.synapse_in_shape(i))), np.int64 if per_population else bool)
        for j in self.sources(i):
            ind = torch.as_tensor(kept(graph, names[j]).astype(np.float64)).reshape(1, *self.spec.shape_of(j))
            with torch.no_grad():
                hit = pre(self._masked(j)(ind)).reshape(-1).numpy() > 0
            out = out + hit if per_population else out | hit
        return out

    def weights(self, i: int) -> np.ndarray:
        """Effective kernel of the synapse: W · BatchNorm scale per output channel."""
        w = self.synapse(i).weight.detach().numpy()
        scale = self.bn_scale(i)
        return w if scale is None else w * scale.reshape((-1,) + (1,) * (w.ndim - 1))

    def record(self, x: np.ndarray) -> Recording:
        """Run the float64 model on x [T, N, ...] step by step and record what every synaptic
        module and max-pool received and what every max-pool produced."""
        lists: tuple[dict[int, list[np.ndarray]], ...] = ({}, {}, {})
        syn_in, pool_in, pool_out = lists

        def keep(store: dict[int, list[np.ndarray]], i: int, t: torch.Tensor) -> None:
            store.setdefault(i, []).append(t.detach().numpy().reshape(t.shape[0], -1))

        handles = []
        for i, s in enumerate(self.spec.stages, 1):
            if s.kind == "maxpool":
                pool = getattr(self.m, f"pool{i}")
                handles.append(pool.register_forward_pre_hook(lambda _m, a, i=i: keep(pool_in, i, a[0])))
                handles.append(pool.register_forward_hook(lambda _m, _a, y, i=i: keep(pool_out, i, y)))
            else:
                handles.append(self.synapse(i).register_forward_pre_hook(
                    lambda _m, a, i=i: keep(syn_in, i, a[0])))
        if self.spec.readout:
            handles.append(self.synapse(0).register_forward_pre_hook(lambda _m, a: keep(syn_in, 0, a[0])))
        try:
            reset_states(self.m)
            with torch.no_grad():
                for t in range(x.shape[0]):
                    self.m(torch.as_tensor(x[t], dtype=torch.float64))
        finally:
            for h in handles:
                h.remove()
            reset_states(self.m)
        return Recording(*({i: np.stack(v) for i, v in d.items()} for d in lists))


def value_output(case: Case) -> np.ndarray | None:
    """The compiled reference's value output in the PyTorch output's layout, or None."""
    out = simulate(case.graph, case.x).output
    if out is None:
        return None
    return out.mean(axis=0) if case.graph.output_time_reduced else out


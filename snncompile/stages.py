"""The pipeline as small stages with typed results; ``api.compile`` composes them.

load → trace → optimize → lower → (quantize, map) → simulate → verify → estimate.
Each stage takes what the previous ones returned and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snncompile.compare import predictions, spike_agreement
from snncompile.energy import EnergyReport, estimate_energy, parse_firing_rates
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.fixedpoint.quantize import QuantInfo, quantize_plan
from snncompile.frontend import load_model, trace_model
from snncompile.frontend.load import LoadedModel
from snncompile.frontend.masks import apply_masks, read_masks
from snncompile.inputs import InputData
from snncompile.ir import IRGraph
from snncompile.ir.labels import labels
from snncompile.lower import lower as lower_graph
from snncompile.netlist import OUTPUT, Netlist
from snncompile.netlist.target import TargetRun
from snncompile.netlist.target import get as get_target
from snncompile.passes import PassStats, run_passes
from snncompile.sim import SimResult, TorchRun, run_torch, simulate
from snncompile.sim.integer import simulate_int

Progress = Callable[[str, int, int], None]


@dataclass
class Traced:
    graph: IRGraph
    step_mode: str
    neuron_sources: dict[str, str]    # IR neuron → module path in the source model
    module: object | None             # the source nn.Module (kept only when a run needs it)
    meta: dict


@dataclass
class Optimized:
    graph: IRGraph
    stats: list[PassStats]


@dataclass
class Verification:
    spike_agreement: float
    per_layer_spike_agreement: dict[str, float]   # keyed by the user's module path (``labels``)
    prediction_agreement: float
    accuracy: float | None
    per_layer_ir_names: dict[str, str] = field(default_factory=dict)   # module path → IR neuron

    def to_dict(self) -> dict:
        return {"spike_agreement": self.spike_agreement, "per_layer_spike_agreement": self.per_layer_spike_agreement,
                "per_layer_ir_names": self.per_layer_ir_names,
                "prediction_agreement": self.prediction_agreement, "accuracy": self.accuracy}


def load(model: str | Path, *, arch: str | None = None, trust_pickle: bool = False) -> LoadedModel:
    return load_model(model, arch=arch, trust_pickle=trust_pickle)


def input_shape_of(explicit, meta: dict, data: InputData | None, module) -> tuple[int, ...]:
    if explicit:
        return tuple(int(v) for v in explicit)
    if meta.get("input_shape"):
        return tuple(int(v) for v in meta["input_shape"])
    if data is not None:
        return data.sample_shape()
    from torch import nn

    for m in module.modules():
        if isinstance(m, nn.Linear):
            return (m.in_features,)
        if isinstance(m, nn.Conv2d):
            break
    raise SnnCompileError("the input shape of the model is unknown",
                          "pass --input-shape C,H,W or an --input file", EXIT_USAGE)


def _check_finite(graph: IRGraph) -> None:
    for name, node in graph.items():
        for key, value in node.params().items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise SnnCompileError(f"layer `{node.source or name}` has NaN or infinite {key}",
                                      "the checkpoint is broken (diverged training?); re-export it", EXIT_USAGE)


def trace(loaded: LoadedModel, shape: tuple[int, ...], *, masks: str | Path | None = None,
          keep_module: bool = True, no_host: bool = False) -> Traced:
    name = loaded.meta.get("name") or Path(loaded.path).stem
    synapse_masks = apply_masks(loaded.module, read_masks(masks), masks) if masks else None
    result = trace_model(loaded.module, shape, name=str(name), masks=synapse_masks, no_host=no_host)
    _check_finite(result.graph)
    result.graph.meta["source_model"] = str(loaded.path)
    return Traced(result.graph, result.step_mode, result.neuron_sources,
                  loaded.module if keep_module else None, loaded.meta)


def import_nir(model: str | Path, *, dt: float | None, input_shape: tuple[int, ...] | None,
               masks: str | Path | None = None) -> Traced:
    """Read a NIR graph; the imported (pre-pass) IR is kept as the oracle of a run."""
    from snncompile.frontend.nir_import import import_nir as read_nir

    if masks:
        raise SnnCompileError("--masks applies to PyTorch checkpoints", "a NIR graph's zero weights are its "
                              "pruned synapses already; drop --masks", EXIT_USAGE)
    imp = read_nir(model, dt=dt, input_shape=input_shape)
    _check_finite(imp.graph)
    return Traced(imp.graph, "s", imp.neuron_sources, imp.graph.copy(), imp.meta)


def import_netx(model: str | Path, *, input_shape: tuple[int, ...] | None = None,
                masks: str | Path | None = None) -> Traced:
    """Read a lava-dl netx file; the imported (pre-pass) IR is kept as the oracle of a run."""
    from snncompile.frontend.netx_import import import_netx as read_netx

    if masks:
        raise SnnCompileError("--masks applies to PyTorch checkpoints", "a netx file's zero weights are its "
                              "pruned synapses already; drop --masks", EXIT_USAGE)
    graph = read_netx(model)
    if input_shape is not None and tuple(input_shape) != tuple(graph.input_shape):
        raise SnnCompileError(f"--input-shape {tuple(input_shape)} differs from the netx file's input layer "
                              f"{tuple(graph.input_shape)}", "drop --input-shape: the file declares it", EXIT_USAGE)
    _check_finite(graph)
    from snncompile.ir.nodes import Neuron

    sources = {n: n for n in graph.of_type(Neuron)}
    return Traced(graph, "s", sources, graph.copy(), {"name": graph.name})


def optimize(graph: IRGraph, passes: list[str] | None = None, *, copy: bool = True,
             verify: bool | None = None) -> Optimized:
    """Run the passes; ``verify``: check the IR after each (None: ``passes.manager``'s default)."""
    g, stats = run_passes(graph, passes, copy=copy, verify=verify)
    return Optimized(g, stats)


def lower(graph: IRGraph) -> Netlist:
    return lower_graph(graph)


def _quantize_netx(net: Netlist, calib: np.ndarray) -> tuple[Netlist, QuantInfo]:
    from snncompile.fixedpoint.netx import quantize_netx

    return quantize_netx(net, calib)


# a target's integer rules (``TargetSpec.integer_rules``) → its quantizer
QUANTIZERS: dict[str, Callable[[Netlist, np.ndarray], tuple[Netlist, QuantInfo]]] = {
    "loihi": quantize_plan, "netx": _quantize_netx}


def quantize(net: Netlist, x: np.ndarray | None, shape: tuple[int, ...],
             rules: str = "loihi") -> tuple[Netlist, QuantInfo]:
    """Integers for ``net`` under ``rules`` (Lava's bit-accurate Loihi, or netx's file rules)."""
    calib = x if x is not None else np.ones((1, 1, *shape))
    return QUANTIZERS[rules](net, calib)


def reference(graph: IRGraph, x: np.ndarray) -> SimResult:
    return simulate(graph, x, keep_values=True)


def run_source(traced: Traced, graph: IRGraph, x: np.ndarray) -> TorchRun:
    """The source PyTorch model in float64: the oracle every run is compared with (for a NIR
    graph, the reference simulator on the graph as imported)."""
    if isinstance(traced.module, IRGraph):
        sim = simulate(traced.module, x)
        return TorchRun({src: sim.spikes[n] for n, src in traced.neuron_sources.items()}, sim.output)
    return run_torch(traced.module, x, traced.step_mode, list(traced.neuron_sources.values()),
                     graph.output_time_reduced, output_steps=graph.output_steps)


def simulate_on(target: str, net: Netlist, x: np.ndarray, *, timeout: float,
                progress: Progress | None = None, emit: str | None = None) -> TargetRun:
    cb = (lambda done, total: progress(f"{target} simulation", done, total)) if progress else None
    return get_target(target).run(net, x, timeout_s=timeout, progress=cb, emit=emit)


def verify(traced: Traced, graph: IRGraph, net: Netlist | None, out: dict[str, np.ndarray],
           torch_run: TorchRun, y: np.ndarray | None) -> Verification:
    """Agreement of a run (spikes per population, or per IR neuron when ``net`` is None)
    with the float64 PyTorch model, over the neurons that exist in the compiled network."""
    # an inline neuron whose spikes no module receives cannot be observed in the source model
    torch_spikes = {n: torch_run.spikes[p] for n, p in traced.neuron_sources.items() if p in torch_run.spikes}
    if net is None:
        got = {n: out[n] for n in torch_spikes if n in out}
    else:
        got = {n: net.populations[n].expand(out[n]).reshape(torch_spikes[n].shape)
               for n in torch_spikes if n in net.populations and n in out}   # a file target reads its output only
    keep = {n: graph.node(n).alive for n in got if graph.node(n).alive is not None}
    agree, per_layer = spike_agreement(torch_spikes, got, keep)
    if net is None:
        pred = predictions(out[OUTPUT]) if OUTPUT in out else None
    elif net.output_kind.from_population:
        pred = predictions(net.populations[net.output_pop].expand(out[net.output_pop]))
    else:
        pred = predictions(out[OUTPUT])
    pred_torch = predictions(torch_run.output, graph.output_time_reduced)
    names = labels(graph)
    return Verification(agree, {names.get(n, n): a for n, a in per_layer.items()},
                        float((pred == pred_torch).mean()), None if y is None else float((pred == y).mean()),
                        {names.get(n, n): n for n in per_layer})


def estimate(graph: IRGraph, *, steps: int, values: dict[str, np.ndarray] | None, firing_rates: str | None,
             cost_model: str, ann_sparse: bool, net: Netlist | None = None) -> EnergyReport:
    rates = parse_firing_rates(firing_rates) if firing_rates else None
    return estimate_energy(graph, steps=steps, values=None if rates else values, firing_rates=rates,
                           cost_model=cost_model, ann_sparse=ann_sparse, model_name=graph.name, net=net)


def token_selection(graph: IRGraph, *, steps: int, x: np.ndarray | None, values: dict[str, np.ndarray] | None,
                    keep_ratio: float | None, report: EnergyReport, cost_model: str) -> Any:
    """What the model's token selectors save (None without selectors, or without input and
    ``--keep-ratio``): exact from the simulation, else from the stated keep ratio. A selector
    the network cannot be rebuilt without (every token kept) is named in a note, never guessed."""
    from snncompile.energy.every_token import NoEveryTokenNetwork, find_selectors
    from snncompile.energy.tokens import token_saving

    found, unknown = find_selectors(graph)
    if not found and not unknown:
        if keep_ratio is not None:
            raise SnnCompileError("--keep-ratio was given, but the model has no token selector (top-k or sorted-order "
                                  "indices picking tokens, or a keep mask made from them)", "drop --keep-ratio",
                                  EXIT_USAGE)
        return None
    if x is None and keep_ratio is None and (unknown or any(s.kind == "mask" for s in found)):
        # a gather keeps k of N by construction (priced without input); a mask's share is data-dependent
        report.notes.append("token selectors found: pass --input (exact) or --keep-ratio R to price what they save")
        return None
    if x is not None and keep_ratio is not None:
        report.notes.append(f"--keep-ratio {keep_ratio:g} not used: the tokens kept are measured from --input")
    try:
        return token_saving(graph, steps=steps, x=x, values=values, keep_ratio=None if x is not None else keep_ratio,
                            cost_model=cost_model, report=report)
    except NoEveryTokenNetwork as exc:
        report.notes.append(f"token selection not priced: {exc.message}")
        return None


@dataclass
class TargetResult:
    """A target run with its timing, for the report."""

    run: TargetRun
    wall_s: float
    extra: dict = field(default_factory=dict)


def timed_run(target: str, net: Netlist, x: np.ndarray, *, timeout: float,
              progress: Progress | None, emit: str | None = None, workers: int | None = None,
              ray_address: str | None = None, ray_connect_timeout: float = 30.0) -> TargetResult:
    """Run on the target, in one process or (``workers``) in shards on Ray."""
    t0 = time.perf_counter()
    if workers:
        from snncompile.parallel import run_sharded

        cb = (lambda done, total: progress(f"{target} shards on ray", done, total)) if progress else None
        run = run_sharded(target, net, x, workers=workers, address=ray_address, timeout_s=timeout, emit=emit,
                          progress=cb, connect_timeout=ray_connect_timeout)
    else:
        run = simulate_on(target, net, x, timeout=timeout, progress=progress, emit=emit)
    return TargetResult(run, time.perf_counter() - t0)


def target_outputs(run: TargetRun) -> dict[str, np.ndarray]:
    out = dict(run.spikes)
    if run.output is not None:
        out[OUTPUT] = run.output
    return out


def integer_reference(net: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    return simulate_int(net, x)

"""Public Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from snncompile.compare import predictions, spike_agreement
from snncompile.energy import dynamic_counts, energy_summary, load_cost_model, static_counts
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.frontend import load_model, trace_model
from snncompile.frontend.trace import TraceResult
from snncompile.inputs import InputData, load_inputs
from snncompile.ir import Conv2d, IRGraph, Linear, Neuron, save_ir
from snncompile.lower import plan_network
from snncompile.report import LayerRow, Report
from snncompile.sim import run_torch, simulate

TARGETS = ("lava", "ir")
Progress = Callable[[str, int, int], None]


def _input_shape(explicit, meta: dict, data: InputData | None, model) -> tuple[int, ...]:
    if explicit:
        return tuple(int(v) for v in explicit)
    if meta.get("input_shape"):
        return tuple(int(v) for v in meta["input_shape"])
    if data is not None:
        return data.sample_shape()
    from torch import nn

    for m in model.modules():
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
                                      "the checkpoint is broken (diverged training?); re-export it",
                                      EXIT_USAGE)


def layer_rows(graph: IRGraph) -> list[LayerRow]:
    counts = {c.name: c for c in static_counts(graph)}
    rows = []
    for name, node in graph.items():
        row = LayerRow(name, node.op, tuple(node.shape))
        if isinstance(node, Neuron):
            row.neurons = node.size
            row.detail = node.describe()
        elif isinstance(node, (Conv2d, Linear)):
            c = counts[name]
            row.synapses, row.synapses_dense = c.synapses, c.synapses_dense
            if isinstance(node, Conv2d):
                k = node.weight.shape[2:]
                row.detail = (f"{node.weight.shape[1] * node.groups}→{node.weight.shape[0]} "
                              f"k{k[0]}x{k[1]} s{node.stride[0]} p{node.padding[0]}")
            else:
                row.detail = f"{node.weight.shape[1]}→{node.weight.shape[0]}"
            row.detail += "" if node.bias is None else " +bias"
        elif node.op == "pool2d":
            row.detail = f"{node.mode} k{node.kernel[0]} s{node.stride[0]}"
        elif node.op == "batchnorm":
            row.detail = f"{node.shape[0]} channels"
        rows.append(row)
    return rows


def trace(model: str | Path, *, arch: str | None = None, trust_pickle: bool = False,
          input_shape: tuple[int, ...] | None = None, data: InputData | None = None
          ) -> tuple[TraceResult, dict]:
    """Load and trace a checkpoint; returns the trace and the checkpoint metadata."""
    loaded = load_model(model, arch=arch, trust_pickle=trust_pickle)
    shape = _input_shape(input_shape, loaded.meta, data, loaded.module)
    name = loaded.meta.get("name") or Path(model).stem
    result = trace_model(loaded.module, shape, name=str(name))
    _check_finite(result.graph)
    result.graph.meta["source_model"] = str(model)
    result.module = loaded.module  # type: ignore[attr-defined]
    return result, loaded.meta


def inspect(model: str | Path, **kw) -> Report:
    """Trace ``model`` and return its layer table (no simulation)."""
    tr, meta = trace(model, **kw)
    return Report(model=str(model), target="ir", steps=meta.get("steps"), layers=layer_rows(tr.graph))


def compile(model: str | Path, target: str = "lava", *, steps: int | None = None,
            input: str | Path | None = None, samples: int | None = None, simulate_on_target: bool = False,
            outdir: str | Path | None = None, arch: str | None = None, trust_pickle: bool = False,
            input_shape: tuple[int, ...] | None = None, energy_model: str = "45nm",
            timeout: float = 600.0, progress: Progress | None = None) -> Report:
    """Compile ``model`` for ``target``; with ``simulate_on_target`` also run it there.

    Mirrors ``snncompile MODEL --target lava [--steps T] [--input F] [--samples N]
    [--simulate] [-o OUTDIR]``.
    """
    if target not in TARGETS:
        raise SnnCompileError(f"unknown target {target!r}", f"choose one of {', '.join(TARGETS)}", EXIT_USAGE)
    if samples is not None and samples < 1:
        raise SnnCompileError("--samples must be at least 1", "e.g. --samples 100", EXIT_USAGE)
    loaded_shape = tuple(input_shape) if input_shape else None
    data = load_inputs(input, None) if input else None
    tr, meta = trace(model, arch=arch, trust_pickle=trust_pickle,
                     input_shape=loaded_shape, data=data)
    graph = tr.graph
    in_shape = tuple(graph.meta["input_shape"])
    if data is not None:
        data = load_inputs(input, in_shape).take(samples)
    T = _steps(steps, meta, data)
    graph.meta["steps"] = T
    report = Report(model=str(model), target=target, steps=T, layers=layer_rows(graph))

    plan = plan_network(graph) if target == "lava" else None
    if plan is not None:
        report.lowering = {
            "populations": sum(1 for p in plan.populations.values() if p.kind != "input"),
            "or_populations": sum(1 for p in plan.populations.values() if p.kind == "or"),
            "projections": sum(1 for p in plan.projections if p.nnz),
            "synapses": sum(p.nnz for p in plan.projections),
            "latency_steps": plan.depth,
            "output": plan.output_kind,
        }
    if simulate_on_target and data is None:
        raise SnnCompileError("--simulate needs inputs", "pass --input FILE.npy|.npz", EXIT_USAGE)

    rows = static_counts(graph)
    if data is not None:
        x = data.as_sequence(T)
        ref = simulate(graph, x, keep_values=True)
        dynamic_counts(graph, rows, ref.values)
        if simulate_on_target and plan is not None:
            report.simulation = _simulate_lava(tr, plan, x, data, ref, timeout, progress)
    report.energy = energy_summary(graph.name, rows, load_cost_model(energy_model), T)

    if outdir is not None:
        out = Path(outdir)
        report.outputs["ir"] = str(save_ir(graph, out / "model.ir.npz"))
        report.outputs["report"] = str(out / "report.json")
        report.write_json(out / "report.json")
    return report


def _steps(steps: int | None, meta: dict, data: InputData | None) -> int:
    if data is not None and data.sequence:
        T = data.x.shape[0]
        if steps is not None and steps != T:
            raise SnnCompileError(f"--steps {steps} but the input sequence has {T} steps",
                                  "drop --steps or pass inputs with that many steps", EXIT_USAGE)
        return T
    T = steps if steps is not None else meta.get("steps")
    if T is None:
        raise SnnCompileError("the number of time steps is unknown", "pass --steps T", EXIT_USAGE)
    if int(T) < 1:
        raise SnnCompileError(f"--steps must be at least 1 (got {T})", "e.g. --steps 8", EXIT_USAGE)
    return int(T)


def _simulate_lava(tr: TraceResult, plan, x: np.ndarray, data: InputData, ref, timeout: float,
                   progress: Progress | None) -> dict:
    from backends.lava import run_lava

    graph = tr.graph
    time_reduced = bool(graph.meta.get("output_time_reduced"))
    paths = list(tr.neuron_sources.values())
    torch64 = run_torch(tr.module, x, tr.step_mode, paths, time_reduced)
    torch_spikes = {n: torch64.spikes[p] for n, p in tr.neuron_sources.items()}
    t0 = time.perf_counter()
    cb = (lambda done, total: progress("Lava simulation", done, total)) if progress else None
    lava = run_lava(plan, x, timeout_s=timeout, progress=cb)
    wall = time.perf_counter() - t0
    neuron_names = list(tr.neuron_sources)
    lava_spikes = {n: lava.spikes[n].reshape(torch_spikes[n].shape) for n in neuron_names}
    agree, per_layer = spike_agreement(torch_spikes, lava_spikes)
    ref_agree, _ = spike_agreement(torch_spikes, ref.spikes)
    if plan.output_kind == "spikes":
        lava_out = lava.spikes[plan.output_pop]
    else:
        lava_out = lava.output
    pred_torch = predictions(torch64.output, time_reduced)
    pred_lava = predictions(lava_out)
    result = {
        "backend": "lava-cpu",
        "samples": int(x.shape[1]),
        "spike_agreement": agree,
        "prediction_agreement": float((pred_torch == pred_lava).mean()),
        "accuracy": None if data.y is None else float((pred_lava == data.y).mean()),
        "wall_s": round(wall, 3),
        "reference": {"torch_dtype": "float64",
                      "reference_simulator_spike_agreement": ref_agree,
                      "torch_accuracy": None if data.y is None else float((pred_torch == data.y).mean())},
        "per_layer_spike_agreement": per_layer,
        "lava_steps": lava.steps,
        "lava_run_s": round(lava.wall_s, 3),
    }
    return result

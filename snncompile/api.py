"""Public Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from snncompile.compare import predictions, spike_agreement
from snncompile.energy import estimate_energy, parse_firing_rates, plot_energy, static_counts
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.frontend import load_model, trace_model
from snncompile.frontend.masks import apply_masks, read_masks
from snncompile.frontend.trace import TraceResult
from snncompile.inputs import InputData, load_inputs
from snncompile.ir import Conv2d, IRGraph, Linear, Neuron, save_ir
from snncompile.lower import plan_network
from snncompile.lower.populations import OUTPUT, synaptic_memory_bits
from snncompile.lower.quantize import quantize_plan
from snncompile.mapping import load_chip, map_to_cores
from snncompile.passes import run_passes
from snncompile.report import LayerRow, Report
from snncompile.sim import run_torch, simulate
from snncompile.sim.integer import simulate_int

TARGETS = ("lava", "ir", "energy")
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
            row.neurons = node.kept
            row.detail = "OR (max-pool of spikes)" if node.role == "or" else node.describe()
            if node.kept != node.size:
                row.detail += f"; {node.size - node.kept} removed"
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
            if node.binary:
                row.detail += " binary(1b)"
            if getattr(node, "impl", ""):
                row.detail += f" [{node.impl}]"
        elif node.op == "pool2d":
            row.detail = f"{node.mode} k{node.kernel[0]} s{node.stride[0]}"
        elif node.op == "batchnorm":
            row.detail = f"{node.shape[0]} channels"
        rows.append(row)
    return rows


def trace(model: str | Path, *, arch: str | None = None, trust_pickle: bool = False,
          input_shape: tuple[int, ...] | None = None, data: InputData | None = None,
          masks: str | Path | None = None) -> tuple[TraceResult, dict]:
    """Load and trace a checkpoint; returns the trace and the checkpoint metadata."""
    loaded = load_model(model, arch=arch, trust_pickle=trust_pickle)
    shape = _input_shape(input_shape, loaded.meta, data, loaded.module)
    name = loaded.meta.get("name") or Path(model).stem
    synapse_masks = apply_masks(loaded.module, read_masks(masks), masks) if masks else None
    result = trace_model(loaded.module, shape, name=str(name), masks=synapse_masks)
    _check_finite(result.graph)
    result.graph.meta["source_model"] = str(model)
    result.module = loaded.module  # type: ignore[attr-defined]
    return result, loaded.meta


def inspect(model: str | Path, passes: list[str] | None = None, **kw) -> Report:
    """Trace ``model``, run ``passes`` (default: all) and return its layer table."""
    tr, meta = trace(model, **kw)
    graph, stats = run_passes(tr.graph, passes)
    return Report(model=str(model), target="ir", steps=meta.get("steps"), layers=layer_rows(graph),
                  passes=[s.to_dict() for s in stats])


def compile(model: str | Path, target: str = "lava", *, steps: int | None = None,
            input: str | Path | None = None, samples: int | None = None, simulate_on_target: bool = False,
            outdir: str | Path | None = None, arch: str | None = None, trust_pickle: bool = False,
            input_shape: tuple[int, ...] | None = None, energy_model: str = "45nm",
            timeout: float = 600.0, progress: Progress | None = None,
            passes: list[str] | None = None, masks: str | Path | None = None,
            patch_mask: str | Path | None = None, fixed_point: bool = False,
            chip: str | None = None, ann_sparse: bool = False, firing_rates: str | None = None,
            plot: str | Path | None = None) -> Report:
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
                     input_shape=loaded_shape, data=data, masks=masks)
    if patch_mask is not None:
        tr.graph.meta["patch_mask"] = _read_patch_mask(patch_mask).tolist()
    graph, pass_stats = run_passes(tr.graph, passes)
    in_shape = tuple(graph.meta["input_shape"])
    if data is not None:
        data = load_inputs(input, in_shape).take(samples)
    T = _steps(steps, meta, data)
    graph.meta["steps"] = T
    report = Report(model=str(model), target=target, steps=T, layers=layer_rows(graph),
                    passes=[s.to_dict() for s in pass_stats])
    if graph.meta.get("patch_mask_inserted"):
        report.notes.append(f"the patch mask was applied after {graph.meta['patch_mask_inserted']}; "
                            "the PyTorch model does not mask, so its outputs may differ")

    plan = plan_network(graph) if target == "lava" else None
    if plan is not None:
        report.lowering = lowering_summary(plan)
        per_layer: dict[str, int] = {}
        for proj in plan.projections:
            if proj.layers:
                per_layer[proj.layers[-1]] = per_layer.get(proj.layers[-1], 0) + proj.nnz
        for row in report.layers:
            if row.name in per_layer:  # exact count of the compiled network (positions, removals)
                row.synapses = per_layer[row.name]
    if simulate_on_target and data is None:
        raise SnnCompileError("--simulate needs inputs", "pass --input FILE.npy|.npz", EXIT_USAGE)
    if (fixed_point or chip) and plan is None:
        raise SnnCompileError("--fixed-point and --chip need the lava target", "use --target lava", EXIT_USAGE)
    x = data.as_sequence(T) if data is not None else None
    qplan = None
    if fixed_point:
        calib = x if x is not None else np.ones((1, 1, *in_shape))
        if x is None:
            report.notes.append("no --input: inputs assumed to lie in [0, 1] for the 8-bit input scale")
        qplan, qinfo = quantize_plan(plan, calib)
        report.fixed_point = {"quantization": qinfo.to_dict()}
        report.notes.extend(qinfo.to_dict()["warnings"])
    if chip or fixed_point:
        report.mapping = map_to_cores(qplan or plan, load_chip(chip or "loihi2")).to_dict()

    values = None
    if x is not None:
        ref = simulate(graph, x, keep_values=True)
        values = ref.values
        torch64 = run_torch(tr.module, x, tr.step_mode, list(tr.neuron_sources.values()),
                            bool(graph.meta.get("output_time_reduced"))) if (simulate_on_target or qplan) else None
        if qplan is not None:
            report.fixed_point["integer_reference"] = _fidelity(tr, graph, qplan, simulate_int(qplan, x),
                                                                torch64, data)
        if simulate_on_target and plan is not None:
            report.simulation, bit_exact = _simulate_lava(tr, graph, qplan or plan, x, data, ref, torch64,
                                                          timeout, progress)
            if qplan is not None:
                report.fixed_point["lava"] = {k: report.simulation[k] for k in (
                    "spike_agreement", "prediction_agreement", "accuracy", "per_layer_spike_agreement")}
                report.fixed_point["integer_reference_bit_exact"] = bit_exact
    rates = parse_firing_rates(firing_rates) if firing_rates else None
    report.energy = estimate_energy(graph, steps=T, values=None if rates else values, firing_rates=rates,
                                    cost_model=energy_model, ann_sparse=ann_sparse, model_name=graph.name)
    if plot is not None:
        report.outputs["plot"] = str(plot_energy(report.energy, plot))

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


def lowering_summary(plan) -> dict:
    pops = [p for p in plan.populations.values() if p.kind != "input"]
    neurons = [p for p in pops if p.kind in ("neuron", "or")]
    return {
        "populations": len(neurons),
        "or_populations": sum(1 for p in pops if p.kind == "or"),
        "custom_processes": [{"name": p.name, "kind": "spike matmul",
                              "note": "no static synapses: not mappable to Loihi synapses"}
                             for p in pops if p.kind == "matmul"],
        "neurons": sum(p.size for p in neurons),
        "neurons_removed": sum(p.logical_size - p.size for p in neurons),
        "projections": sum(1 for p in plan.projections if p.nnz),
        "synapses": sum(p.nnz for p in plan.projections),
        "latency_steps": plan.depth,
        "output": plan.output_kind,
        "synaptic_memory_bytes": sum(synaptic_memory_bits(p) for p in plan.projections) // 8,
        "implementations": [{"from": p.src, "to": p.dst, "layers": p.layers, "impl": p.impl,
                             "synapses": p.nnz, "delay": p.delay, "weight_bits": p.weight_bits,
                             "memory_bits": synaptic_memory_bits(p)} for p in plan.projections],
    }


def _read_patch_mask(path: str | Path) -> np.ndarray:
    try:
        keep = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SnnCompileError(f"cannot read patch mask {path}: {exc}",
                              "pass a .npy array of 0/1 per patch (H, W) or token (N,)", EXIT_USAGE) from None
    if not isinstance(keep, np.ndarray) or not np.isin(keep, (0, 1)).all():
        raise SnnCompileError(f"patch mask {path} is not a 0/1 array",
                              "store 1 for patches to keep, 0 for masked ones", EXIT_USAGE)
    return keep.astype(bool)


def _fidelity(tr: TraceResult, graph: IRGraph, plan, out: dict[str, np.ndarray], torch64,
              data: InputData) -> dict:
    """Agreement of a run of ``plan`` (spikes per population) with the float PyTorch model."""
    torch_spikes = {n: torch64.spikes[p] for n, p in tr.neuron_sources.items()}
    names = [n for n in torch_spikes if n in plan.populations]
    got = {n: plan.populations[n].expand(out[n]).reshape(torch_spikes[n].shape) for n in names}
    keep = {n: graph.node(n).alive for n in names if graph.node(n).alive is not None}
    agree, per_layer = spike_agreement(torch_spikes, got, keep)
    if plan.output_kind == "spikes":
        pred = predictions(plan.populations[plan.output_pop].expand(out[plan.output_pop]))
    else:
        pred = predictions(out[OUTPUT])
    reduced = bool(graph.meta.get("output_time_reduced"))
    pred_torch = predictions(torch64.output, reduced)
    return {"spike_agreement": agree, "per_layer_spike_agreement": per_layer,
            "prediction_agreement": float((pred == pred_torch).mean()),
            "accuracy": None if data.y is None else float((pred == data.y).mean())}


def _simulate_lava(tr: TraceResult, graph: IRGraph, plan, x: np.ndarray, data: InputData, ref, torch64,
                   timeout: float, progress: Progress | None) -> tuple[dict, bool | None]:
    """Run ``plan`` on Lava; the simulation report, and for a fixed-point plan whether the
    integer reference predicted the run bit for bit."""
    from backends.lava import run_lava

    t0 = time.perf_counter()
    cb = (lambda done, total: progress("Lava simulation", done, total)) if progress else None
    lava = run_lava(plan, x, timeout_s=timeout, progress=cb)
    wall = time.perf_counter() - t0
    out = dict(lava.spikes)
    if lava.output is not None:
        out[OUTPUT] = lava.output
    bit_exact = None
    if plan.fixed_point:  # the integer reference must predict the chip run exactly
        ints = simulate_int(plan, x)
        bit_exact = all(np.array_equal(out[n], ints[n]) for n in out)
    fid = _fidelity(tr, graph, plan, out, torch64, data)
    torch_spikes = {n: torch64.spikes[p] for n, p in tr.neuron_sources.items()}
    keep = {n: graph.node(n).alive for n in torch_spikes if graph.node(n).alive is not None}
    ref_agree, _ = spike_agreement(torch_spikes, ref.spikes, keep)
    pred_torch = predictions(torch64.output, bool(graph.meta.get("output_time_reduced")))
    result = {
        "backend": "lava-cpu-fixed_pt" if plan.fixed_point else "lava-cpu",
        "samples": int(x.shape[1]),
        "spike_agreement": fid["spike_agreement"],
        "prediction_agreement": fid["prediction_agreement"],
        "accuracy": fid["accuracy"],
        "wall_s": round(wall, 3),
        "reference": {"torch_dtype": "float64",
                      "reference_simulator_spike_agreement": ref_agree,
                      "torch_accuracy": None if data.y is None else float((pred_torch == data.y).mean())},
        "per_layer_spike_agreement": fid["per_layer_spike_agreement"],
        "compared_neurons": "kept neurons only (removed ones do not exist in the compiled network)",
        "lava_steps": lava.steps,
        "lava_run_s": round(lava.wall_s, 3),
    }
    return result, bit_exact

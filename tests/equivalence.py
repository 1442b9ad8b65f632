"""Equivalence helpers: run PyTorch, the reference simulator and a backend on the same
inputs and compare spike trains layer by layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from snncompile.compare import predictions, spike_agreement
from snncompile.frontend import trace_model
from snncompile.frontend.trace import TraceResult
from snncompile.ir import IRGraph
from snncompile.lower import lower
from snncompile.netlist import OUTPUT, Netlist, OutputKind
from snncompile.passes import run_passes
from snncompile.sim import run_torch, simulate


@dataclass
class Runs:
    trace: TraceResult
    plan: Netlist
    torch_spikes: dict[str, np.ndarray]   # keyed by IR neuron node
    torch_output: np.ndarray
    ref_spikes: dict[str, np.ndarray]
    ref_output: np.ndarray


def run_all(model: nn.Module, x: np.ndarray, input_shape: tuple[int, ...]) -> Runs:
    tr = trace_model(model, input_shape)
    torch_run = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()),
                          tr.graph.output_time_reduced, output_steps=tr.graph.output_steps)
    ref = simulate(tr.graph, x)
    spikes = {n: torch_run.spikes[p] for n, p in tr.neuron_sources.items()}
    return Runs(tr, lower(tr.graph), spikes, torch_run.output, ref.spikes, ref.output)


def assert_same_spikes(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                       what: str = "") -> None:
    assert expected, "no spiking layers compared"
    for name, e in expected.items():
        a = np.asarray(actual[name]).reshape(e.shape)
        bad = np.argwhere(a != e)
        assert bad.size == 0, (f"{what} layer {name}: {len(bad)} of {e.size} spikes differ, first at "
                               f"(t, n, ...) = {tuple(bad[0])}")


def assert_backend_matches(runs: Runs, backend_out: dict[str, np.ndarray]) -> None:
    """Backend spikes equal PyTorch's for every neuron layer; predictions equal too."""
    assert_same_spikes(runs.torch_spikes, backend_out, "backend vs PyTorch:")
    if runs.plan.output_kind is OutputKind.SPIKES:
        out = backend_out[runs.plan.output_pop]
    else:   # a graded population's values (a host partition, a NIR LI readout) or a readout's
        out = backend_out[runs.plan.output_pop if runs.plan.output_kind.from_population else OUTPUT]
        np.testing.assert_allclose(out.reshape(runs.ref_output.shape), runs.ref_output,
                                   rtol=1e-12, atol=1e-12)
    reduced = runs.trace.graph.output_time_reduced
    np.testing.assert_array_equal(predictions(out), predictions(runs.torch_output, reduced))

def assert_compiled_matches(runs: Runs, graph: IRGraph, plan: Netlist, x: np.ndarray,
                            out: dict[str, np.ndarray]) -> None:
    """A backend run of the optimized, lowered ``graph`` equals PyTorch on every neuron that
    exists in the compiled network (passes remove neurons that cannot affect the output),
    and its output and predictions equal the reference simulator's."""
    for name, e in runs.torch_spikes.items():
        if name not in plan.populations:
            continue
        got = plan.populations[name].expand(np.asarray(out[name])).reshape(e.shape)
        alive = graph.node(name).alive
        alive = np.ones(e.shape[2:], bool) if alive is None else np.asarray(alive).reshape(e.shape[2:])
        bad = np.argwhere((got != e) & alive)
        assert bad.size == 0, f"layer {name}: {len(bad)} kept spikes differ, first at {tuple(bad[0])}"
    if plan.output_kind is OutputKind.VALUES:
        final = out[OUTPUT]
        expected = simulate(graph, x).output
        np.testing.assert_allclose(final.reshape(expected.shape), expected, rtol=1e-12, atol=1e-12)
    else:
        final = plan.populations[plan.output_pop].expand(out[plan.output_pop])
    reduced = runs.trace.graph.output_time_reduced
    np.testing.assert_array_equal(predictions(final), predictions(runs.torch_output, reduced))


def assert_equivalent_after_each(runs: Runs, x: np.ndarray, names: list[str] | None = None):
    """Run the passes, simulating after each; spikes of every surviving source neuron layer
    (kept neurons) must equal PyTorch's."""
    seen = []

    def check(name: str, g: IRGraph) -> None:
        ref = simulate(g, x)
        common = {k: v for k, v in runs.torch_spikes.items() if k in ref.spikes}
        assert common, f"after {name}: no source neuron layer left to compare"
        keep = {k: g.node(k).alive for k in common if g.node(k).alive is not None}
        agree, per_layer = spike_agreement(common, ref.spikes, keep)
        assert agree == 1.0, f"after {name}: spikes differ {per_layer}"
        seen.append(name)

    graph, stats = run_passes(runs.trace.graph, names, after_each=check)
    assert seen == [s.name for s in stats]
    return graph, {s.name: s for s in stats}

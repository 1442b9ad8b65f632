"""--plot after a simulation: spike raster of chosen layers and per-layer firing rates (PNG)."""

from __future__ import annotations

import numpy as np
import pytest

import snncompile
from snncompile.errors import SnnCompileError
from snncompile.sim import simulate
from snncompile.spikeplot import MAX_NEURONS, Layer, _rows, choose, layers_of, spike_paths


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits_model, digits_test):
    out = tmp_path_factory.mktemp("plots")
    report = snncompile.compile(digits_model, target="energy", input=digits_test, samples=4,
                                plot=out / "energy.png")
    return report, out


def _png(path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_plot_writes_energy_raster_and_rates(run):
    report, out = run
    assert report.outputs["raster"] == str(out / "energy_raster.png")
    assert report.outputs["rates"] == str(out / "energy_rates.png")
    for key in ("plot", "raster", "rates"):
        img = _png(report.outputs[key])
        assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 0.01   # a drawn picture


def test_rates_are_the_reference_simulators_and_default_layers_span_the_net(digits_model, digits_test):
    from snncompile.api import trace
    from snncompile.inputs import load_inputs
    from snncompile.passes import run_passes

    tr = trace(digits_model)
    graph, _ = run_passes(tr.graph)
    x = load_inputs(digits_test, tuple(graph.input_shape)).take(4).as_sequence(tr.meta["steps"])
    sim = simulate(graph, x)
    layers = layers_of(graph, sim.spikes)
    assert len(layers) >= 2
    for ly in layers:   # independent count: kept neurons only, every sample and step
        node = graph.node(ly.name)
        s = sim.spikes[ly.name].reshape(*sim.spikes[ly.name].shape[:2], -1)
        kept = np.ones(s.shape[2], bool) if node.alive is None else np.asarray(node.alive).reshape(-1)
        assert ly.rate == pytest.approx(s[:, :, kept].sum() / (kept.sum() * s.shape[0] * s.shape[1]))
        assert ly.label == (node.source or ly.name)
    chosen = choose(layers, None)
    assert chosen[0] is layers[0] and chosen[-1] is layers[-1] and len(chosen) == min(4, len(layers))
    assert choose(layers, [layers[-1].label, layers[0].name]) == [layers[-1], layers[0]]
    with pytest.raises(SnnCompileError, match="--plot-layers names no spiking layer 'nope'"):
        choose(layers, ["nope"])


def test_large_layers_are_subsampled_among_firing_neurons_and_say_so():
    rng = np.random.default_rng(0)
    s = np.zeros((4, 2, 5000))
    s[:, :, 1000:1600] = rng.random((4, 2, 600)) < 0.3
    rows, caption = _rows(Layer("n", "features.2", s, 6000))
    assert len(rows) == MAX_NEURONS and rows.min() >= 1000 and rows.max() < 1600
    assert caption.startswith(f"{MAX_NEURONS} of 5,000 neurons, 1,000 removed by the passes")
    assert f"among the {int(s.any(axis=(0, 1)).sum())} that fire" in caption
    assert s[:, :, rows].any(axis=(0, 1)).all()


def test_a_failed_plot_run_keeps_the_previous_pictures(run, digits_model, digits_test):
    report, out = run
    before = {k: (out / f"energy{s}.png").read_bytes() for k, s in (("plot", ""), ("raster", "_raster"))}
    with pytest.raises(SnnCompileError, match="--plot-layers names no spiking layer"):
        snncompile.compile(digits_model, target="energy", input=digits_test, samples=2, plot=out / "energy.png",
                           plot_layers=["no.such.layer"])
    assert {k: (out / f"energy{s}.png").read_bytes() for k, s in (("plot", ""), ("raster", "_raster"))} == before
    with pytest.raises(SnnCompileError, match="--plot-layers chooses the layers"):
        snncompile.compile(digits_model, target="energy", plot_layers=["x"])
    assert spike_paths("a/b.png")["rates"].name == "b_rates.png"

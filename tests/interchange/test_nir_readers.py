"""Our NIR export of pruned models, read by snnTorch, Norse and spikingjelly's own importers
and run on real inputs: output spikes equal our reference where the importer's semantics
allow (docs/nir.md, "Other frameworks reading our export")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile import api, stages
from snncompile.sim.netlist import simulate_netlist

MODELS = Path(__file__).resolve().parents[2] / "models"
DT = 1e-4   # the step our export writes τ for


def _export(net, path: Path):
    import nir

    from backends.nir.export import nir_bytes

    path.write_bytes(nir_bytes(net))
    return nir.read(path, type_check=False)


def _reference(net, x: np.ndarray) -> np.ndarray:
    want = simulate_netlist(net, x)
    return (want.spikes if hasattr(want, "spikes") else want)[net.output_pop]


def _run(model, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    """Step a nirtorch-built module (model(x_t, state) → (y_t, state)) over time."""
    state, outs = None, []
    with torch.no_grad():
        for xt in torch.as_tensor(x, dtype=dtype):
            y, state = model(xt, state)
            outs.append(y.double().numpy())
    return np.stack(outs)


def _thresholds(graph) -> list[np.ndarray]:
    return [np.asarray(v.v_threshold) for v in graph.nodes.values() if hasattr(v, "v_threshold")]


def _readers():
    import norse.torch as norse
    from snntorch.import_nir import import_from_nir

    return {"snntorch": lambda g: import_from_nir(g),
            "norse": lambda g: norse.from_nir(g, dt=DT)}


@pytest.fixture(scope="module")
def ticket(tmp_path_factory):
    """The shipped 90 %-pruned digits ticket (676 neurons removed, a max pool as OR neurons)
    on 24 real test digits, T = 8."""
    tr = api.trace(MODELS / "digits_scnn_ticket.pt", keep_module=False)
    net = stages.lower(stages.optimize(tr.graph).graph)
    assert sum(p.logical_size - p.size for p in net.populations.values()) > 600
    graph = _export(net, tmp_path_factory.mktemp("nir") / "ticket.nir")
    x = np.load(MODELS / "digits_test.npz")["x"][:24].astype(np.float64)
    x = np.broadcast_to(x, (8, *x.shape)).copy()
    return graph, x, _reference(net, x)


def test_removed_neurons_have_finite_uniform_parameters(ticket):
    graph, _, _ = ticket
    ths = _thresholds(graph)
    assert ths and all(np.isfinite(t).all() and np.unique(t).size == 1 for t in ths)
    assert any("alive" in v.metadata.get("snncompile", {}) for v in graph.nodes.values()
               if hasattr(v, "metadata") and v.metadata)   # our importer still removes them


@pytest.mark.parametrize("reader", ["snntorch", "norse"])
def test_ticket_read_by(ticket, reader):
    graph, x, want = ticket
    got = _run(_readers()[reader](graph), x)
    assert want.sum() > 50
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_spikingjelly_refuses_or_neurons(ticket):
    """spikingjelly's LIF needs τ/dt > 1; OR neurons (a max pool of spikes) have τ = dt."""
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    with pytest.raises(ValueError, match="tau / dt"):
        import_from_nir(ticket[0], dt=DT, dtype=torch.float64)


def _sj_cnn() -> nn.Module:
    """CIFAR-size spikingjelly CNN (3×32×32, 128 channels, strided convs, no pooling), 90 %
    of its weights pruned, 16 output channels of the first layer pruned whole (dead neurons)
    and 16 input channels of the last conv cut (neurons without fan-out)."""
    torch.manual_seed(0)
    m = nn.Sequential(
        layer.Conv2d(3, 128, 3, padding=1), neuron.LIFNode(tau=2.0),
        layer.Conv2d(128, 128, 3, stride=2, padding=1), neuron.LIFNode(tau=2.0),          # 16×16
        layer.Conv2d(128, 128, 3, stride=2, padding=1), neuron.LIFNode(tau=2.0),          # 8×8
        layer.Flatten(), layer.Linear(128 * 64, 10), neuron.LIFNode(tau=2.0),
    )
    g = torch.Generator().manual_seed(1)
    layers = [mod for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for mod, gain in zip(layers, (8.0, 60.0, 60.0, 60.0)):   # enough drive to fire at every depth
            mod.weight.mul_(torch.rand(mod.weight.shape, generator=g) >= 0.9).mul_(gain)
            mod.bias.mul_(0.5)
        m[0].weight[:16] = 0.0
        m[0].bias[:16] = -0.5
        m[4].weight[:, 16:32] = 0.0
    return m.eval()


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    net = stages.lower(stages.optimize(api.trace(_sj_cnn(), input_shape=(3, 32, 32)).graph).graph)
    removed = sum(p.logical_size - p.size for p in net.populations.values())
    assert removed >= 16 * 32 * 32
    graph = _export(net, tmp_path_factory.mktemp("nir") / "cifar.nir")
    digits = np.load(MODELS / "digits_test.npz")["x"][:4, 0]                 # real images, 8×8
    img = np.kron(digits, np.ones((4, 4)))[:, None].repeat(3, axis=1)       # → 3×32×32
    x = np.broadcast_to(img, (4, *img.shape)).astype(np.float64).copy()
    return graph, x, _reference(net, x)


@pytest.mark.parametrize("reader", ["snntorch", "norse", "spikingjelly"])
def test_cifar_size_pruned_cnn_read_by(cifar, reader):
    graph, x, want = cifar
    assert all(np.isfinite(t).all() and np.unique(t).size == 1 for t in _thresholds(graph))
    if reader == "spikingjelly":
        from spikingjelly.activation_based.nir_exchange import import_from_nir

        got = _run(import_from_nir(graph, dt=DT, dtype=torch.float64), x, torch.float64)
    else:   # float32: both build their modules in float32 from the file's weights
        got = _run(_readers()[reader](graph), x)
    assert want.sum() > 10
    np.testing.assert_array_equal(got.reshape(want.shape), want)

"""NIR import: graphs written by snnTorch and Norse, hand-built graphs, and clear errors."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from interchange.frameworks import (
    agreement,
    make_norse,
    make_norse_readout,
    make_snntorch,
    make_snntorch_synaptic,
    make_spikingjelly,
    spike_inputs,
)

from snncompile import api
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.ir import Neuron
from snncompile.ir.dynamics import LI, CubaLIF
from snncompile.sim import simulate


def _imported_spikes(path: Path, x: np.ndarray, dt: float | None = None) -> dict[str, np.ndarray]:
    tr = api.trace(path, nir_dt=dt)
    return {tr.neuron_sources[n]: s for n, s in simulate(tr.graph, x).spikes.items()}


def test_snntorch_export_is_spike_exact(tmp_path):
    run = make_snntorch(tmp_path / "s.nir")
    x = spike_inputs(20, 8, 16)
    ref = run(x)
    assert sum(int(v.sum()) for v in ref.values()) > 100
    assert agreement(ref, _imported_spikes(tmp_path / "s.nir", x))[0] == 1.0


@pytest.mark.parametrize("dt,tau_inv", [(1e-3, (100.0, 200.0)), (2.0**-10, (128.0, 256.0))])
def test_norse_export_is_spike_exact(tmp_path, dt, tau_inv):
    """Norse 1.1 writes τ = dt/τ_inv (its importer reads τ_inv = 1/τ): --nir-dt is dt²."""
    run = make_norse(tmp_path / "n.nir", dt=dt, tau_inv=tau_inv)
    x = spike_inputs(20, 8, 16, seed=3)
    ref = run(x)
    assert sum(int(v.sum()) for v in ref.values()) > 50
    assert agreement(ref, _imported_spikes(tmp_path / "n.nir", x, dt=dt * dt))[0] == 1.0


def _write(tmp_path: Path, nodes: dict, edges: list, name: str = "g.nir") -> Path:
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


def _chain(*pairs) -> tuple[dict, list]:
    nodes = dict(pairs)
    names = list(nodes)
    return nodes, list(zip(names, names[1:]))


def test_conv_pool_flatten_threshold_graph(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 2, 3, 3))
    w[0] = 0.0                                   # a channel with no synapses at all
    w1 = rng.normal(size=(3, 4 * 3 * 3))
    th = np.full(3, 0.2)
    nodes, edges = _chain(
        ("input", nir.Input(input_type={"input": np.array([2, 8, 8])})),
        ("conv", nir.Conv2d(input_shape=(8, 8), weight=w, stride=1, padding=1, dilation=1, groups=1,
                            bias=np.arange(4.0) / 10)),
        ("pool", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))),
        ("avg", nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0]))),
        ("flat", nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0)),
        ("fc", nir.Linear(weight=w1)),
        ("scale", nir.Scale(scale=np.array([1.0, 2.0, 0.5]))),
        ("thr", nir.Threshold(threshold=th)),
        ("output", nir.Output(output_type={"output": np.array([3])})))
    path = _write(tmp_path, nodes, edges)
    x = rng.random((3, 5, 2, 8, 8))
    tr = api.trace(path)
    conv = tr.graph.node("conv")
    assert not conv.mask[0].any() and conv.mask[1:].all()     # zero weights: absent synapses
    got = simulate(tr.graph, x).spikes["thr"]
    xt = torch.as_tensor(x.reshape(15, 2, 8, 8))
    y = F.conv2d(xt, torch.as_tensor(w), torch.arange(4.0, dtype=torch.float64) / 10, padding=1)
    y = F.avg_pool2d(y, 2, divisor_override=1)
    y = F.avg_pool2d(y, 2, stride=1)
    y = (y.reshape(15, -1) @ torch.as_tensor(w1).T) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    np.testing.assert_array_equal(got.reshape(15, 3), (y > 0.2).numpy().astype(np.uint8))


def test_conv1d_and_if(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 2, 3))
    nodes, edges = _chain(
        ("input", nir.Input(input_type={"input": np.array([2, 10])})),
        ("conv", nir.Conv1d(input_shape=10, weight=w, stride=1, padding=0, dilation=1, groups=1,
                            bias=np.zeros(3))),
        ("if", nir.IF(r=np.ones((3, 8)), v_threshold=np.ones((3, 8)))),
        ("output", nir.Output(output_type={"output": np.array([3, 8])})))
    x = rng.random((6, 4, 2, 10))
    got = simulate(api.trace(_write(tmp_path, nodes, edges)).graph, x).spikes["if"]
    drive = F.conv1d(torch.as_tensor(x.reshape(24, 2, 10)), torch.as_tensor(w)).numpy().reshape(6, 4, 3, 8)
    v = np.zeros((4, 3, 8))
    for t in range(6):
        v = v + drive[t]
        s = v > 1.0
        np.testing.assert_array_equal(got[t], s)
        v = np.where(s, 0.0, v)


def _lif_graph(tmp_path: Path, **lif) -> Path:
    params = dict(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    params.update(lif)
    nodes, edges = _chain(("input", nir.Input(input_type={"input": np.array([2])})),
                          ("lif", nir.LIF(**params)), ("output", nir.Output(output_type={"output": np.array([2])})))
    return _write(tmp_path, nodes, edges)


@pytest.mark.parametrize("make,needle,code", [
    (lambda p: _lif_graph(p), "stores no time step", EXIT_USAGE),
    (lambda p: _lif_graph(p, v_leak=np.ones(2)), "v_leak", EXIT_UNSUPPORTED),
    (lambda p: _lif_graph(p, v_reset=np.ones(2)), "v_reset", EXIT_UNSUPPORTED),
    (lambda p: _lif_graph(p, tau=np.array([0.01, 0.02])), "per-neuron tau", EXIT_UNSUPPORTED),
])
def test_lif_parameters_that_cannot_be_mapped(tmp_path, make, needle, code):
    dt = None if needle == "stores no time step" else 1e-3
    with pytest.raises(SnnCompileError) as err:
        api.trace(make(tmp_path), nir_dt=dt)
    assert needle in err.value.message and err.value.hint and err.value.exit_code == code


@pytest.mark.parametrize("node", [
    nir.CubaLIF(tau_syn=np.ones(2), tau_mem=np.ones(2), r=np.ones(2), v_leak=np.ones(2), v_threshold=np.ones(2)),
    nir.LI(tau=np.array([1.0, 2.0]), r=np.ones(2), v_leak=np.zeros(2)),
])
def test_dynamics_not_supported_name_the_node(tmp_path, node):
    nodes, edges = _chain(("input", nir.Input(input_type={"input": np.array([2])})), ("odd", node),
                          ("output", nir.Output(output_type={"output": np.array([2])})))
    with pytest.raises(SnnCompileError, match="`odd`") as err:
        api.trace(_write(tmp_path, nodes, edges), nir_dt=1.0)
    assert err.value.exit_code == EXIT_UNSUPPORTED and err.value.hint


def test_unreadable_files(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    for path in (bad, tmp_path / "missing.nir"):
        with pytest.raises(SnnCompileError) as err:
            api.trace(path)
        assert err.value.exit_code == EXIT_USAGE


def test_cli_imports_nir(tmp_path, capsys):
    from snncompile.cli import main

    make_snntorch(tmp_path / "s.nir")
    assert main([str(tmp_path / "s.nir"), "--target", "energy", "--steps", "4", "--json"]) == 0
    assert '"target": "energy"' in capsys.readouterr().out


def test_snntorch_synaptic_cubalif_is_spike_exact(tmp_path):
    """snnTorch ``Synaptic`` → NIR CubaLIF (w_in = τ_syn/dt, r = τ_mem/dt): the same recurrence."""
    run = make_snntorch_synaptic(tmp_path / "s.nir")
    x = spike_inputs(20, 8, 16)
    ref = run(x)
    assert min(int(v.sum()) for v in ref.values()) > 50
    tr = api.trace(tmp_path / "s.nir")
    assert {type(tr.graph.node(n).dynamics) for n in tr.neuron_sources} == {CubaLIF}
    assert agreement(ref, _imported_spikes(tmp_path / "s.nir", x)) == (1.0, 6720)


@pytest.mark.parametrize("current_based", [False, True])
def test_norse_li_readout(tmp_path, current_based):
    """Norse LIBoxCell → NIR LI, a non-spiking readout: its membrane is the output (exact up to
    the float32 τ Norse writes). Norse's LIFCell (NIR CubaLIF) adds its input to the current
    unscaled, while its file (w_in = 1) says I += (dt/τ_syn)·(x − I): the two differ by the
    factor dt/τ_syn, which rewriting w_in = τ_syn/dt removes."""
    path = tmp_path / "n.nir"
    run = make_norse_readout(path, current_based=current_based)
    x = spike_inputs(20, 8, 16, seed=3)
    ref = run(x)
    tr = api.trace(path, nir_dt=1e-6)
    sim = simulate(tr.graph, x)
    (hidden,) = tr.neuron_sources
    if current_based:
        assert (sim.spikes[hidden] == ref["1"]).mean() < 0.95       # Norse's LIFCell ≠ its NIR file
        graph = nir.read(path)
        for node in graph.nodes.values():
            if isinstance(node, nir.CubaLIF):
                node.w_in = node.tau_syn / 1e-6
        nir.write(path, graph)
        tr = api.trace(path, nir_dt=1e-6)
        sim = simulate(tr.graph, x)
    np.testing.assert_array_equal(sim.spikes[hidden], ref["1"])
    readout = next(n for n in tr.graph.of_type(Neuron) if not tr.graph.node(n).emits_spikes)
    assert type(tr.graph.node(readout).dynamics) is LI
    np.testing.assert_allclose(sim.output, ref["3"], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(sim.spikes[readout], sim.output)


def _dyn_graph(tmp_path: Path, node, n: int = 3) -> Path:
    rng = np.random.default_rng(5)
    nodes, edges = _chain(("input", nir.Input(input_type={"input": np.array([4])})),
                          ("fc", nir.Linear(weight=rng.normal(size=(n, 4)))), ("dyn", node),
                          ("output", nir.Output(output_type={"output": np.array([n])})))
    return _write(tmp_path, nodes, edges)


@pytest.mark.parametrize("kind", ["I", "CubaLI", "CubaLIF", "LI"])
def test_new_dynamics_follow_the_discretisation_rule(tmp_path, kind):
    """Forward Euler of NIR's equations with dt = 0.5 (docs/nir.md), checked against numpy."""
    n, dt = 3, 0.5
    tau_syn, tau_mem, r, w_in = np.full(n, 2.0), np.full(n, 4.0), np.full(n, 1.5), np.full(n, 0.5)
    node = {"I": nir.I(r=r),
            "LI": nir.LI(tau=tau_mem, r=r, v_leak=np.zeros(n)),
            "CubaLI": nir.CubaLI(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.zeros(n), w_in=w_in),
            "CubaLIF": nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.zeros(n),
                                   v_threshold=np.full(n, 0.3), w_in=w_in)}[kind]
    path = _dyn_graph(tmp_path, node)
    x = np.random.default_rng(6).random((12, 5, 4))
    tr = api.trace(path, nir_dt=dt)
    got = simulate(tr.graph, x).output
    w = nir.read(path).nodes["fc"].weight
    v, cur = np.zeros((5, n)), np.zeros((5, n))
    for t in range(12):
        drive = x[t] @ w.T
        if kind == "I":
            v = v + r * drive
        elif kind == "LI":
            v = v + dt / tau_mem * (-v + r * drive)
        else:
            cur = cur + dt / tau_syn * (w_in * drive - cur)
            v = v + dt / tau_mem * (-v + r * cur)
        if kind == "CubaLIF":
            s = v > 0.3
            np.testing.assert_array_equal(got[t], s)
            v = np.where(s, 0.0, v)
        else:
            np.testing.assert_allclose(got[t], v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hidden", ["if", "lif", "lif_no_decay_input", "cubalif"])
def test_spikingjelly_export_is_spike_exact(tmp_path, hidden):
    """spikingjelly's export_to_nir (dt = 1e-4, IF r = 1/dt): read with --nir-dt 1e-4. It fires
    on ≥ where its file (NIR) says >: equal here, as no membrane lands on the threshold."""
    run = make_spikingjelly(tmp_path / "sj.nir", hidden)
    x = spike_inputs(20, 8, 16, seed=1)
    ref = run(x)
    assert min(int(v.sum()) for v in ref.values()) > 30
    got = {k.lstrip("_"): v for k, v in _imported_spikes(tmp_path / "sj.nir", x, dt=1e-4).items()}
    assert agreement(ref, got) == (1.0, 6720)

"""NIR export (--target nir): importing the file back gives the compiled network's spikes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nets import CASES

from snncompile import api, stages
from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir.dynamics import LI
from snncompile.netlist import InputPopulation, NeuronPopulation, OutputKind
from snncompile.sim import simulate
from snncompile.sim.netlist import simulate_netlist

MODELS = Path(__file__).resolve().parents[2] / "models"


def _round_trip(graph, x, tmp_path):
    from backends.nir.export import nir_bytes

    net = stages.lower(stages.optimize(graph).graph)
    path = tmp_path / "model.nir"
    path.write_bytes(nir_bytes(net))
    back = api.trace(path)
    want = simulate_netlist(net, x)
    got = simulate(back.graph, x).spikes
    for name in want.spikes if hasattr(want, "spikes") else want:
        if name in got:
            np.testing.assert_array_equal(got[name].reshape(want_arr(want, name).shape), want_arr(want, name))
    return net, back


def want_arr(want, name):
    return (want.spikes if hasattr(want, "spikes") else want)[name]


@pytest.mark.parametrize("case", ["conv_s", "seq_container", "readout"])
def test_nets_round_trip(case, tmp_path):
    make, shape, inputs = CASES[case]
    x = inputs()
    try:
        _round_trip(trace_model(make(), shape).graph, x, tmp_path)
    except SnnCompileError as exc:  # soft reset has no NIR primitive: a clear refusal
        assert "soft" in exc.message and exc.hint


def test_ticket_round_trip_cli(tmp_path, digits_test):
    ticket = str(MODELS / "digits_scnn_ticket.pt")
    from snncompile.cli import main

    out = tmp_path / "out"
    assert main([ticket, "--target", "nir", "-o", str(out)]) == 0
    tr = api.trace(ticket, keep_module=False)
    net = stages.lower(stages.optimize(tr.graph).graph)
    x = np.load(digits_test)["x"][:10].astype(np.float64)
    x = np.broadcast_to(x, (8, *x.shape))
    want = simulate_netlist(net, x)
    back = simulate(api.trace(out / "model.nir").graph, x).spikes
    want = want.spikes if hasattr(want, "spikes") else want
    # NIR nodes are named by the nn.Sequential's module paths (2, 5, 6, 9), not neuron_2 …
    pops = {net.label(n): n for n in want if n in net.populations and isinstance(net.populations[n], NeuronPopulation)}
    assert set(back) == set(pops) == {"2", "5", "6", "9"}
    for label in back:   # populations with removed neurons are written (and read back) in their logical shape
        name = pops[label]
        idx = net.populations[name].index
        flat = back[label].reshape(*want[name].shape[:2], -1)
        np.testing.assert_array_equal(flat if idx is None else flat[..., idx], want[name])


def test_snntorch_reads_our_export(tmp_path):
    """snnTorch's import_from_nir loads the file; its Leaky is β·V + X, ours V − V·q + X (exact here: q = ½)."""
    import nir
    import torch
    from interchange.frameworks import make_snntorch, spike_inputs
    from snntorch.import_nir import import_from_nir

    make_snntorch(tmp_path / "s.nir", betas=(0.5, 0.5))
    tr = api.trace(tmp_path / "s.nir")
    from backends.nir.export import nir_bytes

    net = stages.lower(stages.optimize(tr.graph).graph)
    (tmp_path / "out.nir").write_bytes(nir_bytes(net))
    model = import_from_nir(nir.read(tmp_path / "out.nir"))
    x = spike_inputs(12, 4, 16, seed=2)
    ours = simulate(api.trace(tmp_path / "out.nir").graph, x).spikes
    with torch.no_grad():
        state = None
        outs = []
        for xt in torch.as_tensor(x, dtype=torch.float32):
            y, state = model(xt, state)
            outs.append(y.numpy())
    last = max(ours, key=lambda n: net.populations[n].depth)
    np.testing.assert_array_equal(np.stack(outs), ours[last].reshape(np.stack(outs).shape))


def _node_types(net) -> dict[str, str]:
    from backends.nir.export import to_nir

    return {k: type(v).__name__ for k, v in to_nir(net).nodes.items()}


def test_cifar_ticket_exports_kernels_not_matrices(tmp_path):
    """CIFAR-size ticket (10⁸-entry dense matrices if unrolled): written as Conv2d (OR windows one-hot) /
    Flatten / Affine(256→10) in milliseconds, and imported back spike for spike."""
    import nir
    from interchange.onnx_helpers import compile_model
    from nets import cifar_ticket

    from backends.nir.export import nir_bytes
    from snncompile.ir import Neuron

    c = compile_model(cifar_ticket(), (3, 32, 32))
    for n in c.graph.of_type(Neuron):   # NIR has no soft reset: make the one soft-reset layer hard
        node = c.graph.node(n)
        if node.dynamics.v_reset is None:
            node.dynamics = node.dynamics.with_params(v_reset=0.0)
    net = stages.lower(c.graph)
    assert any(p.index is not None for p in net.populations.values())   # removed neurons
    path = tmp_path / "cifar.nir"
    path.write_bytes(nir_bytes(net))
    graph = nir.read(path, type_check=False)   # nir 1.0.8 infers a (3, 1) kernel's output as (3, 3)'s
    kinds = sorted({type(v).__name__ for v in graph.nodes.values()})
    assert {"Conv2d", "Flatten", "Affine"} <= set(kinds)   # OR windows are one-hot Conv2d kernels
    assert max(np.asarray(v.weight).size for v in graph.nodes.values() if hasattr(v, "weight")) < 300_000
    x = np.random.default_rng(0).random((3, 2, 3, 32, 32))
    want = simulate_netlist(net, x)
    back = simulate(api.trace(path).graph, x).spikes
    pops = {net.label(n): n for n, p in net.populations.items() if not isinstance(p, InputPopulation)}
    assert set(back) == set(pops)
    for label, s in back.items():
        name = pops[label]
        idx = net.populations[name].index
        flat = s.reshape(3, 2, -1)
        np.testing.assert_array_equal(flat if idx is None else flat[..., idx], want[name])


def test_structure_kept_where_the_chain_allows():
    """Conv, pooling and flatten chains become NIR primitives; a transpose falls back to Affine."""
    from snncompile.ir import Input, IRGraph, Linear, Neuron, Output, Transpose
    from snncompile.ir.dynamics import IF

    make, shape, _ = CASES["conv_s"]
    graph = stages.optimize(trace_model(make(), shape).graph).graph
    for n in graph.of_type(Neuron):
        graph.node(n).dynamics = graph.node(n).dynamics.with_params(v_reset=0.0)
    kinds = set(_node_types(stages.lower(graph)).values())
    assert "Conv2d" in kinds
    g = IRGraph("t")
    g.add("in", Input((2, 3), "in"))
    g.add("tr", Transpose((3, 2), "tr", perm=(1, 0)), ["in"])
    g.add("fc", Linear((3, 4), "fc", weight=np.ones((4, 2))), ["tr"])
    g.add("n", Neuron((3, 4), "n", dynamics=IF(v_reset=0.0)), ["fc"])
    g.add("out", Output((3, 4), "out"), ["n"])
    g.input_shape = (2, 3)
    net = stages.lower(g)
    kinds = _node_types(net)
    assert kinds["w_input_n"] == "Affine" and kinds["n"] == "IF"   # named after the NIR Input node
    import backends.nir.export as export

    limit, export.DENSE_LIMIT = export.DENSE_LIMIT, 10   # a fallback too large to write densely: refused
    try:
        with pytest.raises(SnnCompileError, match="Transpose, Linear.*dense matrix would have 72 entries"):
            export.to_nir(net)
    finally:
        export.DENSE_LIMIT = limit


@pytest.mark.parametrize("framework", ["snntorch_synaptic", "norse_readout"])
def test_new_dynamics_round_trip(tmp_path, framework):
    """CubaLIF (snnTorch Synaptic) and an LI readout (Norse) exported back: the same spikes and
    the same readout values as the compiled network."""
    from interchange.frameworks import make_norse_readout, make_snntorch_synaptic, spike_inputs

    from backends.nir.export import nir_bytes

    src = tmp_path / "src.nir"
    if framework == "snntorch_synaptic":
        make_snntorch_synaptic(src)
        tr = api.trace(src)
    else:
        make_norse_readout(src, current_based=True)
        tr = api.trace(src, nir_dt=1e-6)
    net = stages.lower(stages.optimize(tr.graph).graph)
    (tmp_path / "out.nir").write_bytes(nir_bytes(net))
    back = api.trace(tmp_path / "out.nir")
    x = spike_inputs(16, 6, 16, seed=4)
    want = simulate_netlist(net, x)
    got = simulate(back.graph, x)
    for name, p in net.populations.items():
        if type(p) is NeuronPopulation and p.params.spiking:
            np.testing.assert_array_equal(got.spikes[name].reshape(want[name].shape), want[name])
    if net.output_kind is OutputKind.MEMBRANE:
        assert type(back.graph.node(net.output_pop).dynamics) is LI
        np.testing.assert_allclose(got.output.reshape(want[net.output_pop].shape), want[net.output_pop],
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("synaptic", [False, True])
def test_spikingjelly_reads_our_export(tmp_path, synaptic):
    """spikingjelly's import_from_nir (dt = 1e-4, the dt we write for) loads our LIF / CubaLIF
    export and reproduces its spikes: its LIF is V − V/τ + X and its CUBALIF c·α + x, v·β + c,
    the same values here; it fires on ≥ where NIR says >, which no run here reaches."""
    import nir
    import torch
    from interchange.frameworks import make_snntorch, make_snntorch_synaptic, spike_inputs
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    from backends.nir.export import nir_bytes

    (make_snntorch_synaptic if synaptic else make_snntorch)(tmp_path / "s.nir")
    net = stages.lower(stages.optimize(api.trace(tmp_path / "s.nir").graph).graph)
    (tmp_path / "out.nir").write_bytes(nir_bytes(net))
    x = spike_inputs(20, 8, 16, seed=2)
    ours = simulate(api.trace(tmp_path / "out.nir").graph, x).spikes
    model = import_from_nir(nir.read(tmp_path / "out.nir"), dt=1e-4, dtype=torch.float64)
    state, outs = None, []
    with torch.no_grad():
        for xt in torch.as_tensor(x):
            y, state = model(xt, state)
            outs.append(y.numpy())
    got = np.stack(outs)
    last = max(ours, key=lambda n: net.populations[n].depth)
    assert got.sum() > 50
    np.testing.assert_array_equal(got, ours[last].reshape(got.shape))

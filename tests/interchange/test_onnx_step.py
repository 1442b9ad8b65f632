"""ONNX export, issue 12: the single time step unrolled over T on onnxruntime reproduces the
reference simulator's spikes exactly (float64), on every test network and the CIFAR-size ticket."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from interchange.onnx_helpers import NETS, compile_model, kept
from nets import (
    CASES,
    TicketNet,
    binary_spike_inputs,
    cifar_ticket,
    conv_net,
    exact_threshold_net,
    snntorch_soft_reset_net,
)
from spikingjelly.activation_based import neuron
from torch import nn

from backends.onnx.run import metadata, run_steps
from backends.onnx.step import build_step
from backends.onnx.target import OnnxTarget, serialize
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.fixedpoint.quantize import quantize_plan
from snncompile.ir import Concat, Neuron, Pool2d, Slice
from snncompile.ir.dynamics import CubaLIF, Threshold
from snncompile.lower import lower
from snncompile.netlist import OUTPUT, NeuronPopulation, OrPopulation, OutputKind
from snncompile.sim import simulate


def assert_step_model_exact(c, x: np.ndarray, dtype: str = "float64") -> dict[str, np.ndarray]:
    model = build_step(c.net, dtype)
    onnx.load_from_string(serialize(model, "step"))  # onnx.checker (full_check) accepts it
    out = run_steps(model, x)
    ref = simulate(c.graph, x)
    fired = 0
    for name, spikes in ref.spikes.items():
        if name not in c.net.populations:  # an empty population does not exist
            continue
        want = kept(c.net, name, spikes)
        np.testing.assert_array_equal(out[name], want, err_msg=f"population {name}")
        fired += int(want.sum())
    assert fired > 0
    readout = out["readout"].reshape(ref.output.shape)
    if c.net.output_kind is OutputKind.VALUES:
        np.testing.assert_allclose(readout, ref.output, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_array_equal(readout, ref.output)
    return out


@pytest.mark.parametrize("name", sorted(NETS))
def test_step_model_reproduces_reference_spikes(name):
    factory, shape, xf = NETS[name]
    c = compile_model(factory(), shape)
    assert_step_model_exact(c, xf())


def test_cifar_covers_or_removed_and_conv():
    c = compile_model(cifar_ticket(), (3, 32, 32))
    kinds = {type(p) for p in c.net.populations.values()}
    assert {OrPopulation, NeuronPopulation} <= kinds
    assert any(p.index is not None for p in c.net.populations.values())   # removed neurons
    assert any(p.impl == "conv" or p.kernel is not None for p in c.net.projections)
    ops = {n.op_type for n in build_step(c.net).graph.node}
    assert "Conv" not in ops and "MatMul" in ops       # float64: im2col + MatMul


@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("model, decay_input", [("if", True), ("lif", True), ("lif", False), ("plif", True),
                                                ("plif", False)])
def test_membrane_on_threshold_fires(v_reset, model, decay_input):
    """Dyadic weights put the membrane exactly on v_th: fires on v >= v_th, both resets."""
    c = compile_model(exact_threshold_net(v_reset, model, decay_input), (8,), passes=[])
    x = (np.random.default_rng(7).random((8, 16, 8)) < 0.6).astype(np.float64)
    assert_step_model_exact(c, x)


def test_per_neuron_thresholds():
    c = compile_model(exact_threshold_net(0.0, "lif"), (8,), passes=[])
    name = next(n for n, p in c.net.populations.items() if type(p) is NeuronPopulation and p.size == 6)
    th = np.array([0.5, 1.0, 0.75, 1.5, 0.25, 1.0])
    c.graph.node(name).dynamics = c.graph.node(name).dynamics.with_params(v_threshold=th)
    c.net = lower(c.graph)
    x = (np.random.default_rng(8).random((8, 16, 8)) < 0.6).astype(np.float64)
    assert_step_model_exact(c, x)
    assert any(i.name == f"{name}_th" for i in build_step(c.net).graph.initializer)


def test_interface_and_metadata():
    c = compile_model(TicketNet(), (1, 8, 8))
    model = build_step(c.net)
    meta = metadata(model)
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    assert meta["input"] in inputs and meta["readout"] in outputs
    for p in meta["populations"]:
        assert {p["state"]} <= inputs and {p["spikes"], p["next_state"]} <= outputs
        pop = c.net.populations[p["name"]]
        assert p["size"] == pop.size and p["v_init"] == pop.params.v_init
        assert p["kept"] == (None if pop.index is None else pop.index.tolist())
    # tensors are named by the user's module paths (sn1, sn2, sn3; the max-pool's OR neurons: pool)
    layers = {p["layer"] for p in meta["populations"]}
    assert {"sn1", "sn2", "sn3", "pool"} <= layers and {f"{lay}.v" for lay in layers} <= inputs
    assert {"sn1.spikes", "sn3.v_next"} <= outputs and all(p["layer"] == c.net.label(p["name"]) for p in meta["populations"])


def test_target_run_matches_kernels_layout():
    c = compile_model(CASES["readout"][0](), (1, 6, 6))
    x = CASES["readout"][2]()
    run = OnnxTarget().run(c.net, x, timeout_s=60)
    ref = simulate(c.graph, x)
    assert run.backend == "onnxruntime-cpu" and run.emission == "float64" and run.steps == x.shape[0]
    assert run.output.shape == (x.shape[0], x.shape[1], 4)
    np.testing.assert_allclose(run.output, ref.output.reshape(run.output.shape), rtol=1e-12, atol=1e-12)
    assert OUTPUT not in run.spikes


def test_float32_with_native_conv_agreement():
    """float32 (onnxruntime's Conv): spikes agree with the float64 reference up to rounding."""
    c = compile_model(cifar_ticket(), (3, 32, 32))
    x = np.random.default_rng(3).random((4, 8, 3, 32, 32))
    model = build_step(c.net, "float32")
    assert "Conv" in {n.op_type for n in model.graph.node}
    serialize(model, "step")
    out = run_steps(model, x)
    ref = simulate(c.graph, x)
    same = total = 0
    for name, spikes in ref.spikes.items():
        if name in c.net.populations:
            want = kept(c.net, name, spikes)
            same += int((out[name] == want).sum())
            total += want.size
    assert same / total >= 0.999
    np.testing.assert_allclose(out["readout"].reshape(ref.output.shape), ref.output, rtol=1e-4, atol=1e-4)


def test_fixed_point_netlist_is_refused():
    c = compile_model(TicketNet(), (1, 8, 8))
    q, _ = quantize_plan(c.net, np.random.default_rng(0).random((2, 1, 1, 8, 8)))
    with pytest.raises(SnnCompileError, match="fixed point") as exc:
        build_step(q)
    assert exc.value.exit_code == EXIT_UNSUPPORTED and exc.value.hint


def test_unknown_neuron_model_names_the_population():
    c = compile_model(TicketNet(), (1, 8, 8))
    name = next(n for n, p in c.net.populations.items() if type(p) is NeuronPopulation)
    pop = c.net.populations[name]
    pop.params = CubaLIF(v_threshold=pop.params.v_threshold, v_reset=pop.params.v_reset)
    with pytest.raises(SnnCompileError, match=name) as exc:
        build_step(c.net)
    assert exc.value.exit_code == EXIT_UNSUPPORTED and "'cubalif'" in str(exc.value)


class CatNet(nn.Module):
    """Two populations concatenated (torch.cat) into one layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.fa, self.fb, self.fc = nn.Linear(8, 6), nn.Linear(8, 4), nn.Linear(10, 3)
        self.a, self.b, self.out = neuron.LIFNode(tau=2.0), neuron.IFNode(v_reset=None), neuron.IFNode()
        with torch.no_grad():
            for fc in (self.fa, self.fb, self.fc):
                fc.weight.mul_(3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(torch.cat([self.a(self.fa(x)), self.b(self.fb(x))], dim=1)))


class SplitNet(nn.Module):
    """One population split in two halves (torch.chunk), each through its own layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.f, self.ga, self.gb = nn.Linear(8, 10), nn.Linear(5, 3), nn.Linear(5, 3)
        self.a, self.out = neuron.LIFNode(tau=2.0), neuron.IFNode()
        with torch.no_grad():
            for fc in (self.f, self.ga, self.gb):
                fc.weight.mul_(3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = torch.chunk(self.a(self.f(x)), 2, dim=1)
        return self.out(self.ga(left) + self.gb(right))


def test_slice():
    c = compile_model(SplitNet(), (8,))
    assert any(isinstance(n, Slice) for p in c.net.projections for ch in p.chains for n in ch.nodes)
    assert_step_model_exact(c, np.random.default_rng(11).random((6, 10, 8)))


def test_concat():
    c = compile_model(CatNet(), (8,))
    assert any(isinstance(n, Concat) for p in c.net.projections for ch in p.chains for n in ch.nodes)
    assert_step_model_exact(c, np.random.default_rng(9).random((6, 10, 8)))


def test_sum_pool_threshold_and_strict_neurons():
    """NIR's node kinds: sum pooling, stateless threshold neurons, firing on h > v_th."""
    c = compile_model(conv_net("s"), (1, 8, 8), passes=[])
    pool = next(n for n, node in c.graph.items() if isinstance(node, Pool2d) and node.mode == "avg")
    c.graph.node(pool).mode = "sum"
    neurons = [n for n, node in c.graph.items() if isinstance(node, Neuron)]
    first = c.graph.node(neurons[0])
    first.dynamics = first.dynamics.with_params(strict=True)
    last = c.graph.node(neurons[-1])
    d = last.dynamics
    last.dynamics = Threshold(v_threshold=d.v_threshold, v_reset=d.v_reset, reset_by=d.reset_by, strict=True)
    c.net = lower(c.graph)
    model = build_step(c.net)
    assert "Greater" in {n.op_type for n in model.graph.node}
    assert_step_model_exact(c, np.random.default_rng(10).random((6, 9, 1, 8, 8)))


def test_nir_sum_pool_is_not_divided(tmp_path):
    """A NIR SumPool2d (Pool2d mode "sum") is the window sum in the step model, not an average."""
    import nir
    from interchange.onnx_helpers import Compiled

    from snncompile import api

    rng = np.random.default_rng(4)
    nodes = {"input": nir.Input(input_type={"input": np.array([2, 6, 6])}),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0),
             "fc": nir.Linear(weight=rng.normal(size=(5, 18))),
             "if": nir.IF(r=np.ones(5), v_threshold=np.full(5, 1.5)),
             "output": nir.Output(output_type={"output": np.array([5])})}
    names = list(nodes)
    path = tmp_path / "sum.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False))
    graph = api.trace(path).graph
    assert [graph.node(n).mode for n in graph.of_type(Pool2d)] == ["sum"]
    x = (rng.random((6, 8, 2, 6, 6)) < 0.5).astype(np.float64)
    assert_step_model_exact(Compiled(graph, lower(graph)), x)


def test_step_model_soft_reset_by_amount():
    """snnTorch's default subtract reset (soft reset by θ/β ≠ V_th) and "none" (by 0) in the
    ONNX step equal the reference, which equals snnTorch; NIR refuses the soft reset by name."""
    pytest.importorskip("snntorch")
    c = compile_model(snntorch_soft_reset_net(), (8,))
    assert sorted(p.params.reset_by for p in c.net.populations.values() if isinstance(p, NeuronPopulation)) == [0.0, 2.0]
    assert_step_model_exact(c, binary_spike_inputs(10, 12, (8,), seed=5))
    from backends.nir.export import nir_bytes

    with pytest.raises(SnnCompileError, match=r"population `\w+`: soft \(subtractive\) reset by 2") as e:
        nir_bytes(c.net)
    assert e.value.exit_code == EXIT_UNSUPPORTED and "reset_mechanism='zero'" in e.value.hint

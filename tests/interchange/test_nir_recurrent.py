"""Recurrent NIR graphs and NIR Delay nodes: snnTorch's RLeaky export, hand-built loops
checked against loops written out here, every stage (reference, netlist, kernels, ONNX,
NIR round trip, Lava) spike for spike, and the refusals."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
from interchange.frameworks import agreement, make_snntorch_recurrent, spike_inputs

from snncompile import api, stages
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.ir import Delay, Neuron
from snncompile.netlist import OutputKind
from snncompile.sim.kernels import run_kernels
from snncompile.sim.netlist import simulate_netlist

DT = 1e-4


def _write(tmp_path: Path, nodes: dict, edges: list, name: str = "g.nir") -> Path:
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


def _lif(n: int, q: float, th: float = 1.0) -> nir.LIF:
    """v ← (1 − q)·v + x, fires on v > th, resets to 0 (r·dt/τ = 1: snnTorch's form)."""
    tau = np.full(n, DT / q)
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(n), v_threshold=np.full(n, th), v_reset=np.zeros(n))


def _step(v: np.ndarray, x: np.ndarray, q: float, th: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    v = (1 - q) * v + x
    s = (v > th).astype(np.float64)
    return s, np.where(s > 0, 0.0, v)


def _by_source(tr, values: dict[str, np.ndarray], net=None) -> dict[str, np.ndarray]:
    out = {}
    for ir, src in tr.neuron_sources.items():
        v = values[ir]
        out[src] = net.populations[ir].expand(v) if net is not None else v
    return out


def _every_stage(tr, x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Spikes per NIR neuron from the reference, the netlist simulator, the kernels and ONNX."""
    from backends.onnx.run import run_steps
    from backends.onnx.step import build_step
    from backends.onnx.target import serialize

    net = stages.lower(stages.optimize(tr.graph).graph)
    T, B = x.shape[:2]
    ref = stages.reference(tr.graph, x)
    model = build_step(net)
    serialize(model, "time-step model")   # onnx.checker
    return {"reference": _by_source(tr, ref.spikes),
            "netlist": _by_source(tr, simulate_netlist(net, x), net),
            "kernels": _by_source(tr, run_kernels(net, x), net),
            "onnx": _by_source(tr, run_steps(model, x), net)}


@pytest.mark.parametrize("kind", ["rleaky", "rleaky-v"])
def test_snntorch_rleaky_is_spike_exact_at_every_stage(tmp_path, kind):
    """snnTorch 1.0's RLeaky export (a LIF and its recurrent Linear in a cycle): its one-step
    recurrence is read as a delay of the spikes, so the recurrent bias acts from t = 0 as in
    snnTorch."""
    run = make_snntorch_recurrent(tmp_path / "r.nir", kind)
    x = spike_inputs(20, 8, 16, seed=7)
    ref = {k: v for k, v in run(x).items()}
    assert ref["1"].mean() > 0.05 and ref["3"].sum() > 0
    tr = api.trace(tmp_path / "r.nir")
    assert len(tr.graph.of_type(Delay)) == 1 and tr.graph.recurrent()
    for stage, got in _every_stage(tr, x).items():
        got = {k.split(".")[0]: v for k, v in got.items()}
        assert agreement(ref, got) == (1.0, 6720), stage


def _feedback_graph(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, dict]:
    w = {"w1": rng.normal(0, 1.2, (8, 4)), "w2": rng.normal(0.3, 1.0, (6, 8)), "wfb": rng.normal(0, 1.0, (8, 6))}
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "w1": nir.Linear(weight=w["w1"]),
             "lif1": _lif(8, 0.2), "w2": nir.Linear(weight=w["w2"]), "lif2": _lif(6, 0.3),
             "wfb": nir.Linear(weight=w["wfb"]), "output": nir.Output(output_type={"output": np.array([6])})}
    edges = [("input", "w1"), ("w1", "lif1"), ("lif1", "w2"), ("w2", "lif2"), ("lif2", "wfb"), ("wfb", "lif1"),
             ("lif2", "output")]
    return _write(tmp_path, nodes, edges), w


def test_feedback_from_a_later_layer(tmp_path):
    """lif2 → wfb → lif1: lif1 at step t reads lif2's spikes of step t − 1."""
    path, w = _feedback_graph(tmp_path, np.random.default_rng(1))
    x = spike_inputs(25, 6, 4, p=0.4, seed=2)
    T, B = x.shape[:2]
    v1, v2, s2 = np.zeros((B, 8)), np.zeros((B, 6)), np.zeros((B, 6))
    want = {"lif1": [], "lif2": []}
    for t in range(T):
        s1, v1 = _step(v1, x[t] @ w["w1"].T + s2 @ w["wfb"].T, 0.2)
        s2, v2 = _step(v2, s1 @ w["w2"].T, 0.3)
        want["lif1"].append(s1)
        want["lif2"].append(s2)
    want = {k: np.stack(v) for k, v in want.items()}
    assert want["lif1"].mean() > 0.05 and want["lif2"].mean() > 0.05
    tr = api.trace(path, nir_dt=DT)
    (delay,) = tr.graph.of_type(Delay)
    assert tr.graph.inputs(delay) == ["lif2"]   # the delay sits on the spikes
    for stage, got in _every_stage(tr, x).items():
        assert agreement(want, got)[0] == 1.0, stage


def test_explicit_delays_feed_forward_and_in_a_loop(tmp_path):
    """A NIR Delay of 3·dt between layers and one of 2·dt closing a loop (no extra step)."""
    rng = np.random.default_rng(3)
    w1, w2, wr = rng.normal(0, 1.5, (8, 4)), rng.normal(0.4, 1.0, (6, 8)), rng.normal(0, 0.8, (6, 6))
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "w1": nir.Linear(weight=w1),
             "lif1": _lif(8, 0.25), "d3": nir.Delay(delay=np.full(8, 3 * DT)), "w2": nir.Linear(weight=w2),
             "lif2": _lif(6, 0.1), "d2": nir.Delay(delay=np.full(6, 2 * DT)), "wr": nir.Linear(weight=wr),
             "output": nir.Output(output_type={"output": np.array([6])})}
    edges = [("input", "w1"), ("w1", "lif1"), ("lif1", "d3"), ("d3", "w2"), ("w2", "lif2"), ("lif2", "d2"),
             ("d2", "wr"), ("wr", "lif2"), ("lif2", "output")]
    path = _write(tmp_path, nodes, edges)
    x = spike_inputs(24, 5, 4, p=0.5, seed=4)
    T, B = x.shape[:2]
    v1, v2 = np.zeros((B, 8)), np.zeros((B, 6))
    s1s, s2s = [], []
    for t in range(T):
        s1, v1 = _step(v1, x[t] @ w1.T, 0.25)
        late = s1s[t - 3] if t >= 3 else np.zeros((B, 8))
        rec = s2s[t - 2] if t >= 2 else np.zeros((B, 6))
        s2, v2 = _step(v2, late @ w2.T + rec @ wr.T, 0.1)
        s1s.append(s1)
        s2s.append(s2)
    want = {"lif1": np.stack(s1s), "lif2": np.stack(s2s)}
    assert want["lif2"].mean() > 0.05
    tr = api.trace(path, nir_dt=DT)
    assert sorted(tr.graph.node(n).steps for n in tr.graph.of_type(Delay)) == [2, 3]
    for stage, got in _every_stage(tr, x).items():
        assert agreement(want, got)[0] == 1.0, stage


def _per_neuron_graph(tmp_path: Path) -> tuple[Path, dict]:
    """Per-neuron delays of 1–4 steps on a layer's spikes, and of 1–2 steps closing a loop."""
    rng = np.random.default_rng(11)
    p = {"w1": rng.normal(0, 1.5, (8, 4)), "w2": rng.normal(0.4, 1.0, (6, 8)), "wr": rng.normal(0, 0.9, (6, 6)),
         "k1": np.array([1, 2, 3, 4, 1, 2, 3, 4]), "k2": np.array([1, 2, 1, 2, 2, 1])}
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "w1": nir.Linear(weight=p["w1"]),
             "lif1": _lif(8, 0.25), "d": nir.Delay(delay=p["k1"] * DT), "w2": nir.Linear(weight=p["w2"]),
             "lif2": _lif(6, 0.1), "dr": nir.Delay(delay=p["k2"] * DT), "wr": nir.Linear(weight=p["wr"]),
             "output": nir.Output(output_type={"output": np.array([6])})}
    edges = [("input", "w1"), ("w1", "lif1"), ("lif1", "d"), ("d", "w2"), ("w2", "lif2"), ("lif2", "dr"),
             ("dr", "wr"), ("wr", "lif2"), ("lif2", "output")]
    return _write(tmp_path, nodes, edges, "per_neuron.nir"), p


def _per_neuron_spikes(p: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    T, B = x.shape[:2]
    v1, v2 = np.zeros((B, 8)), np.zeros((B, 6))
    s1s, s2s = [], []

    def late(history: list, k: np.ndarray, t: int) -> np.ndarray:
        out = np.zeros((B, len(k)))
        for i, ki in enumerate(k):
            if t >= ki:
                out[:, i] = history[t - ki][:, i]
        return out

    for t in range(T):
        s1, v1 = _step(v1, x[t] @ p["w1"].T, 0.25)
        s1s.append(s1)
        s2, v2 = _step(v2, late(s1s, p["k1"], t) @ p["w2"].T + late(s2s, p["k2"], t) @ p["wr"].T, 0.1)
        s2s.append(s2)
    return {"lif1": np.stack(s1s), "lif2": np.stack(s2s)}


def test_per_neuron_delays(tmp_path):
    path, p = _per_neuron_graph(tmp_path)
    x = spike_inputs(24, 5, 4, p=0.5, seed=12)
    want = _per_neuron_spikes(p, x)
    assert want["lif2"].mean() > 0.05
    tr = api.trace(path, nir_dt=DT)
    steps = sorted(tuple(np.ravel(tr.graph.node(n).steps)) for n in tr.graph.of_type(Delay))
    assert steps == [tuple(p["k2"]), tuple(p["k1"])]
    for stage, got in _every_stage(tr, x).items():
        assert agreement(want, got)[0] == 1.0, stage


def _linear_loop_graph(tmp_path: Path) -> tuple[Path, dict]:
    """a1 sums the input's projection and a2's (delayed) output; a2 has a bias: a loop of real
    values with no neuron on it, read by a LIF."""
    rng = np.random.default_rng(5)
    p = {"w0": rng.normal(0, 1.0, (5, 4)), "w1": rng.normal(0, 0.6, (5, 5)), "b1": rng.normal(0, 0.2, 5),
         "w2": rng.normal(0, 0.4, (5, 5)), "b2": rng.normal(0.3, 0.1, 5)}
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "a0": nir.Linear(weight=p["w0"]),
             "a1": nir.Affine(weight=p["w1"], bias=p["b1"]), "a2": nir.Affine(weight=p["w2"], bias=p["b2"]),
             "lif": _lif(5, 0.3, th=0.8), "output": nir.Output(output_type={"output": np.array([5])})}
    edges = [("input", "a0"), ("a0", "a1"), ("a1", "a2"), ("a2", "a1"), ("a1", "lif"), ("lif", "output")]
    return _write(tmp_path, nodes, edges), p


def _linear_loop_spikes(p: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    T, B = x.shape[:2]
    a2_prev = np.zeros((B, 5))             # a2's output before step 0: its initial state, 0
    v = np.zeros((B, 5))
    spikes = []
    for t in range(T):
        a1 = (x[t] @ p["w0"].T + a2_prev) @ p["w1"].T + p["b1"]
        a2_prev = a1 @ p["w2"].T + p["b2"]
        s, v = _step(v, a1, 0.3, th=0.8)
        spikes.append(s)
    return {"lif": np.stack(spikes)}


def test_loop_of_real_values_with_a_delayed_bias(tmp_path):
    path, p = _linear_loop_graph(tmp_path)
    x = spike_inputs(20, 6, 4, p=0.4, seed=6)
    want = _linear_loop_spikes(p, x)
    assert 0.05 < want["lif"].mean() < 0.95
    tr = api.trace(path, nir_dt=DT)
    net = stages.lower(stages.optimize(tr.graph).graph)
    (line,) = net.delays
    assert not line.relay and line.graded   # sends real values
    for stage, got in _every_stage(tr, x).items():
        assert agreement(want, got)[0] == 1.0, stage


def test_round_trip_through_our_nir_export(tmp_path):
    from backends.nir.export import to_nir

    path, _ = _feedback_graph(tmp_path, np.random.default_rng(1))
    tr = api.trace(path, nir_dt=DT)
    net = stages.lower(stages.optimize(tr.graph).graph)
    graph = to_nir(net)
    assert sum(isinstance(n, nir.Delay) for n in graph.nodes.values()) == 1
    nir.write(tmp_path / "back.nir", graph)
    back = api.trace(tmp_path / "back.nir")
    x = spike_inputs(25, 6, 4, p=0.4, seed=2)
    first = stages.reference(tr.graph, x).spikes
    again = stages.reference(back.graph, x).spikes
    assert set(first) == set(again)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])


@pytest.mark.parametrize("delay,dt,needle,code", [
    (np.array([0.0, 2e-4]), 1e-4, "per-neuron delays of 0 and more", EXIT_UNSUPPORTED),
    (np.full(2, 1.5e-4), 1e-4, "not a whole number", EXIT_UNSUPPORTED),
    (np.full(2, 1e-4), None, "needs the time step dt", EXIT_USAGE),
])
def test_delays_that_cannot_be_mapped_name_the_node(tmp_path, delay, dt, needle, code):
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}), "late": nir.Delay(delay=delay),
             "w": nir.Linear(weight=np.eye(2)), "output": nir.Output(output_type={"output": np.array([2])})}
    path = _write(tmp_path, nodes, [("input", "late"), ("late", "w"), ("w", "output")])
    with pytest.raises(SnnCompileError, match=needle) as err:
        api.trace(path, nir_dt=dt)
    assert "`late`" in err.value.message and err.value.hint and err.value.exit_code == code


def test_stock_lava_and_fixed_point_refuse_what_they_cannot_run(tmp_path):
    from backends.lava import run_lava

    path, _ = _feedback_graph(tmp_path, np.random.default_rng(1))
    net = stages.lower(stages.optimize(api.trace(path, nir_dt=DT).graph).graph)
    x = spike_inputs(4, 2, 4)
    with pytest.raises(SnnCompileError, match="delay of 1 step") as err:
        run_lava(net, x, emit="stock")
    assert "--emit fused" in err.value.hint
    qnet, _ = stages.quantize(net, x, (4,))   # a relay of spikes is integer already
    (line,) = qnet.delays
    relay = qnet.into(line.name)[0]
    assert relay.weight_exp == 0 and set(relay.weights.data) == {1}
    path, _ = _linear_loop_graph(tmp_path)
    net = stages.lower(stages.optimize(api.trace(path, nir_dt=DT).graph).graph)
    with pytest.raises(SnnCompileError, match="a delay of real values") as err:
        stages.quantize(net, x, (4,))
    assert "drop --fixed-point" in err.value.hint


def test_cli_reports_the_delay_line(tmp_path, capsys):
    import json

    from snncompile.cli import main

    path, _ = _feedback_graph(tmp_path, np.random.default_rng(1))
    code = main([str(path), "--target", "nir", "--nir-dt", str(DT), "--steps", "10", "--json",
                 "-o", str(tmp_path / "out")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and (tmp_path / "out" / "model.nir").is_file()
    assert out["lowering"]["delay_lines"] == [{"name": "lif2_delay", "steps": 1, "per_neuron": False,
                                             "sends": "spikes", "size": 6}]
    assert {"name": "lif2_delay", "op": "delay", "detail": "1 step late"}.items() <= \
        next(r for r in out["layers"] if r["name"] == "lif2_delay").items()


@pytest.mark.lava
def test_recurrent_graphs_on_lava(tmp_path):
    """snnTorch's RLeaky, a feedback loop between layers and a loop of real values on the
    fused Lava emission (a delay process sends first, then receives)."""
    run = make_snntorch_recurrent(tmp_path / "r.nir", "rleaky")
    x = spike_inputs(20, 8, 16, seed=7)
    tr = api.trace(tmp_path / "r.nir")
    net = stages.lower(stages.optimize(tr.graph).graph)
    lava = stages.simulate_on("lava", net, x, timeout=300)
    got = {k.split(".")[0]: v for k, v in _by_source(tr, lava.spikes, net).items()}
    assert agreement(run(x), got) == (1.0, 6720)

    for build, spikes, x in ((_linear_loop_graph, _linear_loop_spikes, spike_inputs(20, 6, 4, p=0.4, seed=6)),
                             (_per_neuron_graph, _per_neuron_spikes, spike_inputs(24, 5, 4, p=0.5, seed=12))):
        path, p = build(tmp_path)
        tr = api.trace(path, nir_dt=DT)
        net = stages.lower(stages.optimize(tr.graph).graph)
        lava = stages.simulate_on("lava", net, x, timeout=300)
        assert agreement(spikes(p, x), _by_source(tr, lava.spikes, net))[0] == 1.0, build.__name__

    path, p = _chain_graph(tmp_path)   # delays in a row; the output is read from a delay
    x = spike_inputs(20, 5, 4, p=0.5, seed=14)
    net = stages.lower(stages.optimize(api.trace(path, nir_dt=DT).graph).graph)
    lava = stages.simulate_on("lava", net, x, timeout=300)
    want = _chain_spikes(p, x)
    np.testing.assert_array_equal(lava.spikes["lif"], want)
    np.testing.assert_array_equal(lava.spikes[net.output_pop], np.concatenate([np.zeros_like(want[:1]), want[:-1]]))

    # fixed point: the feedback loop's relay carries integer spikes; Lava equals the integer reference
    path, _ = _feedback_graph(tmp_path, np.random.default_rng(1))
    net = stages.lower(stages.optimize(api.trace(path, nir_dt=DT).graph).graph)
    x = spike_inputs(25, 6, 4, p=0.4, seed=2)
    qnet, _ = stages.quantize(net, x, (4,))
    ints = stages.integer_reference(qnet, x)
    lava = stages.simulate_on("lava", qnet, x, timeout=300)
    for name in ("lif1", "lif2"):
        np.testing.assert_array_equal(lava.spikes[name], ints[name])
    assert ints["lif1"].mean() > 0.05


def _conv_loop_graph(tmp_path: Path) -> Path:
    """CIFAR size: 3×32×32 → conv 3→128 s2 → LIF (128×16×16) with a 3×3 recurrent conv
    128→128 (90 % zero weights) → sum-pool 4 → flatten → 2048→10 → LIF."""
    rng = np.random.default_rng(8)
    w_in = rng.normal(0, 0.45, (128, 3, 3, 3))
    w_rec = rng.normal(0, 0.35, (128, 128, 3, 3)) * (rng.random((128, 128, 3, 3)) < 0.1)
    w_out = rng.normal(0.02, 0.08, (10, 2048))
    conv = dict(dilation=np.array([1, 1]), groups=1)
    nodes = {"input": nir.Input(input_type={"input": np.array([3, 32, 32])}),
             "conv": nir.Conv2d(input_shape=(32, 32), weight=w_in, stride=np.array([2, 2]), padding=np.array([1, 1]),
                                bias=np.zeros(128), **conv),
             "lif": _lif_shaped((128, 16, 16), 0.2),
             "rec": nir.Conv2d(input_shape=(16, 16), weight=w_rec, stride=np.array([1, 1]), padding=np.array([1, 1]),
                               bias=np.zeros(128), **conv),
             "pool": nir.SumPool2d(kernel_size=np.array([4, 4]), stride=np.array([4, 4]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([128, 4, 4])}, start_dim=0, end_dim=-1),
             "fc": nir.Linear(weight=w_out), "out": _lif(10, 0.1),
             "output": nir.Output(output_type={"output": np.array([10])})}
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "pool"), ("pool", "flat"),
             ("flat", "fc"), ("fc", "out"), ("out", "output")]
    return _write(tmp_path, nodes, edges, "conv_loop.nir")


def _lif_shaped(shape: tuple[int, ...], q: float) -> nir.LIF:
    tau = np.full(shape, DT / q)
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape))


@pytest.mark.lava
def test_recurrent_conv_at_cifar_size_on_lava(tmp_path):
    """32 k neurons in a loop through a sparse 3×3 conv (≈3.7 M recurrent synapses): the
    reference, the kernels and Lava agree spike for spike; nothing is unrolled before the
    kernels (the netlist keeps the conv)."""
    tr = api.trace(_conv_loop_graph(tmp_path), nir_dt=DT)
    net = stages.lower(stages.optimize(tr.graph).graph)
    (line,) = net.delays
    rec = next(p for p in net.projections if p.src == line.name)
    assert rec.kernel is not None and rec.synapses > 3_000_000
    x = spike_inputs(6, 4, 3 * 32 * 32, p=0.3, seed=9).reshape(6, 4, 3, 32, 32)
    ref = stages.reference(tr.graph, x).spikes
    rate = ref["lif"].mean()
    assert 0.02 < rate < 0.6 and ref["out"].sum() > 0
    lava = stages.simulate_on("lava", net, x, timeout=600)
    for name in ("lif", "out"):
        got = net.populations[name].expand(lava.spikes[name])
        np.testing.assert_array_equal(got, ref[name].reshape(got.shape))


def _chain_graph(tmp_path: Path) -> tuple[Path, dict]:
    """A loop through two delays in a row (2 then 1 step), and the output read from a delay."""
    rng = np.random.default_rng(13)
    p = {"w1": rng.normal(0.3, 1.2, (8, 4)), "wr": rng.normal(0, 0.8, (8, 8))}
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "w1": nir.Linear(weight=p["w1"]),
             "lif": _lif(8, 0.2), "d1": nir.Delay(delay=np.full(8, 2 * DT)), "d2": nir.Delay(delay=np.full(8, DT)),
             "wr": nir.Linear(weight=p["wr"]), "late": nir.Delay(delay=np.full(8, DT)),
             "output": nir.Output(output_type={"output": np.array([8])})}
    edges = [("input", "w1"), ("w1", "lif"), ("lif", "d1"), ("d1", "d2"), ("d2", "wr"), ("wr", "lif"),
             ("lif", "late"), ("late", "output")]
    return _write(tmp_path, nodes, edges, "chain.nir"), p


def _chain_spikes(p: dict, x: np.ndarray) -> np.ndarray:
    T, B = x.shape[:2]
    v, spikes = np.zeros((B, 8)), []
    for t in range(T):
        back = spikes[t - 3] if t >= 3 else np.zeros((B, 8))
        s, v = _step(v, x[t] @ p["w1"].T + back @ p["wr"].T, 0.2)
        spikes.append(s)
    return np.stack(spikes)


def test_delays_in_a_row_and_an_output_read_through_a_delay(tmp_path):
    path, p = _chain_graph(tmp_path)
    x = spike_inputs(20, 5, 4, p=0.5, seed=14)
    want = _chain_spikes(p, x)
    assert want.mean() > 0.05
    tr = api.trace(path, nir_dt=DT)
    net = stages.lower(stages.optimize(tr.graph).graph)
    assert all(d.relay for d in net.delays) and net.output_kind is OutputKind.SPIKES   # delays of delays relay spikes
    late = np.concatenate([np.zeros_like(want[:1]), want[:-1]])
    for stage, got in _every_stage(tr, x).items():
        assert agreement({"lif": want}, got)[0] == 1.0, stage
    np.testing.assert_array_equal(simulate_netlist(net, x)[net.output_pop], late.reshape(20, 5, -1))
    stages.quantize(net, x, (4,))   # every delay relays spikes: fixed point accepts them


def test_a_neuron_inside_a_nested_graph_gets_the_same_loop(tmp_path):
    """A LIF wrapped in a sub-graph whose Output feeds both the recurrent Affine and the next
    layer: the loop's delay still sits on the LIF's spikes (the bias acts from t = 0)."""
    rng = np.random.default_rng(15)
    w1, wr, w2 = rng.normal(0.2, 1.0, (8, 4)), rng.normal(0, 0.5, (8, 8)), rng.normal(0.3, 1.0, (3, 8))
    cell = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([8])}), "lif": _lif(8, 0.2),
                               "output": nir.Output(output_type={"output": np.array([8])})},
                        edges=[("input", "lif"), ("lif", "output")], type_check=False)
    common = {"input": nir.Input(input_type={"input": np.array([4])}), "w1": nir.Linear(weight=w1),
              "rec": nir.Affine(weight=wr, bias=np.full(8, 0.6)), "w2": nir.Linear(weight=w2), "out": _lif(3, 0.3),
              "output": nir.Output(output_type={"output": np.array([3])})}
    nested = _write(tmp_path, {**common, "cell": cell},
                    [("input", "w1"), ("w1", "cell"), ("cell", "rec"), ("rec", "cell"), ("cell", "w2"),
                     ("w2", "out"), ("out", "output")], "nested.nir")
    flat = _write(tmp_path, {**common, "lif": _lif(8, 0.2)},
                  [("input", "w1"), ("w1", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "w2"), ("w2", "out"),
                   ("out", "output")], "flat.nir")
    x = spike_inputs(15, 4, 4, p=0.4, seed=16)
    a, b = api.trace(nested, nir_dt=DT), api.trace(flat, nir_dt=DT)
    (d,) = a.graph.of_type(Delay)
    assert isinstance(a.graph.node(a.graph.inputs(d)[0]), Neuron)   # on the spikes, before the bias
    sa, sb = stages.reference(a.graph, x).spikes, stages.reference(b.graph, x).spikes
    assert {a.neuron_sources[k].split(".")[-1]: v.sum() for k, v in sa.items()} == \
        {b.neuron_sources[k]: v.sum() for k, v in sb.items()}
    np.testing.assert_array_equal(sa[next(k for k in sa if k.endswith("lif"))], sb["lif"])


def test_layer_wide_parameters_in_a_loop_take_the_layer_shape(tmp_path):
    tau = np.full(1, DT / 0.2)   # one value for the layer, shape (1,)
    lif = nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "w1": nir.Linear(weight=np.ones((8, 4))),
             "lif": lif, "rec": nir.Linear(weight=np.eye(8)), "output": nir.Output(output_type={"output": np.array([8])})}
    path = _write(tmp_path, nodes, [("input", "w1"), ("w1", "lif"), ("lif", "rec"), ("rec", "lif"),
                                    ("lif", "output")])
    tr = api.trace(path, nir_dt=DT)
    (d,) = tr.graph.of_type(Delay)
    assert tr.graph.node(d).shape == (8,) == tr.graph.node("lif").shape


def test_firing_rates_pass_through_a_delay(tmp_path):
    from snncompile.energy.counts import analytic_counts, static_counts

    path, _ = _feedback_graph(tmp_path, np.random.default_rng(1))
    graph = stages.optimize(api.trace(path, nir_dt=DT).graph).graph
    rows = static_counts(graph)
    analytic_counts(graph, rows, {"lif2": 0.5, "*": 0.01}, steps=10)
    rate = {r.name: r.firing_rate_in for r in rows}
    assert rate["wfb"] == 0.5   # wfb reads lif2 through its delay
    assert rate["w2"] == 0.01


def test_fixed_point_scale_leaves_room_for_every_projection(tmp_path):
    """The recurrent weights of lif1 are 50× its input weights: the population's scale is
    lowered (by powers of two) until they fit 8-bit mantissas with an exponent ≤ 7, so
    nothing saturates, and the input projection still quantizes its peak exactly."""
    rng = np.random.default_rng(17)
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "w1": nir.Linear(weight=rng.normal(0, 0.02, (8, 4))),
             "lif1": _lif(8, 0.2), "wfb": nir.Linear(weight=rng.normal(0, 1.0, (8, 8))),
             "output": nir.Output(output_type={"output": np.array([8])})}
    path = _write(tmp_path, nodes, [("input", "w1"), ("w1", "lif1"), ("lif1", "wfb"), ("wfb", "lif1"),
                                    ("lif1", "output")])
    net = stages.lower(stages.optimize(api.trace(path, nir_dt=DT).graph).graph)
    x = spike_inputs(6, 2, 4)
    _, info = stages.quantize(net, x, (4,))
    assert all(e.saturated == 0 for e in info.errors), [(e.projection, e.saturated) for e in info.errors]
    assert all(e.weight_exp <= 7 for e in info.errors)

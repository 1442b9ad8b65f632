"""The IR verifier: every check fires on a hand-broken graph, the pass manager names the pass
that broke a graph, and the shipped and test models verify clean before and after passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nets import CASES, cifar_ticket, spikformer_net

from snncompile.frontend import trace_model
from snncompile.ir import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
    Input,
    IRGraph,
    Linear,
    Mask,
    MatMul,
    Neuron,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Slice,
    Transpose,
)
from snncompile.ir.dynamics import IF
from snncompile.ir.nodes import NODE_TYPES
from snncompile.ir.verify import CHECKS, IRVerificationError
from snncompile.passes import PASSES, manager, run_passes
from snncompile.passes.base import Pass, PassStats

ROOT = Path(__file__).resolve().parents[2]


def test_every_node_type_has_a_check():
    assert CHECKS.missing() == []
    assert set(NODE_TYPES) - {t.op for t in CHECKS._impl} == set()


def test_suite_runs_with_verification_on():
    assert manager.verify_by_default()


def _conv_graph() -> IRGraph:
    g = IRGraph("t")
    g.add("x", Input((2, 6, 6)))
    w = np.ones((4, 2, 3, 3))
    g.add("conv", Conv2d((4, 6, 6), "net.conv", weight=w, padding=(1, 1)), ["x"])
    g.add("sn", Neuron((4, 6, 6), "net.sn", dynamics=IF()), ["conv"])
    g.add("pool", Pool2d((4, 3, 3), "net.pool"), ["sn"])
    g.add("flat", Reshape((36,), "net.flat"), ["pool"])
    g.add("fc", Linear((5,), "net.fc", weight=np.ones((5, 36))), ["flat"])
    g.add("sn2", Neuron((5,), "net.sn2"), ["fc"])
    g.add("out", Output((5,)), ["sn2"])
    return g


def test_a_good_graph_verifies():
    _conv_graph().verify()


def _broken(mutate) -> str:
    g = _conv_graph()
    mutate(g)
    with pytest.raises(IRVerificationError) as info:
        g.verify()
    return str(info.value)


def _set(name, **fields):
    def mutate(g):
        for k, v in fields.items():
            setattr(g.node(name), k, v)
    return mutate


@pytest.mark.parametrize("name, fields, words", [
    ("conv", {"shape": (4, 5, 6)}, "conv output size formula"),
    ("conv", {"stride": (0, 1)}, "stride"),
    ("conv", {"groups": 3}, "groups 3"),
    ("conv", {"mask": np.ones((4, 2, 3, 2), bool)}, "mask has shape"),
    ("conv", {"mask": np.ones((4, 2, 3, 3))}, "mask has dtype float64, needs bool"),
    ("conv", {"weight": np.ones((4, 2, 3, 3), np.int64)}, "weight has dtype int64"),
    ("conv", {"weight": np.full((4, 2, 3, 3), np.nan)}, "weight has non-finite"),
    ("conv", {"bias": np.zeros(3)}, "bias has shape"),
    ("conv", {"gain": np.zeros(4)}, "gain has zeros"),
    ("pool", {"shape": (4, 2, 2)}, "pool output size formula"),
    ("pool", {"mode": "median"}, "mode 'median'"),
    ("pool", {"kernel": (0, 2)}, "kernel"),
    ("flat", {"shape": (35,)}, "35 elements"),
    ("fc", {"weight": np.ones((5, 35)), "mask": np.ones((5, 35), bool)}, "reads 35 features"),
    ("fc", {"shape": (6,)}, "should be (5,)"),
    ("sn", {"alive": np.ones((4, 6), bool)}, "alive has shape"),
    ("sn", {"alive": np.ones((4, 6, 6))}, "alive has dtype"),
    ("sn", {"dynamics": IF(v_threshold=np.ones((4, 6)))}, "v_threshold has shape"),
    ("sn", {"dynamics": IF(v_threshold=float("inf"))}, "v_threshold inf"),
    ("sn", {"shape": (4, 6, 5)}, "neurons"),
])
def test_each_check_fires(name, fields, words):
    message = _broken(_set(name, **fields))
    assert words in message and repr(name) in message
    source = _conv_graph().node(name).source
    if source:
        assert f"from {source}" in message


def test_arity_and_edges():
    assert "needs 1" in _broken(lambda g: g.set_inputs("sn", ["conv", "conv"]))
    assert "disagree" in _broken(lambda g: g.nx.add_edge("x", "fc"))


def _single(node, *inputs: tuple[int, ...]) -> str | None:
    g = IRGraph("t")
    names = [g.add(f"x{i}", Input(s)) for i, s in enumerate(inputs)]
    g.add("n", node, names)
    try:
        g.verify()
    except IRVerificationError as exc:
        return str(exc)
    return None


bn = dict(mean=np.zeros(3), var=np.ones(3), weight=np.ones(3), bias=np.zeros(3))


@pytest.mark.parametrize("node, inputs, words", [
    (BatchNorm((3, 4), **{**bn, "var": -np.ones(3)}), [(3, 4)], "var has negative"),
    (BatchNorm((3, 4), **{**bn, "mean": np.zeros(2)}), [(3, 4)], "mean has shape"),
    (BatchNorm((3, 5), **bn), [(3, 4)], "differs from its input"),
    (Add((3,)), [(3,), (4,)], "differs from its input"),
    (Add((3,)), [(3,)], "needs 2"),
    (Mask((2, 2), keep=np.ones((2, 3), bool)), [(2, 2)], "keep has shape"),
    (Mask((2, 2), keep=np.ones((2, 2))), [(2, 2)], "keep has dtype"),
    (Transpose((3, 2), perm=(0, 0)), [(2, 3)], "not a permutation"),
    (Transpose((2, 3), perm=(1, 0)), [(2, 3)], "should be (3, 2)"),
    (Scale((2,), factor=float("nan")), [(2,)], "factor nan"),
    (Reduce((2,), axis=2), [(2, 3)], "axis 2 is outside"),
    (Reduce((3,), axis=1), [(2, 3)], "reduced input"),
    (MatMul((2, 4)), [(2, 3), (2, 4)], "do not broadcast"),
    (MatMul((2, 5), mode="matmul"), [(2, 3), (3, 4)], "product"),
    (MatMul((2, 3), mode="hadamard"), [(2, 3), (4, 3)], "do not broadcast"),
    (Concat((2, 5), axis=1), [(2, 3), (2, 3)], "add up to 6"),
    (Concat((2, 6), axis=1), [(2, 3), (3, 3)], "outside axis 1"),
    (Slice((2,), axis=0, start=3, stop=5), [(4,)], "not inside"),
    (Slice((3,), axis=0, start=1, stop=3), [(4,)], "slice of the input"),
    (AdaptiveAvgPool2d((2, 1, 1)), [(3, 4, 4)], "same C"),
    (Delay((3,), steps=2), [(4,)], "differs from its input"),
    (Output((3,)), [(4,)], "3 elements"),
])
def test_each_node_type_check_fires(node, inputs, words):
    message = _single(node, *inputs)
    assert message is not None and words in message, message


@pytest.mark.parametrize("node, inputs", [
    (BatchNorm((3, 4), **bn), [(3, 4)]),
    (Add((3,)), [(3,), (3,)]),
    (MatMul((5, 2, 4)), [(5, 2, 3), (3, 4)]),
    (MatMul((2, 3), mode="hadamard"), [(2, 3), (1, 3)]),
    (Concat((2, 6), axis=1), [(2, 3), (2, 3)]),
    (Slice((2,), axis=0, start=1, stop=3), [(4,)]),
    (Reduce((2, 1), axis=1, keepdim=True), [(2, 3)]),
    (Transpose((3, 2), perm=(1, 0)), [(2, 3)]),
    (AdaptiveAvgPool2d((3, 7, 7)), [(3, 4, 4)]),
    (Delay((4,), steps=np.array([1, 2, 3, 1])), [(4,)]),
])
def test_valid_nodes_pass(node, inputs):
    assert _single(node, *inputs) is None


def test_delay_steps_checked_when_changed_after_construction():
    node = Delay((2,), steps=1)
    node.steps = 0
    assert "steps must be ≥ 1" in _single(node, (2,))


def _corrupt_mask(graph: IRGraph) -> PassStats:
    conv = graph.node("conv")
    conv.mask = np.ones(conv.weight.shape[:2], bool)
    return PassStats("corrupt_mask")


def test_a_broken_pass_is_named(monkeypatch):
    monkeypatch.setitem(PASSES, "corrupt_mask", Pass("corrupt_mask", _corrupt_mask))
    with pytest.raises(IRVerificationError, match=r"after pass corrupt_mask: IR node 'conv' \(from net.conv\): "
                                                  r"mask has shape"):
        run_passes(_conv_graph(), ["corrupt_mask"], verify=True)
    run_passes(_conv_graph(), ["corrupt_mask"], verify=False)   # off: nothing looks


def test_a_broken_frontend_graph_is_caught_before_the_passes():
    g = _conv_graph()
    g.node("fc").shape = (6,)
    with pytest.raises(IRVerificationError, match="after the frontend"):
        run_passes(g, [], verify=True)


def test_verification_follows_the_environment(monkeypatch):
    monkeypatch.setenv(manager.VERIFY_ENV, "0")
    assert not manager.verify_by_default()
    monkeypatch.setitem(PASSES, "corrupt_mask", Pass("corrupt_mask", _corrupt_mask))
    run_passes(_conv_graph(), ["corrupt_mask"])
    monkeypatch.setenv(manager.VERIFY_ENV, "1")
    with pytest.raises(IRVerificationError):
        run_passes(_conv_graph(), ["corrupt_mask"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_test_models_verify_clean(case):
    factory, shape, _ = CASES[case]
    graph = trace_model(factory(), shape).graph
    graph.verify()
    run_passes(graph, verify=True)


@pytest.mark.parametrize("factory, shape", [(spikformer_net, (1, 8, 8)), (cifar_ticket, (3, 32, 32))])
def test_larger_test_models_verify_clean(factory, shape):
    run_passes(trace_model(factory(), shape).graph, verify=True)


@pytest.mark.parametrize("name, arch", [
    ("digits_scnn", None), ("digits_scnn_ticket", None), ("digits_scnn_binw_ticket", None),
    ("digits_spikformer_convpep", "models.digits_arch:digits_spikformer"),
])
def test_shipped_models_verify_clean(name, arch):
    from snncompile import stages
    from snncompile.api import trace

    traced = trace(ROOT / "models" / f"{name}.pt", arch=arch, keep_module=False)
    traced.graph.verify()
    stages.optimize(traced.graph, None, copy=False, verify=True)

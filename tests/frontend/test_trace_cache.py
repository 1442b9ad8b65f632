"""Traces remembered by architecture (``snncompile.frontend.trace_cache``): a second ticket of
one network gets the first one's trace, bound to its own weights, and compiles to the IR a
trace from scratch gives; anything a trace depends on beyond the architecture makes a new one."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from nets import cifar_ticket, randomize_bn, snntorch_soft_reset_net
from spikingjelly.activation_based import neuron
from torch import fx, nn
from torch.nn.utils import prune

from snncompile.frontend import trace as trace_mod
from snncompile.frontend import trace_cache, trace_model
from snncompile.ir import Conv2d, Neuron
from tests.energy.zoo import SpikingResNet18


@pytest.fixture(autouse=True)
def empty_cache():
    trace_cache.clear()
    yield
    trace_cache.clear()


@pytest.fixture
def traces(monkeypatch) -> list[int]:
    """Counts the symbolic traces made (a reused trace makes none)."""
    made: list[int] = []
    real = trace_mod.ShapeTracer.trace

    def counting(self, *args, **kwargs):
        made.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(trace_mod.ShapeTracer, "trace", counting)
    return made


def _from_scratch(model: nn.Module, shape: tuple[int, ...]):
    trace_cache.clear()
    try:
        return trace_model(model, shape).graph
    finally:
        trace_cache.clear()


def assert_same_ir(a, b) -> None:
    """Same nodes, edges, types and parameter values (arrays element for element)."""
    assert [(n, a.inputs(n), type(a.node(n))) for n in a.topo()] == \
        [(n, b.inputs(n), type(b.node(n))) for n in b.topo()]
    for name in a.topo():
        pa, pb = a.node(name).params(), b.node(name).params()
        assert pa.keys() == pb.keys(), name
        for k in pa:
            if isinstance(pa[k], np.ndarray):
                assert np.array_equal(pa[k], pb[k], equal_nan=pa[k].dtype.kind == "f"), (name, k)
            else:
                assert pa[k] == pb[k], (name, k)


def test_a_second_ticket_reuses_the_trace_and_compiles_its_own_weights(traces):
    first = trace_model(cifar_ticket(seed=0), (3, 32, 32)).graph
    made = len(traces)
    second = trace_model(cifar_ticket(seed=1), (3, 32, 32)).graph
    assert len(traces) == made   # no new symbolic trace
    assert_same_ir(second, _from_scratch(cifar_ticket(seed=1), (3, 32, 32)))
    conv = first.of_type(Conv2d)[1]
    assert not np.array_equal(first.node(conv).weight, second.node(conv).weight)


def test_resnet18_tickets_at_cifar_size():
    trace_model(SpikingResNet18(imagenet=False).eval(), (3, 32, 32))
    torch.manual_seed(5)
    ticket = randomize_bn(SpikingResNet18(imagenet=False), seed=5)
    assert_same_ir(trace_model(ticket, (3, 32, 32)).graph, _from_scratch(ticket, (3, 32, 32)))


def _pruned(seed: int, amount: float = 0.9) -> nn.Module:
    model = cifar_ticket(sparsity=0.0, seed=seed)
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.random_unstructured(m, "weight", amount=amount)
    return model


def test_torch_pruned_tickets_read_their_own_masks(traces):
    trace_model(_pruned(0), (3, 32, 32))
    made = len(traces)
    ticket = _pruned(1)
    got = trace_model(ticket, (3, 32, 32)).graph
    assert len(traces) == made
    assert_same_ir(got, _from_scratch(_pruned(1), (3, 32, 32)))
    conv = got.node(got.of_type(Conv2d)[1])
    assert np.array_equal(conv.weight != 0, ticket[4].weight_mask.numpy().astype(bool) & (conv.weight != 0))
    # another pruning amount is another hook: a new trace (the amount is part of the key)
    trace_model(_pruned(2, amount=0.5), (3, 32, 32))
    assert len(traces) > made


def test_another_threshold_or_shape_is_another_trace(traces):
    trace_model(cifar_ticket(seed=0), (3, 32, 32))
    made = len(traces)
    other = cifar_ticket(seed=0)
    other[2].v_threshold = 0.5
    got = trace_model(other, (3, 32, 32)).graph
    assert len(traces) > made
    assert got.node(got.of_type(Neuron)[0]).dynamics.v_threshold == 0.5

    def fully_convolutional() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), neuron.IFNode(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, 4), neuron.IFNode())

    trace_model(fully_convolutional(), (3, 32, 32))
    made = len(traces)
    assert trace_model(fully_convolutional(), (3, 64, 64)).graph.node("input").shape == (3, 64, 64)
    assert len(traces) > made


def test_snntorch_surrogate_closures_are_keyed_by_their_values(traces):
    trace_model(snntorch_soft_reset_net(beta=0.5), (8,))
    made = len(traces)
    got = trace_model(snntorch_soft_reset_net(beta=0.5), (8,)).graph
    assert len(traces) == made
    assert_same_ir(got, _from_scratch(snntorch_soft_reset_net(beta=0.5), (8,)))
    # β is a buffer (read from each model, as weights are); the surrogate is a closure over its slope
    assert_same_ir(trace_model(snntorch_soft_reset_net(beta=0.25), (8,)).graph,
                   _from_scratch(snntorch_soft_reset_net(beta=0.25), (8,)))
    from snntorch import surrogate

    key = trace_cache._value_key
    assert key(surrogate.atan(alpha=2.0), 0) == key(surrogate.atan(alpha=2.0), 0)
    assert key(surrogate.atan(alpha=2.0), 0) != key(surrogate.atan(alpha=3.0), 0)


class _Gain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)
        self.sn = neuron.IFNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(self.fc(x))


def _assert_traced_again(traces, make, change) -> None:
    """After ``change()``, a model from ``make`` is traced afresh: its IR is a trace from
    scratch, not the one remembered from before the change."""
    torch.manual_seed(0)
    before = trace_model(make(), (16,)).graph
    made = len(traces)
    change()
    torch.manual_seed(0)
    model = make()
    got = trace_model(model, (16,)).graph
    assert len(traces) > made
    assert_same_ir(got, _from_scratch(model, (16,)))
    with pytest.raises(AssertionError):
        assert_same_ir(got, before)


def test_a_class_patched_between_traces_is_traced_again(traces, monkeypatch):
    _assert_traced_again(traces, _Gain,
                         lambda: monkeypatch.setattr(_Gain, "forward", lambda self, x: self.sn(self.fc(x * 2.0))))


def _gain(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0


class _Helped(_Gain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(self.fc(_gain(x)))


def test_a_helper_redefined_between_traces_is_traced_again(traces, monkeypatch):
    """A notebook cell run again: the class is the same object, the function it calls is new."""
    import sys

    _assert_traced_again(traces, _Helped,
                         lambda: monkeypatch.setattr(sys.modules[__name__], "_gain", lambda x: x * 3.0))


def test_an_attribute_the_key_cannot_hold_is_never_remembered(traces):
    model = _Gain()
    model.pick = functools.partial(max, 1)   # state outside any __dict__
    assert trace_cache.architecture(model) is None
    trace_model(model, (16,))
    made = len(traces)
    trace_model(model, (16,))
    assert len(traces) > made


def test_a_trace_holding_a_tensor_made_in_forward_is_not_remembered():
    graph = fx.Graph()
    x = graph.placeholder("x")
    c = graph.get_attr("_tensor_constant0")
    graph.output(graph.call_function(torch.add, (x, c)))
    arch = trace_cache.architecture(_Gain())
    trace_cache.store(arch, ("how",), graph)
    assert trace_cache.lookup(arch, ("how",)) is None
    plain = fx.Graph()
    plain.output(plain.placeholder("x"))
    trace_cache.store(arch, ("how",), plain)
    assert trace_cache.lookup(arch, ("how",)) is not None


class _Stack(nn.Module):
    """Linear layers applied in the order of a ModuleList that may hold one layer twice."""

    def __init__(self, order: list[int]) -> None:
        super().__init__()
        torch.manual_seed(0)
        layers = [nn.Linear(16, 16), nn.Linear(16, 16)]
        self.layers = nn.ModuleList(layers[i] for i in order)
        self.sn = neuron.IFNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fc in self.layers:
            x = fc(x)
        return self.sn(x)


def test_which_module_is_shared_is_part_of_the_architecture():
    # [a, b, a] and [a, b, b]: the same paths, classes and shapes once repeats are skipped
    trace_model(_Stack([0, 1, 0]), (16,))
    got = trace_model(_Stack([0, 1, 1]), (16,)).graph
    assert_same_ir(got, _from_scratch(_Stack([0, 1, 1]), (16,)))


class _Matmul(nn.Module):
    def __init__(self, w: nn.Parameter) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.w)


class _Tied(nn.Module):
    def __init__(self, tied: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        w = nn.Parameter(torch.randn(16, 16))
        self.a, self.b = _Matmul(w), _Matmul(w if tied else nn.Parameter(torch.randn(16, 16)))
        self.sn = neuron.IFNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(self.b(self.a(x)))


def test_tied_weights_are_part_of_the_architecture():
    # fx reads a tied weight under its first name (a.w): an untied ticket must read b.w
    trace_model(_Tied(tied=True), (16,))
    got = trace_model(_Tied(tied=False), (16,)).graph
    assert_same_ir(got, _from_scratch(_Tied(tied=False), (16,)))


class _Scaled(_Gain):
    scale = 2.0   # a class attribute: read as self.scale, changed on the class

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(self.fc(x * self.scale))


def test_a_class_attribute_changed_between_traces_is_traced_again(traces, monkeypatch):
    torch.manual_seed(0)
    trace_model(_Scaled(), (16,))
    monkeypatch.setattr(_Scaled, "scale", 3.0)
    torch.manual_seed(0)
    model = _Scaled()
    assert_same_ir(trace_model(model, (16,)).graph, _from_scratch(model, (16,)))


class _Options:   # argparse-style options: a class used as a namespace
    residual = True


class _Configured(nn.Module):
    def __init__(self, cfg: type) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cfg, self.fc, self.sn = cfg, nn.Linear(16, 16), neuron.IFNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return self.sn(y + x if self.cfg.residual else y)


def test_a_config_class_changed_between_traces_is_traced_again(monkeypatch):
    trace_model(_Configured(_Options), (16,))
    monkeypatch.setattr(_Options, "residual", False)
    got = trace_model(_Configured(_Options), (16,)).graph
    assert_same_ir(got, _from_scratch(_Configured(_Options), (16,)))


def _make_gain(k: float):
    def gain(x: torch.Tensor) -> torch.Tensor:
        return x * k
    return gain


_gain_made = _make_gain(2.0)


def _gain_default(x: torch.Tensor, k: float = 2.0) -> torch.Tensor:
    return x * k


_SCALE = 2.0


def _scaler():
    return lambda x: x * _SCALE   # reads the module-level value when called


class _Closured(_Gain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(self.fc(_gain_made(x) + _gain_default(x)))


class _Prescaled(_Gain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(self.fc(self.pre(x)))


def _prescaled() -> nn.Module:
    torch.manual_seed(0)
    model = _Prescaled()
    model.pre = _scaler()
    return model


@pytest.mark.parametrize("change", ["closure", "default", "global"])
def test_what_a_function_reads_is_part_of_its_key(change, monkeypatch):
    """A helper made again by its factory or redefined with another default (a notebook cell
    run again), a function attribute whose module-level value changed: another program."""
    import sys

    here = sys.modules[__name__]
    make = _prescaled if change == "global" else lambda: (torch.manual_seed(0), _Closured())[1]
    trace_model(make(), (16,))
    if change == "closure":
        monkeypatch.setattr(here, "_gain_made", _make_gain(3.0))
    elif change == "default":
        monkeypatch.setattr(_gain_default, "__defaults__", (3.0,))
    else:
        monkeypatch.setattr(here, "_SCALE", 3.0)
    got = trace_model(make(), (16,)).graph
    assert_same_ir(got, _from_scratch(make(), (16,)))


_config = __import__("types").ModuleType("_user_config")   # the user's config.py: import config
_config.RESIDUAL = True


class _ModuleConfigured(_Gain):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return self.sn(y + x if _config.RESIDUAL else y)


def test_a_value_of_the_users_config_module_is_part_of_the_key(monkeypatch):
    torch.manual_seed(0)
    trace_model(_ModuleConfigured(), (16,))
    monkeypatch.setattr(_config, "RESIDUAL", False)
    torch.manual_seed(0)
    model = _ModuleConfigured()
    assert_same_ir(trace_model(model, (16,)).graph, _from_scratch(model, (16,)))


class _Looped(nn.Module):
    """forward() reads a buffer as a Python value: its value is baked into the trace."""

    def __init__(self, repeats: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.sn = nn.Linear(16, 16), neuron.IFNode()
        self.register_buffer("repeats", torch.tensor(repeats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(int(self.repeats)):
            x = self.fc(x)
        return self.sn(x * self.repeats.item())


def test_a_trace_that_read_a_buffers_value_is_not_remembered(traces):
    trace_model(_Looped(1), (16,))
    made = len(traces)
    got = trace_model(_Looped(2), (16,)).graph   # the same shapes: only the value differs
    assert len(traces) > made
    assert_same_ir(got, _from_scratch(_Looped(2), (16,)))
    assert "item" not in torch.Tensor.__dict__   # the readers are torch's own again
    assert torch.tensor(2.0).item() == 2.0 and int(torch.tensor(3)) == 3 and bool(torch.tensor(True))


def test_value_watches_of_overlapping_traces_leave_torch_as_it_was():
    """Two traces on two threads end in either order: torch.Tensor gets its own methods back
    (a watch that restored what it found would leave the other's patch in place for good)."""
    own = {name: torch.Tensor.__dict__.get(name) for name in trace_cache._READERS}
    first, second = trace_cache.watch_values(), trace_cache.watch_values()
    a = first.__enter__()
    b = second.__enter__()
    int(torch.tensor(3))                  # a concrete value read: both traces saw it
    first.__exit__(None, None, None)      # the first trace ends before the second
    torch.ones(2).tolist()
    second.__exit__(None, None, None)
    assert a == ["__int__"] and b == ["__int__", "tolist"]
    assert {name: torch.Tensor.__dict__.get(name) for name in trace_cache._READERS} == own
    assert torch.tensor(2.5).item() == 2.5 and not trace_cache._WATCHERS


def test_the_cache_can_be_turned_off(traces, monkeypatch):
    monkeypatch.setenv("SNNCOMPILE_TRACE_CACHE", "0")
    trace_model(cifar_ticket(seed=0), (3, 32, 32))
    made = len(traces)
    trace_model(cifar_ticket(seed=1), (3, 32, 32))
    assert len(traces) > made

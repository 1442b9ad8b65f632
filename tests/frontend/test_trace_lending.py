"""A remembered trace lent to tickets instead of copied (``trace_cache.lookup``/``give_back``):
only while no ticket's processing changes it, one ticket at a time, and handed back without
what the ticket left on it; every ticket still compiles to the IR a trace from scratch gives."""

from __future__ import annotations

import operator

import pytest
import torch
from nets import cifar_ticket
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.frontend import trace_cache, trace_model
from snncompile.frontend.ops import inline_neurons
from tests.frontend.test_trace_cache import assert_same_ir

SHAPE = (3, 32, 32)


@pytest.fixture(autouse=True)
def empty_cache():
    trace_cache.clear()
    yield
    trace_cache.clear()


def _uncached(model: nn.Module, shape: tuple[int, ...]):
    """The IR of a trace from scratch, the cache left as it is."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SNNCOMPILE_TRACE_CACHE", "0")
        return trace_model(model, shape).graph


@pytest.fixture
def lent(monkeypatch) -> list:
    """The graphs ``lookup`` hands out, in order."""
    out: list = []
    real = trace_cache.lookup

    def spy(*args, **kwargs):
        graph = real(*args, **kwargs)
        out.append(graph)
        return graph

    monkeypatch.setattr(trace_cache, "lookup", spy)
    return out


def test_a_trace_no_ticket_changes_is_lent_to_each_ticket_without_a_copy(lent):
    trace_model(cifar_ticket(seed=0), SHAPE)   # the fresh trace: processing it changes nothing
    for seed in (1, 2, 3):
        ticket = cifar_ticket(seed=seed)
        assert_same_ir(trace_model(ticket, SHAPE).graph, _uncached(ticket, SHAPE))
    handed = [g for g in lent if g is not None]   # (None: the uncached traces')
    assert len(handed) == 3 and all(g is handed[0] for g in handed)
    # handed back without the last ticket's GraphModule (which holds its model's modules)
    assert handed[0].owning_module is None


def test_a_lent_trace_is_not_lent_twice_at_once():
    trace_model(cifar_ticket(seed=0), SHAPE)
    trace_model(cifar_ticket(seed=1), SHAPE)
    (arch_key, entry), = trace_cache._SEEN.items()
    (how, _), = entry.traces.items()
    a = trace_cache.lookup(arch_key, how)
    b = trace_cache.lookup(arch_key, how)   # another thread's ticket while the first holds it
    assert a is not b
    trace_cache.give_back(a)
    trace_cache.give_back(b)
    assert trace_cache.lookup(arch_key, how) is a


def test_a_lent_trace_a_ticket_changed_is_not_lent_again(lent, monkeypatch):
    """A rewrite on one ticket only (as a value-dependent one would be): the next ticket gets
    a copy of the trace as it was made, and every ticket compiles what it should."""
    trace_model(cifar_ticket(seed=0), SHAPE)
    trace_model(cifar_ticket(seed=1), SHAPE)
    real = inline_neurons.rewrite

    def rewrite_once(gm):   # x → x·1 before every use of the input: the same values, one more node
        x = next(n for n in gm.graph.nodes if n.op == "placeholder")
        with gm.graph.inserting_after(x):
            y = gm.graph.call_function(operator.mul, (x, 1.0))
        x.replace_all_uses_with(y, delete_user_cb=lambda u: u is not y)
        gm.recompile()
        monkeypatch.setattr(inline_neurons, "rewrite", real)
        return real(gm)

    monkeypatch.setattr(inline_neurons, "rewrite", rewrite_once)
    changed = trace_model(cifar_ticket(seed=2), SHAPE).graph
    assert len(changed) == len(_uncached(cifar_ticket(seed=2), SHAPE)) + 1   # the x·1 step
    for seed in (3, 4):
        ticket = cifar_ticket(seed=seed)
        assert_same_ir(trace_model(ticket, SHAPE).graph, _uncached(ticket, SHAPE))
    handed = [g for g in lent if g is not None]   # tickets 1-4 (None: the uncached traces')
    assert handed[0] is handed[1]   # lent while no ticket changed it
    assert handed[2] is not handed[1] and handed[3] is not handed[2]   # copies since


class _StepLoop(nn.Module):
    """Reads its [T, B, N] input step by step (x[t]): traced as "loop-in", a rewrite of the trace."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(16, 8)
        self.sn = neuron.IFNode()

    def forward(self, x):
        return torch.stack([self.sn(self.fc(x[t])) for t in range(x.size(0))])


def test_a_trace_every_ticket_rewrites_is_copied_for_each(lent):
    trace_model(_StepLoop(0), (16,))
    for seed in (1, 2):
        ticket = _StepLoop(seed)
        result = trace_model(ticket, (16,))
        assert result.step_mode == "loop-in"
        assert_same_ir(result.graph, _uncached(_StepLoop(seed), (16,)))
    # per ticket: the "s" attempt (refused: x[t] would index the batch; lent, left unchanged),
    # then "loop-in" (rewritten to read one step: a copy for each ticket)
    handed = [g for g in lent if g is not None]
    assert len(handed) == 4 and handed[0] is handed[2] and handed[1] is not handed[3]


class _NamedLikeAGraphModule(_StepLoop):
    """Top-level names a GraphModule has itself: an unused buffer `graph`, an unused child
    `code`; forward() reads one step."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.register_buffer("graph", torch.zeros(1))
        self.code = nn.Identity()

    def forward(self, x):
        return self.sn(self.fc(x))


def test_a_model_with_a_graphmodules_own_names_traces_and_its_tickets_too():
    for seed in (0, 1, 2):
        ticket = _NamedLikeAGraphModule(seed)
        assert_same_ir(trace_model(ticket, (16,)).graph, _uncached(_NamedLikeAGraphModule(seed), (16,)))

"""The per-layer equivalence guard and constant folding of weights computed in forward
(issue #23 items 1–3): a capture that differs from what forward() computes is an error naming
the layer, never a compiled network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import trace as trace_mod
from snncompile.frontend import trace_model
from snncompile.frontend.fold import integer_bits
from snncompile.frontend.ops import functional, synapses
from snncompile.ir import Conv2d, Linear
from snncompile.sim import run_torch, simulate


def _ws_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(layer.WSConv2d(3, 16, 3, padding=1), neuron.IFNode(), nn.Flatten(),
                         nn.Linear(16 * 8 * 8, 10), neuron.IFNode())


_IS_LEAF = trace_mod.is_leaf


def _old_is_leaf(m: nn.Module) -> bool:
    """The leaf rule before the fix: every spikingjelly wrapper of a torch layer, by class."""
    if type(m).__module__.startswith("spikingjelly.activation_based.layer") and isinstance(m, nn.Conv2d):
        return True
    return _IS_LEAF(m)


def test_wsconv2d_is_traced_through_with_its_standardised_weight():
    model = _ws_net()
    graph = trace_model(model, (3, 8, 8)).graph
    conv = next(n for _, n in graph.items() if isinstance(n, Conv2d))
    np.testing.assert_allclose(conv.weight, model[0].get_weight().detach().numpy(), rtol=1e-6)
    assert not np.allclose(conv.weight, model[0].weight.detach().numpy(), atol=1e-3)


def test_guard_refuses_wsconv2d_compiled_with_its_raw_weight(monkeypatch):
    monkeypatch.setattr(trace_mod, "is_leaf", _old_is_leaf)
    with pytest.raises(SnnCompileError, match=r"traced layer `0` does not compute what the model computes.*"
                                              r"WSConv2d.*largest difference \d") as e:
        trace_model(_ws_net(), (3, 8, 8))
    assert e.value.exit_code == EXIT_UNSUPPORTED and "nothing was compiled" in e.value.message


def test_guard_catches_a_wrong_weight_capture_of_a_layer(monkeypatch):
    right = synapses.synapse_weights

    def off_by_one_percent(cx, m, path):
        w, mask = right(cx, m, path)
        return (w * 1.01 if path == "3" else w), mask

    monkeypatch.setattr(synapses, "synapse_weights", off_by_one_percent)
    with pytest.raises(SnnCompileError, match=r"`3` does not compute.*\(Linear\).*largest difference"):
        trace_model(_ws_net(), (3, 8, 8))


def test_guard_catches_a_mask_capture_that_drops_nonzero_weights_of_a_stock_layer(monkeypatch):
    """The stock-layer shortcut (fields equal) must not hide a mask that cuts live weights."""
    right = synapses.synapse_weights

    def half_masked(cx, m, path):
        w, mask = right(cx, m, path)
        if path != "3":
            return w, mask
        cut = np.ones(w.shape, dtype=bool)
        cut[:, ::2] = False
        return w, cut                       # the weights stay, but half of them are masked off

    monkeypatch.setattr(synapses, "synapse_weights", half_masked)
    with pytest.raises(SnnCompileError, match=r"`3` does not compute.*\(Linear\).*largest difference"):
        trace_model(_ws_net(), (3, 8, 8))


def test_masks_on_a_multi_step_layer_are_probed_with_a_time_axis():
    """--masks on a multi-step spikingjelly conv (the shipped ticket's layers): the guard runs
    the masked layer on a [T, N, ...] probe (it failed with "expected x with shape [T, N, C, H, W]")."""
    torch.manual_seed(0)
    model = nn.Sequential(layer.Conv2d(2, 4, 3, padding=1, step_mode="m"), neuron.IFNode(step_mode="m"))
    mask = (torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(1)) > 0.5).numpy()
    g = trace_model(model, (2, 6, 6), masks={"0": mask}).graph
    (conv,) = g.of_type(Conv2d)
    np.testing.assert_array_equal(g.node(conv).mask, mask)


class _MaskedConv(nn.Conv2d):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.mask_value = nn.Parameter(torch.randn_like(self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, torch.where(self.mask_value > 0, self.weight, 0), self.bias, self.stride, self.padding)


def test_guard_catches_a_wrong_capture_of_a_folded_functional_weight(monkeypatch):
    torch.manual_seed(1)
    model = nn.Sequential(_MaskedConv(2, 8, 3, padding=1), neuron.IFNode())
    trace_model(model, (2, 6, 6))   # the right capture passes
    right = functional._weights

    def unmasked(cx, n, args, path):   # the stored weight, as if the mask were not applied
        _, mask = right(cx, n, args, path)
        return model[0].weight.detach().double().numpy(), mask

    monkeypatch.setattr(functional, "_weights", unmasked)
    with pytest.raises(SnnCompileError, match=r"`0` does not compute.*target=torch.conv2d.*largest difference"):
        trace_model(model, (2, 6, 6))


class _ProjectNet(nn.Module):
    """x @ W with W = w * mask (a parameter times a buffer), then a neuron."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(12, 6))
        self.register_buffer("mask", (torch.rand(12, 6) < 0.5).float())
        self.sn = neuron.IFNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(x @ (self.w * self.mask))


def test_matmul_by_a_constant_matrix_is_a_linear_layer_spike_for_spike():
    torch.manual_seed(2)
    model = _ProjectNet().double()
    tr = trace_model(model, (12,))
    lin = next(n for _, n in tr.graph.items() if isinstance(n, Linear))
    np.testing.assert_array_equal(lin.weight, (model.w * model.mask).detach().numpy().T)
    x = np.random.default_rng(0).random((5, 3, 12))
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    ref = simulate(tr.graph, x)
    for n, p in tr.neuron_sources.items():
        np.testing.assert_array_equal(tor.spikes[p], ref.spikes[n])
    assert any(s.mean() > 0 for s in ref.spikes.values())


def test_parametrized_weight_is_read_as_forward_computes_it():
    torch.manual_seed(3)
    conv = torch.nn.utils.parametrizations.weight_norm(nn.Conv2d(2, 4, 3))
    with torch.no_grad():
        conv.parametrizations.weight.original0.mul_(3.0)
    graph = trace_model(nn.Sequential(conv, neuron.IFNode()), (2, 5, 5)).graph
    node = next(n for _, n in graph.items() if isinstance(n, Conv2d))
    np.testing.assert_allclose(node.weight, conv.weight.detach().numpy(), rtol=1e-6)


def test_integer_bits_recognises_fake_quantisation_only():
    w = torch.randn(8, 27)
    scale = w.abs().max() / 127
    q = (torch.clamp(torch.round(w / scale), -128, 127) * scale).numpy().astype(np.float64)
    assert integer_bits(q) == 8
    assert integer_bits(w.numpy().astype(np.float64)) is None
    assert integer_bits(np.sign(q) * 0.3) is None   # binary: the binarize pass's business


def _square_net() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(16, 16), neuron.IFNode(), nn.Linear(16, 16), neuron.IFNode())


def test_guard_trusts_only_the_very_view_of_the_layers_weight(monkeypatch):
    """A capture sharing the layer's memory is skipped only when it is the same view (same
    start, shape, strides, dtype): a transposed view of a square weight is compared, and caught."""
    from snncompile.frontend.guard import _same_view

    w = _square_net()[0].weight.detach()
    a = synapses.as_numpy(w)
    assert _same_view(a, w) and not _same_view(a.T, w) and not _same_view(a[1:], w[:-1])
    assert not _same_view(a.astype(np.float64), w)
    right = synapses.synapse_weights

    def transposed(cx, m, path):
        weight, mask = right(cx, m, path)
        return (weight.T if path == "2" else weight), mask

    monkeypatch.setattr(synapses, "synapse_weights", transposed)
    with pytest.raises(SnnCompileError, match=r"`2` does not compute.*\(Linear\).*largest difference"):
        trace_model(_square_net(), (16,))


def test_meta_shortcuts_give_what_the_operation_gives():
    """The tracer makes (not computes) the meta output of a stock neuron and of x ± y, x · y, x / y
    on equal float shapes (in any dense layouts: torch's output layout); anything else
    (broadcasting, other dtypes, keyword arguments) is run. Layouts in full: test_meta_shapes."""
    from snncompile.frontend.shape_rules import same_operands

    x, y = torch.empty(2, 3, 4, device="meta"), torch.empty(2, 3, 4, device="meta")
    strided = y.transpose(0, 1).contiguous().transpose(0, 1)
    for op in (torch.add, torch.mul, torch.sub, torch.div):
        for a, b in ((x, y), (x, strided), (strided, x)):
            out = same_operands(op, (a, b), {})
            ref = op(a, b)
            assert (out.shape, out.dtype, out.stride()) == (ref.shape, ref.dtype, ref.stride())
    assert same_operands(torch.add, (x, torch.empty(3, 4, device="meta")), {}) is None
    assert same_operands(torch.add, (x, y.double()), {}) is None
    assert same_operands(torch.add, (x.long(), y.long()), {}) is None
    assert same_operands(torch.add, (x, y), {"alpha": 2}) is None

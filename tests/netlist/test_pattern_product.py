"""A Linear's 0/1 pattern composed with a chain that joins pairs by several paths (VGG's 7×7
adaptive pooling of a 1×1 map, overlapping pools) is multiplied a block of mask rows at a
time instead of unrolled: the same matrix, entry for entry, and the same synapse counts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
from snncompile.ir import AdaptiveAvgPool2d, Linear, Pool2d, Reshape
from snncompile.netlist import netlist
from snncompile.netlist.netlist import Chain


def _linear(rng: np.random.Generator, out: int, inp: int, keep: float) -> Linear:
    w = rng.standard_normal((out, inp)).astype(np.float32)
    mask = rng.random((out, inp)) < keep if keep < 1 else None
    return Linear((out,), weight=w, mask=mask)


def _chains(rng: np.random.Generator) -> list[Chain]:
    up = AdaptiveAvgPool2d((8, 7, 7))   # 1×1 → 7×7: each input repeated 49 times
    over = Pool2d((8, 3, 3), mode="max", kernel=(3, 3), stride=(2, 2), padding=(1, 1))   # overlapping windows
    return [Chain([up, Reshape((8 * 49,)), _linear(rng, 300, 8 * 49, 1.0)], (8, 1, 1)),
            Chain([up, Reshape((8 * 49,)), _linear(rng, 300, 8 * 49, 0.05)], (8, 1, 1)),
            Chain([over, Reshape((72,)), _linear(rng, 513, 72, 0.3)], (8, 6, 6)),
            Chain([over, Reshape((72,)), _linear(rng, 40, 72, 0.5), _linear(rng, 7, 40, 0.5)], (8, 6, 6))]


def test_pattern_product_equals_the_unrolled_product(monkeypatch):
    for chain in _chains(np.random.default_rng(0)):
        fast = chain.matrix("pattern")
        with monkeypatch.context() as m:
            m.setattr(netlist, "_DENSE_PRODUCT", 0)   # unroll every layer, as before
            slow = chain.matrix("pattern")
        assert fast.shape == slow.shape and fast.dtype == slow.dtype
        assert (fast != slow).nnz == 0 and fast.nnz == sp.csr_matrix(slow.toarray()).nnz
        assert fast.max() > 1   # several paths join some pairs: the case the product is for


def test_no_pattern_product_for_token_layers_or_large_products(monkeypatch):
    rng = np.random.default_rng(1)
    m = sp.identity(12, format="csr")
    assert netlist.pattern_product(_linear(rng, 5, 4, 1.0), (3, 4), sp.identity(12, format="csr")) is None
    monkeypatch.setattr(netlist, "_DENSE_PRODUCT", 5 * 12 - 1)
    assert netlist.pattern_product(_linear(rng, 5, 12, 1.0), (12,), m) is None


def _vgg_like() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 128, 3, padding=1), nn.BatchNorm2d(128), neuron.IFNode(), nn.MaxPool2d(2),
                         nn.Conv2d(128, 128, 3, padding=1), neuron.IFNode(), nn.MaxPool2d(8),
                         nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(128 * 49, 1024), neuron.IFNode(),
                         nn.Linear(1024, 10), neuron.IFNode()).eval()


@pytest.mark.parametrize("prune", [False, True])
def test_vgg_classifier_after_adaptive_pooling_counts_as_unrolled(monkeypatch, prune):
    """spikingjelly's VGGs at CIFAR size: 16 px maps pooled to 1×1, then repeated 7×7 into the
    classifier (an estimate took 12.6 s on spiking_vgg11_bn unrolling its 25088 × 4096 mask)."""
    model = _vgg_like()
    if prune:
        with torch.no_grad():
            fc = model[9].weight
            fc.mul_((torch.rand_like(fc) < 0.1).float())
    graph = trace_model(model, (3, 32, 32)).graph
    used = []
    product = netlist.pattern_product
    with monkeypatch.context() as m:
        m.setattr(netlist, "pattern_product", lambda *a: used.append(product(*a)) or used[-1])
        fast = estimate_energy(graph, steps=4, firing_rates={"*": 0.2})
    assert any(u is not None for u in used)
    monkeypatch.setattr(netlist, "_DENSE_PRODUCT", 0)
    slow = estimate_energy(trace_model(model, (3, 32, 32)).graph, steps=4, firing_rates={"*": 0.2})
    assert fast.to_dict() == slow.to_dict()

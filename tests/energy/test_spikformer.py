"""Spikformer parameter counts (forward-pass parameters only) and first-layer MACs."""

import pytest
import torch
from energy.spikformer import CONFIGS, first_layer_macs
from spikingjelly.activation_based import functional, neuron
from torch import nn

from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_count_and_first_layer_macs(name, capsys):
    build, side, params = CONFIGS[name]
    model = build()
    assert sum(p.numel() for p in model.parameters()) == params
    # the first conv+BN+LIF stage traces: our counter agrees with the shape formula
    conv = model.patch_embed.first_conv
    stage = nn.Sequential(conv, model.patch_embed.stages[0]["conv_bn"][1], neuron.LIFNode(tau=2.0)).eval()
    g = trace_model(stage, (3, side, side)).graph
    macs = estimate_energy(g, steps=4).variants.ann.macs
    assert macs == first_layer_macs(model, side) == conv.out_channels * side * side * 3 * 9
    with capsys.disabled():
        print(f"\n{name}: {params:,} parameters; first conv {conv.in_channels}→{conv.out_channels} "
              f"at {side} px: {macs:,} MACs per image per step "
              f"(E_MAC·MACs = {macs * 4.6 / 1e6:.3f} µJ at 45 nm)")


@pytest.mark.parametrize("name", ["spikformer-4-384-cifar", "spikformer-8-384-imagenet"])
def test_every_parameter_is_used_by_the_forward_pass(name):
    build, _, _ = CONFIGS[name]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.rand(2, 1, 3, 32, 32)        # 32 px suffices for the ImageNet stem too (2×2 tokens)
    model(x).sum().backward()               # surrogate gradients reach every used parameter
    functional.reset_net(model)
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_spikformer_cifar_traces_and_the_estimator_counts_it():
    """Spikformer-4-384 (CIFAR) goes through the frontend, SSA included: the estimator gives
    its first-layer MACs and per-layer dense FLOPs (analytic mode, no forward pass)."""
    from snncompile.ir import MatMul

    build, side, _ = CONFIGS["spikformer-4-384-cifar"]
    model = build().eval()
    graph = trace_model(model, (3, side, side)).graph
    assert len(graph.of_type(MatMul)) == 2 * 4                 # Q·Kᵀ and ·V in each of 4 blocks
    e = estimate_energy(graph, steps=4, firing_rates={"*": 0.1}).to_dict()
    layers = {row["name"]: row for row in e["layers"]}
    first = e["mac_layers"][0]
    assert layers[first]["macs"] == 3 * 48 * 9 * 32 * 32 == 1_327_104
    products = [row for row in e["layers"] if row["op"] == "matmul"]
    assert all(row["macs"] == 8 * 64 * 64 * 48 for row in products)   # 8 heads, 64 tokens, d=48
    assert e["variants"]["ann"]["macs"] > sum(row["macs"] for row in products) > 0

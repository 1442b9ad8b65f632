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
    macs = estimate_energy(g, steps=4)["variants"]["ann"]["macs"]
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

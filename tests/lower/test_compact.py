"""The lowering's compact bias storage, the netlist-read layer structure and the tracer's
batch-norm shape shortcut give what the long ways give."""

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer
from torch import nn

from snncompile.energy.structure import Layers, SweepStructure
from snncompile.frontend import trace_model
from snncompile.frontend.shape_rules import module_output
from snncompile.ir import Conv2d, Linear
from snncompile.lower import lower
from snncompile.netlist import BiasMap, bias_map
from snncompile.passes import run_passes
from tests.energy.spikformer import Spikformer
from tests.energy.zoo import SpikingResNet18


def _randomize_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def test_population_bias_is_stored_per_channel_and_expands_to_the_folded_biases():
    torch.manual_seed(0)
    g = run_passes(trace_model(_randomize_bn(SpikingResNet18(imagenet=False)), (3, 32, 32)).graph)[0]
    net = lower(g)
    checked = 0
    for pop in net.populations.values():
        lazy = bias_map(pop)
        if lazy is None or pop.kind != "neuron":
            continue
        assert lazy.compact.size <= pop.shape[0] < pop.size   # one value per channel at most
        full = pop.bias
        assert full.dtype == np.float64 and full.shape == (pop.size,) and full.flags.writeable
        per_channel = full.reshape(pop.shape)
        assert np.array_equal(per_channel, np.broadcast_to(per_channel[:, :1, :1], pop.shape))
        assert bias_map(pop) is None and pop.bias is full   # expanded once, then kept
        checked += 1
    assert checked >= 16
    assert any(np.any(p.bias != 0) for p in net.populations.values() if p.kind == "neuron")


def test_bias_map_keeps_neurons_by_index_and_expands_fresh():
    b = BiasMap(np.arange(3.0).reshape(3, 1, 1), (3, 2, 2))
    full = b.full()
    assert np.array_equal(full, np.repeat(np.arange(3.0), 4))
    full[0] = 9.0
    assert b.full()[0] == 0.0
    kept = b.kept(np.array([1, 5, 11])).kept(np.array([0, 2]))
    assert np.array_equal(kept.full(), [0.0, 2.0])


def test_spikformer_layers_are_counted_from_the_netlist_as_the_sweep_counts_them():
    torch.manual_seed(0)
    g = run_passes(trace_model(_randomize_bn(Spikformer(2, 128, 10, imagenet=False)), (3, 32, 32)).graph)[0]
    layers, sweep = Layers(g, lower(g)), SweepStructure(g)
    names = [n for n in g.topo() if isinstance(g.node(n), (Conv2d, Linear))]
    assert any(len(layers.net._terms(n)) > 1 for n in names)   # residual streams meet (the head)
    for name in names:
        got = layers.net.synapses(name)
        assert got is not None, name                           # no whole-graph sweep needed
        assert tuple(got) == tuple(sweep.synapses(name)), name


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.BatchNorm2d(8), (2, 8, 5, 5)),
    (lambda: nn.BatchNorm1d(8), (2, 8)),
    (lambda: nn.BatchNorm1d(8), (2, 8, 7)),
    (lambda: layer.BatchNorm2d(8, step_mode="m"), (3, 2, 8, 5, 5)),
    (lambda: layer.BatchNorm1d(8, step_mode="m"), (3, 2, 8, 7)),
])
def test_batch_norm_meta_shortcut_gives_the_module_s_meta_output(make, shape):
    bn = make().eval().to("meta")
    x = torch.empty(shape, device="meta")
    got = module_output(bn, (x,), {})
    want = bn(x)
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype


@pytest.mark.parametrize("make,shape,train", [
    (lambda: nn.BatchNorm2d(8), (2, 6, 5, 5), False),                      # wrong channel count
    (lambda: nn.BatchNorm2d(8), (2, 8, 5), False),                         # wrong rank
    (lambda: layer.BatchNorm2d(8, step_mode="m"), (2, 8, 5, 5), False),    # multi-step without T
    (lambda: nn.BatchNorm2d(8), (2, 8, 5, 5), True),                       # training: batch statistics
])
def test_batch_norm_meta_shortcut_leaves_other_calls_to_the_module(make, shape, train):
    bn = make().train(train).to("meta")
    assert module_output(bn, (torch.empty(shape, device="meta"),), {}) is None
    if not train:   # the module itself refuses these inputs
        with pytest.raises((ValueError, RuntimeError)):
            bn(torch.empty(shape, device="meta"))


def test_meta_copy_is_a_deep_copy_on_the_meta_device():
    from spikingjelly.activation_based import neuron

    from snncompile.frontend.trace import _meta_copy

    shared = nn.Conv2d(3, 4, 3)
    model = nn.Sequential(shared, nn.BatchNorm2d(4), neuron.IFNode(), nn.Sequential(shared))
    model.extra = {"steps": [1, 2]}
    meta = _meta_copy(model)
    assert [type(m) for m in meta.modules()] == [type(m) for m in model.modules()]
    assert meta[0] is meta[3][0] and meta[0] is not shared                 # sharing kept, nothing aliased
    assert all(p.is_meta for p in meta.parameters()) and all(b.is_meta for b in meta.buffers())
    assert not any(p.is_meta for p in model.parameters())
    assert meta.extra == model.extra and meta.extra["steps"] is not model.extra["steps"]
    meta[2](torch.empty(1, 4, 2, 2, device="meta"))                        # the copy's state moves alone
    assert isinstance(meta[2].v, torch.Tensor) and model[2].v == 0.0
    assert meta[2]._memories is not model[2]._memories

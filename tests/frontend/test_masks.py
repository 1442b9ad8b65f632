"""--masks: the mask_{k}.pkl lists of published lottery-ticket code."""

import pickle

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile.errors import EXIT_UNSAFE, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.frontend.masks import apply_masks, read_masks
from snncompile.ir import Conv2d, Linear


def net():
    torch.manual_seed(0)
    return nn.Sequential(layer.Conv2d(1, 4, 3), layer.BatchNorm2d(4), neuron.IFNode(), layer.Flatten(),
                         layer.Linear(4 * 6 * 6, 3), neuron.IFNode()).eval()


def test_masks_follow_named_parameters_and_end_up_in_the_ir(tmp_path):
    m = net()
    shapes = [p.shape for n, p in m.named_parameters() if "weight" in n]
    assert len(shapes) == 3  # conv, BN (1-D entries are part of the list), linear
    rng = np.random.default_rng(0)
    masks = [(rng.random(s) > 0.7).astype(np.float32) for s in shapes]
    masks[1] = np.ones(shapes[1], np.float32)
    p = tmp_path / "mask_3.pkl"
    p.write_bytes(pickle.dumps(masks))
    loaded = read_masks(p)
    synapse_masks = apply_masks(m, loaded, p)
    assert set(synapse_masks) == {"0", "4"}
    g = trace_model(m, (1, 8, 8), masks=synapse_masks).graph
    conv, fc = g.node(g.of_type(Conv2d)[0]), g.node(g.of_type(Linear)[0])
    np.testing.assert_array_equal(conv.mask, masks[0] != 0)
    np.testing.assert_array_equal(fc.mask, masks[2] != 0)
    assert not conv.weight[~conv.mask].any() and not m[0].weight[torch.as_tensor(masks[0] == 0)].any()


def test_mask_shape_and_count_errors(tmp_path):
    m = net()
    with pytest.raises(SnnCompileError, match="holds 1 masks but the model has 3"):
        apply_masks(m, [np.ones((4, 1, 3, 3))])
    bad = [np.ones((4, 1, 3, 3)), np.ones(5), np.ones((3, 144))]
    with pytest.raises(SnnCompileError, match=r"mask for 1.weight has shape \(5,\)"):
        apply_masks(m, bad)


def test_mask_file_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("print('pwned')",))   # (not print: Ray, once started in the process, replaces it)

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(SnnCompileError, match="builtins.exec") as e:
        read_masks(p)
    assert e.value.exit_code == EXIT_UNSAFE

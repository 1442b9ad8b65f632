"""Defects the zoo table (benchmarks/zoo_table.py) revealed, fixed: pooling with
``ceil_mode=True`` where every window fits (MA-SNN's AttMSResNet downsampling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.sim import run_torch, simulate


def _net(pool: nn.Module, size: int) -> nn.Module:
    torch.manual_seed(0)
    out = -(-size // 2)   # the ceil-mode output size
    return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), neuron.IFNode(), pool, nn.Flatten(),
                         nn.Linear(8 * out * out, 4), neuron.IFNode()).double()


@pytest.mark.parametrize("pool", [nn.AvgPool2d(2, ceil_mode=True), nn.MaxPool2d(2, ceil_mode=True)],
                         ids=["avg", "max"])
def test_ceil_mode_pooling_where_every_window_fits_is_floor_mode(pool):
    model = _net(pool, 8)
    x = np.random.default_rng(0).uniform(0, 2, (3, 2, 2, 8, 8))
    tr = trace_model(model.eval(), (2, 8, 8))
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()))
    ref = simulate(tr.graph, x)
    for n, p in tr.neuron_sources.items():
        np.testing.assert_array_equal(ref.spikes[n], tor.spikes[p], err_msg=n)
    assert tor.spikes[tr.neuron_sources[next(iter(tr.neuron_sources))]].mean() > 0


def test_ceil_mode_pooling_over_a_partial_window_is_refused():
    model = _net(nn.AvgPool2d(2, ceil_mode=True), 7)
    with pytest.raises(SnnCompileError, match=r"ceil_mode=True over a partial last window.*`2`"):
        trace_model(model.eval(), (2, 7, 7))

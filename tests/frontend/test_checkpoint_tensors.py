"""Quantized weights in a state_dict are dequantized as PyTorch defines it, and the compiled
network then fires spike for spike like the float model holding those weights (issue #27)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile.frontend.load import load_model
from tests.equivalence import assert_same_spikes, run_all


def net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(layer.Conv2d(2, 16, 3, padding=1), neuron.IFNode(v_threshold=0.5), layer.Flatten(),
                         layer.Linear(16 * 8 * 8, 10), neuron.LIFNode(tau=2.0))


def _quantize(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    if per_channel:
        scales = w.abs().flatten(1).amax(1) / 127
        return torch.quantize_per_channel(w, scales, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
    return torch.quantize_per_tensor(w, float(w.abs().max()) / 127, 3, torch.qint8)


@pytest.mark.filterwarnings("ignore::UserWarning")   # torch deprecates quantized tensor creation
@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_quantized_state_dict_is_dequantized_exactly(per_channel, tmp_path, monkeypatch):
    src = net()
    state = src.state_dict()
    q = {k: _quantize(v, per_channel) for k, v in state.items() if k.endswith("weight")}
    state.update(q)
    torch.save({"state_dict": state, "steps": 4}, tmp_path / "q.pt")
    (tmp_path / "qarch.py").write_text("from tests.frontend.test_checkpoint_tensors import net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_model(tmp_path / "q.pt", arch="qarch:net").module
    for key, qt in q.items():
        got = loaded.get_parameter(key)
        assert got.dtype == torch.float32 and torch.equal(got, qt.dequantize()), key
    ref = net()   # the float model a user would get by dequantizing by hand
    with torch.no_grad():
        for key, qt in q.items():
            ref.get_parameter(key).copy_(qt.dequantize())
    x = (np.random.default_rng(0).random((4, 3, 2, 8, 8)) < 0.4).astype(np.float64)
    runs = run_all(loaded, x, (2, 8, 8))
    assert sum(int(s.sum()) for s in runs.ref_spikes.values()) > 0, "nothing fired: the check is empty"
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes, "reference vs PyTorch:")
    expected = run_all(ref, x, (2, 8, 8))
    assert_same_spikes(expected.torch_spikes, runs.ref_spikes, "reference vs hand-dequantized model:")

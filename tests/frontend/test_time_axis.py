"""The time axis from the code (#23 item 5): snnTorch's ``for step in range(x.size(0)):
... x[step]`` loop and batch-first models that ``transpose(0, 1)`` in forward() compile as
written, spike for spike; ``--time-axis`` says where time is in an input file, and a file
stored the other way round is named as such."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from snncompile.api import Options
from snncompile.cli import compile_parser
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.inputs import load_inputs
from snncompile.sim import run_torch, simulate


class StepLoop(nn.Module):
    """snnTorch's tutorial loop over the time axis of its [T, N, 2, H, W] event frames."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 128, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc = nn.Linear(128 * 8 * 8, 10)
        self.lif2 = snn.Leaky(beta=0.8)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk_rec = []
        for step in range(x.size(0)):
            spk1, mem1 = self.lif1(self.conv(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc(spk1.flatten(1)), mem2)
            spk_rec.append(spk2)
        return torch.stack(spk_rec)


class BatchFirst(nn.Module):
    """A multi-step DVS net fed [N, T, 2, H, W], made time-major in forward()."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = layer.Conv2d(2, 128, 3, padding=1)
        self.sn1 = neuron.LIFNode()
        self.flat = layer.Flatten()
        self.fc = layer.Linear(128 * 8 * 8, 10)
        self.sn2 = neuron.IFNode()
        functional.set_step_mode(self, "m")

    def forward(self, x):
        x = x.transpose(0, 1)
        return self.sn2(self.fc(self.flat(self.sn1(self.conv(x))))).mean(0)


def _events(T: int = 6, n: int = 3) -> np.ndarray:
    return (np.random.default_rng(0).uniform(0, 1, (T, n, 2, 8, 8)) < 0.3).astype(np.float64)


@pytest.mark.parametrize("cls, convention", [(StepLoop, "loop-in"), (BatchFirst, "m-bf")])
def test_time_axis_read_from_the_code_matches_spike_for_spike(cls, convention):
    torch.manual_seed(0)
    model = cls()
    with torch.no_grad():
        model.conv.weight.mul_(4)
        model.fc.weight.mul_(8)
    tr = trace_model(model, (2, 8, 8))
    assert tr.step_mode == convention and tr.graph.model_steps is None   # T comes from the data
    x = _events()
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    ref = simulate(tr.graph, x)
    assert len(tr.neuron_sources) == 2
    for n, p in tr.neuron_sources.items():
        np.testing.assert_array_equal(ref.spikes[n], tor.spikes[p], err_msg=n)
        assert tor.spikes[p].shape[0] == x.shape[0]
    assert tor.spikes[tr.neuron_sources[next(iter(tr.neuron_sources))]].mean() > 0.01
    got = ref.output.mean(0) if tr.graph.output_time_reduced else ref.output
    np.testing.assert_allclose(got, tor.output, atol=1e-9)


def test_a_static_model_must_not_index_its_batch_axis():
    class Indexes(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x):
            return self.lif(self.fc(x[0] + x[1]))

    with pytest.raises(SnnCompileError) as err:
        trace_model(Indexes(), (4,))
    assert "first axis" in err.value.message or "step by step" in err.value.message


def test_time_axis_1_reads_batch_first_files(tmp_path):
    x = _events(T=6, n=4)
    path = tmp_path / "bf.npz"
    np.savez(path, x=np.swapaxes(x, 0, 1), y=np.arange(4))
    data = load_inputs(path, (2, 8, 8), time_axis=1)
    assert data.sequence and data.samples == 4
    np.testing.assert_array_equal(data.x, x)


def test_a_file_with_swapped_axes_is_named_as_such(tmp_path):
    path = tmp_path / "bf.npz"
    np.savez(path, x=np.swapaxes(_events(T=6, n=4), 0, 1), y=np.arange(4))
    with pytest.raises(SnnCompileError, match="time and sample axes are swapped") as err:
        load_inputs(path, (2, 8, 8))
    assert "--time-axis 1" in err.value.hint and err.value.exit_code == EXIT_USAGE
    static = tmp_path / "static.npy"
    np.save(static, _events(T=1, n=4)[0])
    with pytest.raises(SnnCompileError, match="no time axis"):
        load_inputs(static, (2, 8, 8), time_axis=1)


def test_time_axis_option_in_cli_and_api():
    assert compile_parser().parse_args(["m.pt", "--time-axis", "1"]).time_axis == 1
    assert compile_parser().parse_args(["m.pt"]).time_axis == 0
    with pytest.raises(SnnCompileError, match="--time-axis 2"):
        Options(time_axis=2).check()

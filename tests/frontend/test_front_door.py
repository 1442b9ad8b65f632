"""Front-door defects found running published code as shipped (issue #23, item 6): each gives
a compiled network or a refusal that names what stopped it, never an internal error."""

import json

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.cli import main
from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import Pool2d
from snncompile.sim import run_torch, simulate


class OptionalHook(nn.Module):
    """The official Spike-driven Transformer's ``forward(self, x, hook=None)``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 16)
        self.sn = neuron.IFNode()

    def forward(self, x, hook=None):
        x = self.sn(self.fc(x))
        if hook is not None:
            hook["sn"] = x.detach()
        return x


def test_arguments_with_defaults_are_constants():
    g = trace_model(OptionalHook(), (12,)).graph
    assert [n.op for _, n in g.items()] == ["input", "linear", "neuron", "output"]


class Boost(nn.Module):
    """SNASNet's ``boost``: an AvgPool1d over the class scores (a VotingLayer)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 40)
        self.sn = neuron.IFNode()
        self.boost = nn.AvgPool1d(4, 4)

    def forward(self, x):
        return self.boost(self.sn(self.fc(x)).unsqueeze(1)).squeeze(1)


def test_avgpool1d_is_a_voting_mean():
    torch.manual_seed(0)
    m = Boost().double()
    tr = trace_model(m, (12,))
    assert tr.graph.of_type(Pool2d) and tr.graph.node(tr.graph.output_name).shape == (10,)
    x = np.random.default_rng(0).uniform(0, 2, (3, 4, 12))
    ref = simulate(tr.graph, x).output
    np.testing.assert_allclose(ref, run_torch(m, x, "s", []).output, atol=1e-12)


class PadAssign(nn.Module):
    """spikingjelly's BNAndPadLayer: the padding border written by item assignment."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.sn = neuron.IFNode()

    def forward(self, x):
        out = nn.functional.pad(self.bn(self.conv(x)), [1, 1, 1, 1])
        pad = self.bn.bias.detach().view(1, -1, 1, 1)
        out[:, :, 0:1, :] = pad
        return self.sn(out)


def test_item_assignment_is_refused_by_name():
    with pytest.raises(SnnCompileError, match=r"assigns into a tensor computed from the input \(`out\[...\] = value`") as e:
        trace_model(PadAssign(), (3, 16, 16))
    assert "F.pad" in e.value.hint


class TopKTokens(nn.Module):
    """TP-Spikformer-style token pruning by ``topk`` on attention scores."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.sn = neuron.IFNode(step_mode="m")

    def forward(self, x):   # static [B, N, D] repeated over T
        x = self.sn(self.fc(x.unsqueeze(0).repeat(2, 1, 1, 1)))
        idx = x.sum(-1).topk(4, dim=-1).indices
        return torch.gather(x, 2, idx.unsqueeze(-1).expand(-1, -1, -1, 16))


def test_data_dependent_topk_is_refused_by_name_from_the_furthest_convention():
    """With --no-host: ``m`` fails at the input layout (repeat of a 4-D value); ``static-m``
    gets to ``topk``: the error names ``topk``, not the shape (without it, topk is a host
    partition: tests/corpus/test_host_corpus.py)."""
    with pytest.raises(SnnCompileError, match=r"`topk`") as e:
        trace_model(TopKTokens(), (8, 16), no_host=True)
    assert "input-shape" not in e.value.hint


class Crashes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.sn = neuron.IFNode()

    def forward(self, x):
        self.sn(self.fc(x))
        raise ValueError("the author's own check failed")


def test_a_model_that_raises_gives_a_clear_error():
    with pytest.raises(SnnCompileError, match="the author's own check failed"):
        trace_model(Crashes(), (4,))


def test_legacy_clock_driven_names_published_code_imports():
    from snncompile.frontend import legacy

    legacy.install()
    from spikingjelly.clock_driven import encoding, layer  # noqa: F401
    from spikingjelly.clock_driven import neuron as old_neuron

    assert issubclass(old_neuron.MultiStepLIFNode, neuron.LIFNode) and old_neuron.BaseNode is neuron.BaseNode
    drop = layer.MultiStepDropout(0.5)
    assert drop.step_mode == "m"
    m = nn.Sequential(layer.SeqToANNContainer(nn.Linear(6, 8)), layer.MultiStepDropout(0.2),
                      old_neuron.MultiStepLIFNode(tau=2.0))
    tr = trace_model(m.eval(), (6,))
    assert tr.step_mode == "m" and [n.op for _, n in tr.graph.items()] == ["input", "linear", "neuron", "output"]


class Chatty(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        print("building Chatty")
        self.fc = nn.Linear(6, 8)
        self.sn = neuron.IFNode()

    def forward(self, x):
        print("forward of Chatty", tuple(x.shape))
        return self.sn(self.fc(x))


def test_json_stdout_is_one_object_when_the_model_prints(capsys, tmp_path):
    p = tmp_path / "chatty.pt"
    torch.save(Chatty(), p)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).uniform(0, 1, (2, 3, 6)))   # [T, N, 6]
    capsys.readouterr()
    code = main([str(p), "--trust-pickle", "--target", "energy", "--input", str(x), "--steps", "2", "--simulate",
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)   # exactly one object
    assert "forward of Chatty" in err and isinstance(doc, dict) and "error" not in doc




def test_nir_dt_hint_says_what_the_file_lacks(tmp_path):
    from interchange.test_nir_import import _lif_graph

    from snncompile import api

    with pytest.raises(SnnCompileError) as e:
        api.trace(_lif_graph(tmp_path), nir_dt=None)
    assert "r = 1" in e.value.message and "Norse" not in e.value.hint and "--nir-dt" in e.value.hint

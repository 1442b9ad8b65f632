"""netx export: the written file loads in lava-dl's own loader (``hdf5.Network``), runs on
Lava's CPU backend (fixed_pt) and its output spikes equal the integer reference bit for bit;
what netx cannot hold is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from backends.netx.export import BLOCK
from snncompile import api
from snncompile.cli import main
from snncompile.errors import SnnCompileError
from snncompile.netlist import DelayPopulation, ProductPopulation

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("digits_scnn", "digits_scnn_ticket", "digits_scnn_binw_ticket")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = np.load(ROOT / "models" / "digits_test.npz")
    return d["x"][:3].astype(np.float64), d["y"][:3]


def _layers(path: Path) -> list[dict]:
    with h5py.File(path, "r") as f:
        out = []
        for i in range(len(f["layer"])):
            g = f["layer"][str(i)]
            row = {"type": g["type"][()].decode()}
            row.update({k: g[k][()] for k in g if k not in ("type", "neuron")})
            if "neuron" in g:
                row["neuron"] = {k: g["neuron"][k][()] for k in g["neuron"] if k != "type"}
            out.append(row)
    return out


@pytest.mark.lava
@pytest.mark.parametrize("name", MODELS)
def test_export_runs_in_netx_bit_exact_with_the_integer_reference(name, digits, tmp_path):
    out = tmp_path / f"{name}.net"
    rep = api.compile(ROOT / "models" / f"{name}.pt", "netx", input=digits, simulate_on_target=True,
                      output_file=out, timeout=300)
    fp = rep.fixed_point
    assert rep.simulation["backend"] == "lava-dl-netx-cpu-fixed_pt"
    assert fp["integer_reference_bit_exact"] is True
    assert rep.simulation["prediction_agreement"] == fp["integer_reference"]["prediction_agreement"]
    assert fp["quantization"]["stock_loihi"] is True
    assert all(row["weight_exp"] == 0 for row in fp["quantization"]["layers"])
    assert fp["netx"]["latency_steps"] == 4 and fp["netx"]["input_scale"] == fp["quantization"]["input_scale"]
    layers = _layers(out)
    assert [r["type"] for r in layers] == ["input", "conv", "conv", "conv", "flatten", "dense"]
    for r in layers[1:]:
        if "weight" in r:
            assert np.abs(r["weight"]).max() <= 254 and np.abs(r["bias"]).max() < 4096
    pool = layers[3]   # the OR-pool: a grouped all-ones conv into LIF neurons with vth = 0
    assert pool["groups"] == 16 and set(np.unique(pool["weight"])) == {1} and pool["neuron"]["vThMant"] == 0


def test_cli_export_writes_the_file_and_says_how_to_run_it(tmp_path, capsys):
    out = tmp_path / "ticket.net"
    assert main(["export", str(ROOT / "models" / "digits_scnn_ticket.pt"), "--format", "netx", "-o", str(out),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outputs"] == {"file": str(out)} and out.exists()
    assert doc["fixed_point"]["netx"]["network_args"]["reset_interval"] == 8
    assert doc["fixed_point"]["netx"]["input_scale"] == doc["fixed_point"]["quantization"]["input_scale"]
    assert [r["type"] for r in _layers(out)][:2] == ["input", "conv"]
    assert not list(tmp_path.glob("*.ir.npz"))   # -o is the file, not a folder


class _Skip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 4)
        self.sn1, self.sn2, self.sn3 = (neuron.LIFNode(tau=2.0) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.sn1(self.fc1(x))
        return self.sn3(self.fc3(a + self.sn2(self.fc2(a))))


def _soft() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), neuron.IFNode(v_reset=None), nn.Linear(8, 4), neuron.IFNode())


def _readout() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), neuron.IFNode(), nn.Linear(8, 4))


@pytest.mark.parametrize("make, words", [
    (_Skip, "joins or splits spike paths"),
    (_soft, "soft (subtractive) reset"),
    (_readout, "readout (real values, not spikes)"),
])
def test_what_netx_cannot_hold_is_refused_by_name(make, words, tmp_path):
    with pytest.raises(SnnCompileError) as info:
        api.compile(make().eval(), "netx", input_shape=(6,), steps=4, output_file=tmp_path / "m.net")
    assert words in info.value.message and "--target lava --fixed-point" in info.value.hint
    assert info.value.exit_code == 3 and not (tmp_path / "m.net").exists()


@pytest.mark.parametrize("pop, words", [
    (ProductPopulation("attn", 4, (2, 2)), "multiplies two spike trains"),
    (DelayPopulation("loop", 4, (4,)), "delay line"),
])
def test_products_and_delays_are_refused_by_the_export_registry(pop, words):
    with pytest.raises(SnnCompileError, match=words):
        BLOCK(pop)(pop.name, pop, None, None, False)


def test_output_file_needs_a_target_with_one_file(tmp_path):
    with pytest.raises(SnnCompileError, match="writes 2 files"):
        api.compile(_soft().eval(), "onnx", input_shape=(6,), steps=4, output_file=tmp_path / "m.onnx")


def test_a_pool_over_128_channels_is_written_ungrouped(tmp_path):
    """Lava's Conv keeps ``groups`` in an int8: 128 groups would wrap to −128 and lose every
    pooled spike, so such a grouped conv is written as the equal block-diagonal kernel."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 128, 1), neuron.IFNode(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 4),
                      neuron.IFNode()).eval()
    out = tmp_path / "m.net"
    api.compile(m, "netx", input_shape=(1, 2, 2), steps=2, output_file=out)
    pool = _layers(out)[2]
    assert pool["groups"] == 1 and pool["weight"].shape == (128, 128, 2, 2)
    assert np.array_equal(pool["weight"].sum(axis=(2, 3)), 4 * np.eye(128, dtype=np.int64))

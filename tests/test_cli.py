"""The command line: JSON schema, the demo's equivalence, and one clear message per error."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.lava
def test_demo_equivalence_json(capsys, tmp_path, digits_model, digits_test):
    code, out, err = run_cli(capsys, digits_model, "--target", "lava", "--input", digits_test,
                             "--samples", 100, "--simulate", "--json", "-o", tmp_path / "out")
    assert code == 0, err
    rep = json.loads(out)  # exactly one JSON object on stdout
    assert rep["target"] == "lava" and rep["steps"] == 8
    assert set(rep["graph"]) == {"layers", "neurons", "synapses_dense", "synapses", "weights", "weights_nonzero",
                                 "weight_sparsity", "synapse_sparsity"}
    # after the passes the max-pool is an OR layer: depthwise 2×2 ones into 16×4×4 neurons
    assert rep["graph"]["layers"] == 4 and rep["graph"]["neurons"] == 8 * 64 + 16 * 64 + 16 * 16 + 10
    assert rep["lowering"]["synapses"] == 3872 + 61952 + 16 * 16 * 4 + 2560
    sim = rep["simulation"]
    assert sim["backend"] == "lava-cpu" and sim["samples"] == 100
    assert sim["spike_agreement"] == 1.0 and sim["prediction_agreement"] == 1.0
    assert sim["accuracy"] >= 0.9
    assert sim["wall_s"] > 0
    assert rep["energy"]["variants"]["snn"]["sops"] > 0
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["simulation"]["spike_agreement"] == 1.0
    assert (tmp_path / "out" / "model.ir.npz").exists()


def test_json_without_simulation_omits_it(capsys, digits_model, digits_test):
    code, out, _ = run_cli(capsys, digits_model, "--input", digits_test, "--samples", 20, "--json")
    assert code == 0
    rep = json.loads(out)
    assert "simulation" not in rep
    assert rep["energy"]["variants"]["ann"]["macs"] == 8 * 64 * 9 + 16 * 64 * 72 + 2560
    assert rep["graph"]["synapses"] == rep["graph"]["synapses_dense"] == 3872 + 61952 + 1024 + 2560


def test_table_output_and_inspect(capsys, digits_model):
    code, out, _ = run_cli(capsys, "inspect", digits_model)
    assert code == 0
    assert "LIF tau=2" in out and "69,408" in out and "OR (max-pool" in out
    # layers are named by the nn.Sequential's module paths, not the IR's conv2d_0 / neuron_2
    assert "│ 0 " in out and "│ 6.or_syn " in out and "conv2d_0" not in out and "neuron_2" not in out


def _error(capsys, *args):
    code, out, err = run_cli(capsys, *args)
    assert "Traceback" not in err and "Traceback" not in out
    return code, err


def test_missing_and_corrupt_files(capsys, tmp_path):
    code, err = _error(capsys, tmp_path / "missing.pt")
    assert code == 2 and "model file not found" in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    code, err = _error(capsys, bad)
    assert code == 2 and "not a PyTorch checkpoint" in err and "hint:" in err


class Untrusted(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.sn = neuron.IFNode()

    def forward(self, x):
        return self.sn(self.fc(x))


def test_unsafe_pickle_and_unsupported_layer(capsys, tmp_path):
    p = tmp_path / "untrusted.pt"
    torch.save(Untrusted(), p)
    code, err = _error(capsys, p, "--steps", 2)
    assert code == 4 and "test_cli.Untrusted" in err and "--trust-pickle" in err
    q = tmp_path / "relu.pt"
    torch.save(nn.Sequential(layer.Linear(3, 3), nn.ReLU(), neuron.IFNode()), q)
    code, err = _error(capsys, q, "--steps", 2)
    assert code == 3 and "unsupported layer `1`" in err and "ReLU" in err


def test_bad_inputs_leave_no_output(capsys, tmp_path, digits_model):
    out = tmp_path / "out"
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 3, 8, 8)))
    code, err = _error(capsys, digits_model, "--input", wrong, "--simulate", "-o", out)
    assert code == 2 and "per-sample shape (1, 8, 8)" in err
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((4, 1, 8, 8), np.nan))
    code, err = _error(capsys, digits_model, "--input", nan, "-o", out)
    assert code == 2 and "NaN" in err
    assert not out.exists()


def test_nan_weights_are_named(capsys, tmp_path):
    m = nn.Sequential(layer.Linear(3, 3), neuron.IFNode())
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    p = tmp_path / "nan.pt"
    torch.save(m, p)
    code, err = _error(capsys, p, "--steps", 2)
    assert code == 2 and "layer `0` has NaN" in err


def test_usage_errors(capsys, digits_model):
    code, err = _error(capsys, digits_model, "--target", "loihi9")
    assert code == 2 and "invalid choice" in err
    code, err = _error(capsys, digits_model, "--simulate")
    assert code == 2 and "--simulate needs inputs" in err


def test_console_script_and_module_entry_points(digits_model):
    # the three interpreters start side by side: each spends seconds importing torch
    inspects = [subprocess.Popen(cmd + ["inspect", str(digits_model), "--json"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=ROOT)
                for cmd in ([str(Path(sys.executable).parent / "snncompile")], [sys.executable, "-m", "snncompile"])]
    missing = subprocess.Popen([sys.executable, "-m", "snncompile", "/nonexistent.pt"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for proc in inspects:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert json.loads(out)["graph"]["layers"] == 4
    _, err = missing.communicate(timeout=300)
    assert missing.returncode == 2 and "Traceback" not in err and "not found" in err


@pytest.mark.lava
def test_fixed_point_digits_fidelity_and_mapping(capsys, digits_model, digits_test):
    code, out, err = run_cli(capsys, digits_model, "--input", digits_test, "--fixed-point", "--simulate",
                             "--json")
    assert code == 0, err
    rep = json.loads(out)
    fx = rep["fixed_point"]
    assert fx["integer_reference_bit_exact"] is True
    assert fx["lava"]["prediction_agreement"] >= 0.99          # on all 540 test images
    assert fx["lava"]["spike_agreement"] == fx["integer_reference"]["spike_agreement"]
    assert rep["simulation"]["backend"] == "lava-cpu-fixed_pt" and rep["simulation"]["samples"] == 540
    assert rep["mapping"]["chip"] == "loihi2" and rep["mapping"]["cores"] >= 4
    assert {(e["projection"], e["layer"]) for e in fx["quantization"]["layers"]} >= {("input→neuron_2", "input→2")}
    assert fx["lava"]["per_layer_ir_names"] == {"2": "neuron_2", "5": "neuron_5", "9": "neuron_9"}   # module paths
    assert set(fx["lava"]["per_layer_spike_agreement"]) == set(fx["integer_reference"]["per_layer_spike_agreement"])


def test_over_capacity_network_fails_clearly(capsys, tmp_path):
    m = nn.Sequential(layer.Linear(5000, 4), neuron.IFNode())
    p = tmp_path / "wide.pt"
    torch.save(m, p)
    code, err = _error(capsys, p, "--steps", 2, "--chip", "loihi1")
    assert code == 3 and "5,000 inputs" in err and "4,096 input axons" in err and "hint:" in err


def test_energy_target_schema_and_plot(capsys, tmp_path, digits_model, digits_test):
    png = tmp_path / "energy.png"
    code, out, err = run_cli(capsys, digits_model, "--target", "energy", "--input", digits_test,
                             "--samples", 50, "--json", "--plot", png)
    assert code == 0, err
    e = json.loads(out)["energy"]
    assert e["first_layer"] == "mac" and e["cost_model"] == "45nm" and e["source"]
    assert set(e["variants"]) == {"ann", "snn", "snn_binary", "bnn"}
    assert {"macs", "energy_pj"} <= set(e["variants"]["ann"])
    assert {"sops", "macs", "neuron_updates", "energy_pj"} <= set(e["variants"]["snn"])
    assert {"snn_vs_ann", "snn_binary_vs_snn", "snn_binary_vs_ann"} <= set(e["savings"])
    assert all({"name", "macs", "sops", "firing_rate_in"} <= set(row) for row in e["layers"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run_cli(capsys, digits_model, "--target", "energy", "--firing-rates", "0.1", "--json")
    assert code == 0 and json.loads(out)["energy"]["mode"] == "analytic"


def test_attention_products_are_counted(tmp_path):
    from nets import spikformer_net

    import snncompile

    torch.save({"state_dict": spikformer_net().state_dict(), "input_shape": [1, 8, 8], "steps": 4}, tmp_path / "sf.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((6, 1, 8, 8)))
    rep = snncompile.compile(tmp_path / "sf.pt", "energy", arch="models.digits_arch:digits_spikformer",
                             input=tmp_path / "x.npy")
    rows = [r for r in rep.energy.layers if r.op == "matmul"]
    assert len(rows) == 2 and rows[0].macs == 16 * 16 * 32 and rows[1].macs == 16 * 32 * 16
    assert all(r.acs is not None and r.acs <= 4 * r.macs for r in rows)
    assert rep.energy.variants.snn.attention_acs == pytest.approx(sum(r.acs for r in rows))


@pytest.mark.parametrize("args,code,phrase", [
    (["{tmp}/missing.pt"], 2, "model file not found"),
    (["{model}", "--steps", "0"], 2, "steps"),
    (["{model}", "--passes", "quantum"], 2, "unknown pass"),
    (["export", "{model}"], 2, "output folder"),
])
def test_json_failures_print_one_error_object(capsys, tmp_path, digits_model, args, code, phrase):
    """Scripts read stdout: with --json a failure is one object with the message, the hint
    and the exit code, and the human message still goes to stderr."""
    argv = [a.format(tmp=tmp_path, model=digits_model) for a in args] + ["--json"]
    got, out, err = run_cli(capsys, *argv)
    doc = json.loads(out)
    assert got == code == doc["exit_code"]
    assert set(doc) == {"error", "hint", "exit_code"} and phrase in doc["error"] and doc["hint"]
    assert "error:" in err

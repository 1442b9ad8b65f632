"""ONNX export, issue 12: the shipped tickets through `--target onnx -o`, round-tripped on
onnxruntime spike for spike; files appear together or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from interchange.onnx_helpers import ann_reference

import snncompile
from backends.onnx.run import run_steps, session
from snncompile.cli import main
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.inputs import load_inputs
from snncompile.ir import load_ir
from snncompile.ir.labels import labels
from snncompile.sim import simulate

ROOT = Path(__file__).resolve().parents[2]
TICKETS = {
    "digits_scnn_ticket": None,
    "digits_scnn_binw_ticket": None,
    "digits_spikformer_convpep": "models.digits_arch:digits_spikformer",
}


@pytest.mark.parametrize("name", sorted(TICKETS))
def test_shipped_ticket_round_trips(tmp_path, name):
    data = ROOT / "models" / "digits_test.npz"
    rep = snncompile.compile(ROOT / "models" / f"{name}.pt", "onnx", arch=TICKETS[name], input=data, samples=24,
                             simulate_on_target=True, outdir=tmp_path)
    sim = rep.simulation
    assert sim["backend"] == "onnxruntime-cpu" and sim["emission"] == "float64"
    assert sim["spike_agreement"] == 1.0 and sim["prediction_agreement"] == 1.0
    assert Path(rep.outputs["model.onnx"]) == tmp_path / "model.onnx"
    step, ann = onnx.load(tmp_path / "model.onnx"), onnx.load(tmp_path / "model_ann.onnx")
    onnx.checker.check_model(step, full_check=True)
    onnx.checker.check_model(ann, full_check=True)
    # the written file, unrolled, against the reference simulator on the written IR
    graph = load_ir(tmp_path / "model.ir.npz")
    x = load_inputs(data, tuple(graph.input_shape)).take(24).as_sequence(rep.steps)
    out, ref = run_steps(step, x), simulate(graph, x)
    names = labels(graph)   # reports and tensors name layers by module path, the IR name alongside
    assert sim["per_layer_ir_names"] == {names[n]: n for n in sim["per_layer_ir_names"].values()}
    assert set(sim["per_layer_spike_agreement"]) == set(sim["per_layer_ir_names"]) and \
        set(sim["per_layer_spike_agreement"].values()) == {1.0}
    inputs = {i.name for i in step.graph.input}
    for layer, spikes in ref.spikes.items():
        meta = next((p for p in json.loads(step.metadata_props[0].value)["populations"] if p["name"] == layer), None)
        if meta is None:
            continue
        assert meta["layer"] == names[layer]
        assert meta["state"] in inputs and meta["state"] == f"{names[layer]}.v" if "state" in meta else \
            meta["values"] == f"{names[layer]}.values"
        want = spikes.reshape(*spikes.shape[:2], -1)
        want = want if meta["kept"] is None else want[..., meta["kept"]]
        np.testing.assert_array_equal(out[layer], want, err_msg=layer)
    got = session(ann).run(["readout"], {"x": x[0]})[0]
    np.testing.assert_allclose(got, ann_reference(graph, x[0]).reshape(got.shape), rtol=1e-12, atol=1e-12)


def test_cli_writes_onnx_files(capsys, tmp_path):
    out = tmp_path / "out"
    code = main([str(ROOT / "models" / "digits_scnn_ticket.pt"), "--target", "onnx", "-o", str(out), "--json"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads(stdout)
    assert rep["target"] == "onnx" and rep["lowering"]["populations"] > 0
    assert set(rep["outputs"]) == {"ir", "report", "model.onnx", "model_ann.onnx"}
    for f in ("model.onnx", "model_ann.onnx", "model.ir.npz", "report.json"):
        assert (out / f).stat().st_size > 0
    assert not list(out.glob(".*"))  # no staging leftovers


def test_failed_export_leaves_nothing(capsys, tmp_path, monkeypatch):
    import backends.onnx.ann as ann

    def refuse(net, dtype="float64"):
        raise SnnCompileError("layer `x` cannot be written", "a test", EXIT_UNSUPPORTED)

    monkeypatch.setattr(ann, "build_ann", refuse)
    out = tmp_path / "out"
    code = main([str(ROOT / "models" / "digits_scnn_ticket.pt"), "--target", "onnx", "-o", str(out)])
    _, err = capsys.readouterr()
    assert code == EXIT_UNSUPPORTED and "cannot be written" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_fixed_point_needs_lava(capsys, tmp_path):
    code = main([str(ROOT / "models" / "digits_scnn_ticket.pt"), "--target", "onnx", "--fixed-point",
                 "-o", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2 and "lava" in err
    assert not (tmp_path / "out").exists()


def test_without_outdir_it_asks_for_one_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SnnCompileError, match="no output folder was given") as e:
        snncompile.compile(ROOT / "models" / "digits_scnn_ticket.pt", "onnx")
    assert e.value.exit_code == 2 and "-o OUTDIR" in e.value.hint
    assert not any(tmp_path.iterdir())

"""The Python API: models as modules or state_dicts, inputs as arrays or tensors, and every
wrong argument refused at the call with one SnnCompileError naming it."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

import snncompile
from snncompile import api
from snncompile.api import Options
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.frontend.load import load_model

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "digits_scnn.pt"
DATA = ROOT / "models" / "digits_test.npz"

# (argument, a wrong value) for compile(): every Options field, most with several kinds of wrong.
WRONG_COMPILE = [
    ("time_axis", None), ("time_axis", 2), ("time_axis", -1), ("time_axis", "1"),
    ("target", None), ("target", 3), ("target", ""),
    ("steps", "8"), ("steps", 0), ("steps", -1), ("steps", 1.5), ("steps", True),
    ("input", [1.0, 2.0]), ("input", 3), ("input", ""), ("input", {"x": np.zeros((2, 1, 8, 8))}),
    ("samples", "3"), ("samples", 0), ("samples", [3]),
    ("simulate_on_target", None), ("simulate_on_target", "yes"), ("simulate_on_target", 1),
    ("outdir", 3), ("outdir", ["out"]), ("outdir", ""),
    ("arch", 3), ("arch", ""), ("arch", ["models.digits_arch:make"]),
    ("trust_pickle", None), ("trust_pickle", "yes"),
    ("input_shape", "1,8,8"), ("input_shape", [0, 8]), ("input_shape", 3), ("input_shape", ()),
    ("energy_model", None), ("energy_model", 3),
    ("timeout", None), ("timeout", -1), ("timeout", 0), ("timeout", "900"), ("timeout", math.inf),
    ("emit", 3), ("emit", ""),
    ("workers", 0), ("workers", "2"), ("workers", 2.5),
    ("ray_address", 3),
    ("ray_connect_timeout", 0), ("ray_connect_timeout", -1.0), ("ray_connect_timeout", None),
    ("ray_connect_timeout", "30"), ("ray_connect_timeout", math.inf),
    ("progress", 3), ("progress", "print"),
    ("passes", "binarize"), ("passes", ["nope"]), ("passes", [1]),
    ("masks", 3), ("masks", [np.ones(3)]),
    ("patch_mask", [1, 0]), ("patch_mask", 3),
    ("fixed_point", None), ("fixed_point", "no"),
    ("chip", 3),
    ("ann_sparse", None), ("ann_sparse", 0),
    ("firing_rates", [0.1]), ("firing_rates", {"neuron_2": 2.0}), ("firing_rates", -0.5), ("firing_rates", ""),
    ("plot", 3), ("plot", "out/"), ("output_file", 3), ("output_file", "model.net/"),
    ("nir_dt", -1.0), ("nir_dt", 0), ("nir_dt", "0.001"), ("nir_dt", math.nan),
    ("verify_ir", None), ("verify_ir", "x"),
    ("event_frames", 0), ("event_frames", 2.5), ("event_frames", "16"),
    ("event_window", 0), ("event_window", -1.0), ("event_window", math.inf), ("event_window", "1e4"),
    ("event_count", 0), ("event_count", True),
    ("plot_layers", "features.2"), ("plot_layers", []), ("plot_layers", [3]),
    ("verify_ir", None), ("verify_ir", "x"), ("no_host", None), ("no_host", "yes"),
    ("keep_ratio", 0.0), ("keep_ratio", 1.5), ("keep_ratio", "x"),
]


@pytest.fixture
def no_work(monkeypatch):
    """A refusal must come at the call: nothing is loaded or traced before it."""
    def fail(*a, **k):
        raise AssertionError("the pipeline ran before the arguments were checked")

    monkeypatch.setattr(api, "_compile", fail)
    monkeypatch.setattr(api, "_trace", fail)


def _refused(call, name: str) -> SnnCompileError:
    with pytest.raises(SnnCompileError) as info:
        call()
    exc = info.value
    assert any(f"{name}{c}" in exc.message for c in "= ["), exc.message
    assert exc.hint and exc.exit_code == EXIT_USAGE
    return exc


def test_every_option_has_wrong_values_tried():
    assert {f.name for f in fields(Options)} <= {name for name, _ in WRONG_COMPILE}


@pytest.mark.parametrize("name,value", WRONG_COMPILE, ids=[f"{n}={v!r}"[:40] for n, v in WRONG_COMPILE])
def test_compile_refuses_a_wrong_argument_by_name(no_work, name, value):
    kwargs = {"target": "energy", name: value}
    target = kwargs.pop("target")
    _refused(lambda: snncompile.compile(MODEL, target, **kwargs), name)


@pytest.mark.parametrize("value", [None, 3, [MODEL], "", b"model.pt", {}])
def test_every_entry_point_refuses_a_wrong_model(no_work, value):
    for call in (snncompile.compile, snncompile.inspect, api.trace):
        _refused(lambda call=call: call(value), "model")


def test_compile_refuses_unknown_keywords(no_work):
    with pytest.raises(SnnCompileError) as info:
        snncompile.compile(MODEL, "energy", step=8)
    assert info.value.message == "compile(): unknown keyword argument(s) step"
    assert info.value.hint.startswith("did you mean steps=?")


WRONG_INSPECT = [("passes", "binarize"), ("passes", ["nope"]), ("arch", 3), ("trust_pickle", None),
                 ("input_shape", "8,8"), ("masks", 3), ("nir_dt", -0.1), ("input", [1, 2])]


@pytest.mark.parametrize("name,value", WRONG_INSPECT, ids=[n for n, _ in WRONG_INSPECT])
def test_inspect_refuses_a_wrong_argument_by_name(no_work, name, value):
    _refused(lambda: snncompile.inspect(MODEL, **{name: value}), name)


WRONG_TRACE = [("arch", 3), ("trust_pickle", "no"), ("input_shape", [1, -8]), ("masks", 3), ("nir_dt", 0.0),
               ("data", np.zeros((2, 1, 8, 8)))]


@pytest.mark.parametrize("name,value", WRONG_TRACE, ids=[n for n, _ in WRONG_TRACE])
def test_trace_refuses_a_wrong_argument_by_name(no_work, name, value):
    _refused(lambda: api.trace(MODEL, **{name: value}), name)


def test_helpers_refuse_what_is_not_a_graph():
    _refused(lambda: api.layer_rows("model.pt"), "graph")


def test_negative_nir_dt_is_refused_for_a_nir_file(tmp_path):
    (tmp_path / "net.nir").write_bytes(b"")
    _refused(lambda: snncompile.compile(tmp_path / "net.nir", "energy", nir_dt=-0.001), "nir_dt")


# ---- the forms a model and an input can take --------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    data = np.load(DATA)
    return data["x"][:12], data["y"][:12]


@pytest.fixture(scope="module")
def from_file():
    return snncompile.compile(MODEL, "energy", input=DATA, samples=12)


def _same_report(a, b) -> None:
    assert a.steps == b.steps
    assert [(r.name, r.synapses, r.neurons) for r in a.layers] == [(r.name, r.synapses, r.neurons) for r in b.layers]
    assert a.energy.variants.snn.energy_pj == b.energy.variants.snn.energy_pj > 0
    assert a.energy.variants.ann.energy_pj == b.energy.variants.ann.energy_pj


def test_module_and_array_give_the_report_of_the_files(from_file, digits):
    module = load_model(MODEL).module
    module.train()
    rep = snncompile.compile(module, "energy", input=digits[0], steps=8)
    assert isinstance(rep, snncompile.Report) and rep.model == "<Sequential>"
    _same_report(rep, from_file)
    assert all(m.training for m in module.modules())   # the caller's module keeps its modes


def test_state_dict_with_a_factory_and_a_tensor(from_file, digits):
    module = load_model(MODEL).module

    def factory():
        import copy

        return copy.deepcopy(module)

    rep = snncompile.compile(module.state_dict(), "energy", arch=factory, input=torch.from_numpy(digits[0]), steps=8)
    assert rep.model == "<state_dict>"
    _same_report(rep, from_file)


def test_a_state_dict_without_a_factory_says_how(digits):
    with pytest.raises(SnnCompileError, match="state_dict") as info:
        snncompile.compile(load_model(MODEL).module.state_dict(), "energy")
    assert "arch=" in info.value.hint


def test_inputs_with_labels_and_sequences(from_file, digits):
    x, y = digits
    rep = snncompile.compile(MODEL, "energy", input=(x, y))
    _same_report(rep, from_file)
    seq = np.broadcast_to(x[None], (8, *x.shape))     # time-major [T, N, ...]
    _same_report(snncompile.compile(MODEL, "energy", input=torch.tensor(seq)), from_file)
    with pytest.raises(SnnCompileError, match="shape"):
        snncompile.compile(MODEL, "energy", input=x[:, :, :4])


def test_inspect_takes_a_module_and_an_input_for_its_shape(digits):
    module = load_model(MODEL).module
    rep = snncompile.inspect(module, input=digits[0])
    assert rep.target == "ir" and rep.layers[0].shape == (1, 8, 8)
    assert [r.name for r in rep.layers] == [r.name for r in snncompile.inspect(MODEL).layers]


# ---- layers named by the user's module paths ------------------------------------------------

def test_fixed_point_report_names_layers_by_module_path():
    """digits_scnn is an nn.Sequential: its neurons are modules 2, 5, 9 (IR neuron_2, …)."""
    from rich.console import Console

    from snncompile.render import _fixed_point

    rep = snncompile.compile(MODEL, "lava", input=DATA, samples=12, fixed_point=True)
    fx = rep.fixed_point
    ref = fx["integer_reference"]
    assert ref["per_layer_ir_names"] == {"2": "neuron_2", "5": "neuron_5", "9": "neuron_9"}
    per_layer = ref["per_layer_spike_agreement"]
    assert set(per_layer) == {"2", "5", "9"} and all(0.9 < a <= 1.0 for a in per_layer.values())
    rows = {e["projection"]: e["layer"] for e in fx["quantization"]["layers"]}
    assert rows["input→neuron_2"] == "input→2" and rows["neuron_2→neuron_5"] == "2→5"
    assert {d["layer"] for d in fx["quantization"]["neurons"].values()} >= {"2", "5", "9"}
    console = Console(record=True, width=200)
    _fixed_point(rep, console)
    text = console.export_text()
    assert "2→5 " in text and "neuron_2" not in text
    row = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("input→2"))
    assert f"{per_layer['2']:.4f}" in row   # the spike agreement column reads the module-path keys

"""Ray: sharded simulation equals the single-process run, a dead worker is retried once, a
sweep yields its table and chart, and without Ray the message says how to install it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from snncompile import api, parallel
from snncompile.cli import main
from snncompile.errors import SnnCompileError

ray = pytest.importorskip("ray")
# Under pytest-xdist every Ray test runs in one worker: two local Ray clusters on 2 cores would
# fight over ports and CPUs, and the module's shared session must stay in one process.
pytestmark = pytest.mark.xdist_group("ray")
ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def ray_session():
    """One local 2-CPU Ray shared by the tests that inject no faults (each start-up costs
    seconds); stopped at the end of the module."""
    ray.shutdown()
    parallel.start(2)
    yield
    ray.shutdown()


@pytest.fixture
def fresh_ray(monkeypatch):
    """A local 2-CPU Ray started by the test (with the environment the test sets, which Ray
    captures at start-up), then stopped. These tests run last in the module."""
    ray.shutdown()
    yield monkeypatch
    ray.shutdown()


def _digits(n: int):
    from snncompile import stages
    from snncompile.inputs import load_inputs

    loaded = stages.load(MODELS / "digits_scnn_ticket.pt")
    data = load_inputs(MODELS / "digits_test.npz", None).take(n)
    shape = stages.input_shape_of(None, loaded.meta, data, loaded.module)
    graph = stages.optimize(stages.trace(loaded, shape).graph).graph
    return stages.lower(graph), np.ascontiguousarray(data.as_sequence(int(loaded.meta["steps"])))


def _same(a, b) -> None:
    assert set(a.spikes) == set(b.spikes)
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k], err_msg=k)
    if a.output is not None:
        np.testing.assert_array_equal(a.output, b.output)


@pytest.mark.lava
def test_sharded_run_equals_single_process(ray_session):
    from backends.lava.target import LavaTarget

    net, x = _digits(45)
    single = LavaTarget().run(net, x, timeout_s=300)
    sharded = parallel.run_sharded("lava", net, x, workers=2, address=None, timeout_s=300)
    assert "ray ×2" in sharded.backend
    _same(single, sharded)
    for emit in ("stock",):  # Lava's own processes shard the same way
        _same(LavaTarget().run(net, x[:, :6], timeout_s=300, emit=emit),
              parallel.run_sharded("lava", net, x[:, :6], workers=2, address=None, timeout_s=300, emit=emit))


@pytest.mark.lava
def test_api_agreement_is_identical_with_workers(ray_session):
    kw = dict(input=MODELS / "digits_test.npz", samples=40, simulate_on_target=True)
    one = api.compile(MODELS / "digits_scnn.pt", **kw).simulation
    two = api.compile(MODELS / "digits_scnn.pt", workers=2, **kw).simulation
    assert two["workers"] == 2 and one["workers"] == 1
    for key in ("spike_agreement", "prediction_agreement", "accuracy", "per_layer_spike_agreement"):
        assert one[key] == two[key], key


def test_shards_cover_samples_in_order():
    assert parallel.shards(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert parallel.shards(2, 8) == [(0, 1), (1, 2)]
    assert parallel.shards(5, 1) == [(0, 5)]


def test_without_ray_the_message_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    code = main([str(MODELS / "digits_scnn.pt"), "--input", str(MODELS / "digits_test.npz"), "--simulate",
                 "--samples", "4", "--workers", "2", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 2 and "Ray" in doc["error"] and "pip install" in doc["hint"]


def test_workers_need_a_simulation(capsys):
    code = main([str(MODELS / "digits_scnn.pt"), "--workers", "2", "--json"])
    assert code == 2 and "nothing is simulated" in json.loads(capsys.readouterr().out)["error"]


SPEC = """
models = ["{models}/digits_scnn_ticket.pt", "{models}/digits_scnn_binw_ticket.pt", "bad.pt", "missing*.pt"]
input = "{models}/digits_test.npz"
samples = 30
passes = ["default", "none"]
precision = ["float"]
cost_models = ["45nm", "loihi"]
"""


@pytest.mark.lava
def test_sweep_table_chart_and_failed_cells(ray_session, monkeypatch, tmp_path, capsys):
    import torch
    from spikingjelly.activation_based import layer, neuron
    from torch import nn

    torch.save(nn.Sequential(layer.Linear(64, 10), neuron.IFNode()).state_dict(), tmp_path / "bad.pt")
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC.format(models=MODELS))
    monkeypatch.chdir(tmp_path)
    code = main(["sweep", str(spec), "-o", str(tmp_path / "out"), "--workers", "2", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 5 and doc["exit_code"] == 5 and "incomplete" in doc["error"]
    rows = doc["rows"]
    assert doc["cells"] == 3 * 2 and len(rows) == 3 * 2 * 2 + 1
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 * 2 * 2
    assert all(r["spike_agreement"] == 1.0 and 0.8 < r["accuracy"] <= 1.0 for r in ok)
    bad = [r for r in rows if r["status"] != "ok"]
    assert any("bad.pt" in r["model"] and "--arch" in r["error"] for r in bad)
    assert any(r["model"].startswith("missing") and "no file" in r["error"] for r in bad)
    # the pruned ticket uses fewer synapses than the same network compiled without passes
    by = {(Path(r["model"]).name, r["passes"], r["cost_model"]): r for r in ok}
    assert by[("digits_scnn_ticket.pt", "default", "45nm")]["synapses"] < \
        by[("digits_scnn_ticket.pt", "none", "45nm")]["synapses"]
    front = [rows[i] for i in doc["pareto"]]
    assert front and {r["cost_model"] for r in front} == {"45nm", "loihi"}
    out = tmp_path / "out"
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    csv_lines = (out / "sweep.csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1 and csv_lines[0].startswith("model,passes,precision")
    assert json.loads((out / "sweep.json").read_text())["complete"] is False


@pytest.mark.lava
def test_a_worker_that_dies_is_retried_once(fresh_ray, tmp_path):
    marker = tmp_path / "died-once"
    fresh_ray.setenv(parallel.KILL_ONCE_ENV, f"1:{marker}")
    net, x = _digits(20)
    run = parallel.run_sharded("lava", net, x, workers=2, address=None, timeout_s=300)
    assert marker.exists(), "the worker of shard 1 did not die"
    from backends.lava.target import LavaTarget

    _same(LavaTarget().run(net, x, timeout_s=300), run)


@pytest.mark.lava
def test_a_shard_that_fails_twice_makes_the_run_incomplete(fresh_ray):
    fresh_ray.setenv(parallel.KILL_ONCE_ENV, "0:")  # dies on every try
    net, x = _digits(10)
    with pytest.raises(SnnCompileError, match=r"1 of 2 shards failed after one retry.*incomplete.*shard 0"):
        parallel.run_sharded("lava", net, x, workers=2, address=None, timeout_s=300)

"""Sweeps and shards on Ray never hang (issue #27 item 6): a cell that blocks is cancelled at
its ``cell_timeout`` and becomes failed rows while the other cells finish; an unreachable
``--ray-address`` is refused within ``--ray-connect-timeout``."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from snncompile.cli import main
from snncompile.errors import EXIT_BACKEND, EXIT_USAGE, SnnCompileError
from snncompile.sweep import Cell, Spec, load_spec, run_sweep

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")   # one local Ray at a time under pytest-xdist
ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def blocking_arch():
    """An --arch factory that never returns: the cell that blocks."""
    time.sleep(3600)


def _refused_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_ray():
    """No Ray initialized in this process (start() joins nothing when one is)."""
    ray.shutdown()
    yield
    ray.shutdown()


def test_unreachable_address_is_refused_within_the_connect_timeout(no_ray, capsys):
    port = _refused_port()
    t0 = time.monotonic()
    code = main([str(MODELS / "digits_scnn.pt"), "--input", str(MODELS / "digits_test.npz"), "--simulate",
                 "--samples", "2", "--workers", "2", "--ray-address", f"127.0.0.1:{port}",
                 "--ray-connect-timeout", "1", "--json"])
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == EXIT_BACKEND and doc["exit_code"] == EXIT_BACKEND
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in doc["error"]
    assert "--ray-connect-timeout" in doc["hint"]
    assert time.monotonic() - t0 < 10 and not ray.is_initialized()   # refused before compiling


def test_an_address_that_accepts_but_never_answers_times_out():
    """Something listens there but is no Ray head (connections queue, nothing replies): Ray's
    client would retry for minutes; the join gives up at the timeout. Run in a child process,
    which must also exit promptly with the abandoned attempt in it."""
    import subprocess
    import sys

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code = ("import sys; from snncompile import parallel; from snncompile.errors import SnnCompileError\n"
                f"try: parallel.start(2, {address!r}, connect_timeout=2)\n"
                "except SnnCompileError as e: print(e.message); sys.exit(e.exit_code)")
        t0 = time.monotonic()
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == EXIT_BACKEND, run.stderr[-2000:]
    assert f"cannot reach the Ray cluster at {address} within 2 s" in run.stdout
    assert time.monotonic() - t0 < 60


def test_sweep_with_unreachable_address(no_ray, tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(f'models = ["{MODELS}/digits_scnn.pt"]\ninput = "{MODELS}/digits_test.npz"\n')
    code = main(["sweep", str(spec), "--ray-address", f"localhost:{_refused_port()}",
                 "--ray-connect-timeout", "1", "--json"])
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == EXIT_BACKEND and "cannot reach the Ray cluster" in doc["error"]


@pytest.mark.parametrize("value", ["0", "-1", '"soon"'])
def test_cell_timeout_in_the_spec_is_checked(tmp_path, value):
    spec = tmp_path / "s.toml"
    spec.write_text(f'models = ["{MODELS}/digits_scnn.pt"]\ninput = "{MODELS}/digits_test.npz"\n'
                    f"cell_timeout = {value}\n")
    with pytest.raises(SnnCompileError, match="cell_timeout") as info:
        load_spec(spec)
    assert info.value.exit_code == EXIT_USAGE


def test_cell_timeout_default_and_value(tmp_path):
    spec = tmp_path / "s.toml"
    base = f'models = ["{MODELS}/digits_scnn.pt"]\ninput = "{MODELS}/digits_test.npz"\n'
    spec.write_text(base + "timeout = 7200\n")
    assert load_spec(spec).cells[0].cell_timeout == 7800
    spec.write_text(base + "cell_timeout = 12.5\n")
    assert load_spec(spec).cells[0].cell_timeout == 12.5


def test_a_blocking_cell_is_cancelled_and_the_sweep_goes_on(no_ray, tmp_path, monkeypatch):
    import torch
    from spikingjelly.activation_based import layer, neuron
    from torch import nn

    monkeypatch.setenv("PYTHONPATH", str(ROOT))   # the Ray workers import this module for --arch
    torch.save(nn.Sequential(layer.Linear(4, 2), neuron.IFNode()).state_dict(), tmp_path / "block.pt")
    common = dict(passes="default", precision="float", cost_models=["45nm"], input=str(MODELS / "digits_test.npz"),
                  samples=2, steps=None, simulate=False, timeout=60.0)
    cells = [Cell(str(tmp_path / "block.pt"), arch=f"{__name__}:blocking_arch", cell_timeout=3.0, **common),
             Cell(str(MODELS / "digits_scnn.pt"), cell_timeout=600.0, **common)]
    t0 = time.monotonic()
    result = run_sweep(Spec(cells, tmp_path), workers=2)
    blocked, ok = result["rows"]
    assert blocked["status"] == "failed" and "did not finish within 3 s (cell_timeout)" in blocked["error"]
    assert ok["status"] == "ok" and ok["synapses"] > 0, ok
    assert result["complete"] is False and time.monotonic() - t0 < 300

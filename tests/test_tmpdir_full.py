"""A full TMPDIR during a Lava simulation (issue #27): one clear error naming the folder and
the cause, exit code 5, no traceback, and nothing left in TMPDIR — whether the write that
fails is the driver's (the job) or the worker's (the recorded spikes)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from snncompile.errors import EXIT_BACKEND, SnnCompileError

ROOT = Path(__file__).resolve().parents[1]
M, X = ROOT / "models" / "digits_scnn.pt", ROOT / "models" / "digits_test.npz"
# Loaded by the CLI's Python and by its Lava worker: the worker's reservation of its spike
# records finds the disk full, as posix_fallocate does on a full file system.
FULL_DISK = """
import errno, os

def _full(fd, offset, length):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

os.posix_fallocate = _full
"""


def _ours(tmp: Path) -> list[str]:
    return [p.name for p in tmp.iterdir() if p.name.startswith(("snncompile-lava-", "pymp-"))]


def test_full_tmpdir_when_writing_the_job(short_tmp, monkeypatch):
    tmp_path = short_tmp   # Lava's sockets need a short TMPDIR (pytest's tmp_path can be too long)
    import backends.lava.backend as backend

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from spikingjelly.activation_based import layer, neuron
    from torch import nn

    from snncompile.frontend import trace_model
    from snncompile.lower import lower

    plan = lower(trace_model(nn.Sequential(layer.Linear(8, 4), neuron.IFNode()), (8,)).graph)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(backend.pickle, "dump", full)
    with pytest.raises(SnnCompileError) as info:
        backend.run_lava(plan, np.ones((2, 3, 8)))
    exc = info.value
    assert exc.exit_code == EXIT_BACKEND
    assert exc.message == f"cannot write the Lava simulation's temporary files in {tmp_path}: No space left on device"
    assert "TMPDIR" in exc.hint
    assert _ours(tmp_path) == []


@pytest.mark.lava
def test_full_tmpdir_in_the_lava_worker(short_tmp):
    tmp_path = short_tmp   # Lava's sockets need a short TMPDIR (pytest's tmp_path can be too long)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FULL_DISK)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{site}", "TMPDIR": str(tmp)}
    run = subprocess.run([sys.executable, "-m", "snncompile", str(M), "--input", str(X), "--simulate", "--samples",
                          "2", "--steps", "2", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == EXIT_BACKEND and "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: cannot write the Lava simulation's temporary files in {tmp}: No space left on device (")
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    assert doc["exit_code"] == EXIT_BACKEND and "record_0.npy" in doc["error"] and "TMPDIR" in doc["hint"]
    assert _ours(tmp) == []

"""Process hygiene of Lava runs (issue #27 items 5 and 7): a worker killed with SIGKILL is
detected within seconds (not at --timeout); SIGTERM/SIGHUP to the CLI stops every child and
removes every temporary folder; a run that hits --timeout ends with exit 5. Every case checks
that no process of the worker's group and no file in TMPDIR is left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
M, X = str(ROOT / "models" / "digits_scnn.pt"), str(ROOT / "models" / "digits_test.npz")

pytestmark = pytest.mark.lava


def test_a_tmpdir_too_long_for_lavas_sockets_is_one_clear_error(tmp_path, monkeypatch):
    """Past 107 bytes Lava's shared-memory manager dies with an AttributeError: say so first."""
    import numpy as np

    from backends.lava.backend import run_lava
    from snncompile.errors import SnnCompileError
    from snncompile.frontend import trace_model
    from snncompile.lower import lower
    from tests.nets import conv_net

    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    net = lower(trace_model(conv_net("s"), (1, 8, 8)).graph)
    with pytest.raises(SnnCompileError, match="too long a path for Lava's Unix sockets") as e:
        run_lava(net, np.zeros((2, 1, 1, 8, 8)), timeout_s=30)
    assert "TMPDIR" in e.value.hint
    assert not [p for p in deep.iterdir() if p.name.startswith(("snncompile-lava-", "pymp-"))]   # nothing left


@pytest.fixture(autouse=True)
def _no_stray_run():
    """A failing case must not leave its CLI run behind."""
    started: list[subprocess.Popen] = []
    _STARTED.append(started)
    yield
    _STARTED.pop()
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


_STARTED: list[list[subprocess.Popen]] = []


def _start(tmp: Path, *extra: str, samples: int = 2, steps: int = 4, json_out: bool = True) -> subprocess.Popen:
    """The CLI simulating on Lava, whose worker stalls after its first batch with its Lava
    processes up (the worker's fault-injection switch): the run lasts until it is stopped."""
    from backends.lava.worker import STALL_ENV

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), STALL_ENV: "1"}
    proc = subprocess.Popen([sys.executable, "-m", "snncompile", M, "--input", X, "--simulate", "--samples",
                             str(samples), "--steps", str(steps), *(["--json"] if json_out else []), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _STARTED[-1].append(proc)
    return proc


def _worker(proc: subprocess.Popen, timeout: float = 300) -> int:
    """The pid of the CLI's Lava worker, once it has started its Lava processes."""
    cli_pid, end = proc.pid, time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, f"the run ended before its Lava worker was seen: {proc.communicate()}"
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == cli_pid and b"backends.lava.worker" in cmd:
                if _group_size(int(pid)) > 1:   # the runtime is up: its processes share the group
                    return int(pid)
        time.sleep(0.2)
    raise AssertionError("no Lava worker started")


def _group_size(pgid: int) -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getpgid(int(pid)) == pgid:
                    n += 1
            except OSError:
                pass
    return n


def _assert_clean(tmp: Path, pgid: int) -> None:
    end = time.monotonic() + 5
    while _group_size(pgid) and time.monotonic() < end:
        time.sleep(0.1)
    assert _group_size(pgid) == 0, "Lava processes left running"
    _assert_no_temp(tmp)


def _assert_no_temp(tmp: Path) -> None:
    """Ours and Lava's temporary folders are gone (torch may keep its compile cache there)."""
    left = [p.name for p in tmp.iterdir() if p.name.startswith(("pymp-", "snncompile-lava-"))]
    assert left == [], f"left in TMPDIR: {left}"


def test_worker_killed_is_detected_promptly(short_tmp):
    proc = _start(short_tmp, "--timeout", "600")
    worker = _worker(proc)
    os.kill(worker, signal.SIGKILL)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 30, "the dead worker was waited for"
    assert proc.returncode == 5 and "Traceback" not in err
    assert "Lava" in json.loads(out.strip().splitlines()[-1])["error"]
    _assert_clean(short_tmp, worker)
    assert _procs_in(short_tmp) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_stops_children_and_cleans_up(sig, short_tmp):
    proc = _start(short_tmp, "--timeout", "600")
    worker = _worker(proc)
    os.kill(proc.pid, sig)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 15, "the run took too long to stop"
    assert proc.returncode == 128 + sig and "Traceback" not in err
    assert json.loads(out.strip().splitlines()[-1])["exit_code"] == 128 + sig
    _assert_clean(short_tmp, worker)
    assert _procs_in(short_tmp) == []




def _procs_in(tmp: Path) -> list[int]:
    """Processes (other than a zombie) whose TMPDIR lies in ``tmp``: the CLI, its worker and
    everything Lava forked from it inherit it, whatever their group."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(e.startswith(b"TMPDIR=" + str(tmp).encode()) for e in env):
            found.append(int(pid))
    return found


def test_run_hitting_timeout(short_tmp):
    """The stalled worker (a hung runtime) makes --timeout fire, whatever the machine's load."""
    proc = _start(short_tmp, "--timeout", "4", json_out=False)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 5 and "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors == ["error: Lava simulation did not finish within 4 s (2 samples × 4 steps)"], err
    assert "--timeout" in err.split("hint:", 1)[1]
    assert time.monotonic() - t0 < 90
    end = time.monotonic() + 5
    while _procs_in(short_tmp) and time.monotonic() < end:
        time.sleep(0.1)
    assert _procs_in(short_tmp) == [], "processes of the run left behind"
    _assert_no_temp(short_tmp)


def _lava_groups(tmp: Path) -> list[int]:
    """Lava workers of the run (group leaders) whose runtime is up (more than one process)."""
    groups = []
    for pid in _procs_in(tmp):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"backends.lava.worker" in cmd and os.getpgid(pid) == pid and _group_size(pid) > 2:
                groups.append(pid)
        except OSError:
            pass
    return groups


def test_ctrl_c_during_workers_stops_every_child():
    """Ctrl-C as a terminal sends it (SIGINT to the whole foreground group) while two Ray shards
    each run a Lava worker: Ray kills its task processes, and each Lava worker's reaper then
    kills the Lava processes that Ray does not know of and removes their folder."""
    pytest.importorskip("ray")
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="snr", dir="/tmp"))   # short: Ray's socket paths live under it
    try:
        from backends.lava.worker import STALL_ENV

        env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), STALL_ENV: "1"}
        proc = subprocess.Popen([sys.executable, "-m", "snncompile", M, "--input", X, "--simulate", "--samples",
                                 "4", "--steps", "4", "--workers", "2", "--json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        _STARTED[-1].append(proc)
        end = time.monotonic() + 300
        while len(_lava_groups(tmp)) < 2:
            assert proc.poll() is None and time.monotonic() < end, f"no two Lava shards: {proc.communicate()}"
            time.sleep(0.5)
        time.sleep(2)   # both runtimes stalled after their first batch
        before = len(_procs_in(tmp))
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 20, "the run took too long to stop"
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert json.loads(out.strip().splitlines()[-1])["exit_code"] == 130
        end = time.monotonic() + 10
        while _procs_in(tmp) and time.monotonic() < end:
            time.sleep(0.2)
        left = _procs_in(tmp)
        assert left == [], f"{len(left)} of {before} processes left running"
        _assert_no_temp(tmp)
    finally:
        for pid in _procs_in(tmp):   # a failing case must not leave Ray or Lava behind
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)

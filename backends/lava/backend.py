"""Run a Netlist on Lava in a child process, with progress and a hard timeout.

Lava forks one OS process per Lava process; an exception in one of them often hangs the
whole runtime instead of raising. Running it in our own child process (its own session)
lets us kill the entire tree on timeout and always return control to the CLI.
"""

from __future__ import annotations

import os
import pickle
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.lava.dynamics import SJ_PARAMS
from backends.lava.standard import standard_specs
from backends.lava.worker import OS_ERROR_EXIT, OS_ERROR_TAG
from snncompile.errors import EXIT_BACKEND, SnnCompileError
from snncompile.netlist import (
    OUTPUT,
    Netlist,
    NeuronPopulation,
)
from snncompile.netlist.netlist import refuse_delays, refuse_dynamics


@dataclass
class LavaRun:
    spikes: dict[str, np.ndarray]   # population → [T, N, size]
    output: np.ndarray | None       # value readout [T, N, size], if the plan has one
    wall_s: float                   # simulation wall time inside the worker
    steps: int                      # Lava time steps executed
    peak_mb: float = 0.0            # worker's peak RSS above its RSS after imports (the network's memory)


def _require_lava() -> None:
    """Lava runs in a worker process: say it is missing here, not in the worker's traceback."""
    import importlib.util

    if importlib.util.find_spec("lava") is None:
        raise ModuleNotFoundError("No module named 'lava'", name="lava")


def _kill(proc: subprocess.Popen) -> None:
    try:   # the whole group: the worker's Lava processes outlive a worker killed on its own
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a run: unwinds like Ctrl-C, so the worker's process group is
    killed and the temporary folder removed (the default action would exit on the spot)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _signals_unwind() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


EMISSIONS = ("fused", "stock", "loihi")


def _refuse_for(plan: Netlist, emit: str) -> None:
    """Name what ``emit`` cannot build before a worker starts."""
    if emit == "loihi":
        standard_specs(plan)   # refuses by name what standard processes cannot run
    if emit == "stock":
        refuse_dynamics(plan, SJ_PARAMS)
        refuse_delays(plan, "the stock Lava emission (one step of latency per synapse hop, so a loop would "
                      "run late)", "use --emit fused")


def _temp_error(exc: OSError, where: Path) -> SnnCompileError:
    return SnnCompileError(f"cannot write the Lava simulation's temporary files in {where}: "
                           f"{exc.strerror or exc}",
                           "free space there, or point TMPDIR at a writable folder with room (the job, its "
                           "inputs and the recorded spikes go there)", EXIT_BACKEND)


SOCKET_PATH_MAX = 107   # Unix socket path bytes (Linux sun_path, less its NUL)
SOCKET_SUFFIX = 33      # /pymp-XXXXXXXX/listener-XXXXXXXX that Lava's runtime adds


@contextmanager
def _job_folder() -> Iterator[Path]:
    """A fresh folder in TMPDIR for one run, removed whatever happens."""
    try:
        tmp = tempfile.mkdtemp(prefix="snncompile-lava-")
    except OSError as exc:
        raise _temp_error(exc, Path(tempfile.gettempdir())) from None
    # Lava's runtime listens on a Unix socket at <tmp>/pymp-XXXXXXXX/listener-XXXXXXXX: past
    # the kernel's 107-byte limit its shared-memory manager fails with an AttributeError
    if len(os.fsencode(tmp)) + SOCKET_SUFFIX > SOCKET_PATH_MAX:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SnnCompileError(f"the temporary folder {tempfile.gettempdir()} has too long a path for Lava's "
                              f"Unix sockets (at most {SOCKET_PATH_MAX - SOCKET_SUFFIX - 25} characters)",
                              "set TMPDIR to a shorter folder, e.g. TMPDIR=/tmp", EXIT_BACKEND)
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_lava(plan: Netlist, x: np.ndarray, record: list[str] | None = None,
             timeout_s: float = 600.0, progress: Callable[[int, int], None] | None = None,
             emit: str = "fused", batch: int | None = None) -> LavaRun:
    """Simulate ``plan`` on x [T, N, *input_shape]; record spikes of ``record`` populations.

    ``emit="fused"``: one process per population, batches of samples at once
    (``backends.lava.fused``); ``"stock"``: Lava's own Dense/Sparse/Conv processes, one
    sample after another (``backends.lava.network``), the reference to compare against;
    ``"loihi"``: a quantized netlist on Lava's standard processes only (LIFReset neurons,
    ``backends.lava.standard``), what could go to a Loihi 2 chip.
    """
    if emit not in EMISSIONS:
        raise ValueError(f"unknown Lava emission {emit!r}")
    if record is None:
        record = [n for n, p in plan.populations.items() if isinstance(p, NeuronPopulation)]
        if plan.output_pop is not None and plan.output_pop not in record:   # e.g. a delay read by the output
            record.append(plan.output_pop)
    _refuse_for(plan, emit)
    _require_lava()
    T, N = x.shape[:2]
    with _signals_unwind(), _job_folder() as job:
        tmp = str(job)
        try:
            with open(job / "job.pkl", "wb") as fh:
                pickle.dump({"plan": plan, "x": np.asarray(x, np.float64), "record": record, "emit": emit,
                             "batch": batch}, fh)
        except OSError as exc:
            raise _temp_error(exc, job.parent) from None
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        env["TMPDIR"] = tmp   # Lava's pymp-* folders go inside ours: removed with it, whatever happens
        proc = subprocess.Popen([sys.executable, "-m", "backends.lava.worker", str(job)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                start_new_session=True, text=True)
        deadline = time.monotonic() + timeout_s
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        err_chunks: list[str] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    _kill(proc)
                    raise SnnCompileError(
                        f"Lava simulation did not finish within {timeout_s:.0f} s "
                        f"({N} samples × {T} steps)",
                        "simulate fewer samples (--samples) or raise --timeout; a Lava child "
                        "process may have failed silently (rerun with --debug)", EXIT_BACKEND)
                if (job / "errors.txt").exists():  # a process model failed; Lava would hang
                    _kill(proc)
                    lines = [ln for ln in (job / "errors.txt").read_text().splitlines() if ln.strip()]
                    raise SnnCompileError(f"a Lava process failed: {lines[-1] if lines else 'unknown error'}",
                                          "rerun with --debug for the full log; this is a bug in the "
                                          "fused emission: --emit stock runs Lava's own processes",
                                          EXIT_BACKEND)
                if not sel.select(timeout=min(left, 1.0)):
                    if proc.poll() is not None:
                        break
                    continue
                line = proc.stdout.readline()
                if not line:
                    break
                parts = line.split()
                if parts[:1] == ["progress"] and progress:
                    progress(int(parts[1]), int(parts[2]))
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            _kill(proc)   # a worker that died (even by SIGKILL) leaves Lava processes holding the pipes
            err_chunks.append(proc.stderr.read())
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise SnnCompileError(f"Lava simulation timed out after {timeout_s:.0f} s",
                                  "raise --timeout or simulate fewer samples", EXIT_BACKEND) from None
        except BaseException:
            _kill(proc)
            raise
        finally:
            sel.close()
        return _result(plan, job, proc.returncode, "".join(err_chunks))


def _result(plan: Netlist, job: Path, code: int, stderr: str) -> LavaRun:
    """The worker's result file, or the reason it wrote none."""
    result = job / "result.npz"
    if code == OS_ERROR_EXIT:
        line = next((ln for ln in stderr.splitlines() if ln.startswith(OS_ERROR_TAG)), "")
        raise _temp_error(OSError(line[len(OS_ERROR_TAG):].strip() or "a write failed"), job.parent)
    if code != 0 or not result.exists():
        tail = [ln for ln in stderr.strip().splitlines() if ln.strip() and "Triton" not in ln][-3:]
        raise SnnCompileError("the Lava simulation failed: " + (" | ".join(tail) or f"exit code {code}"),
                              "rerun with --debug for the full log; check that lava-nc "
                              "0.10.0 is installed (make venv)", EXIT_BACKEND)
    with np.load(result, allow_pickle=False) as data:
        spikes = {k: data[k] if plan.populations[k].graded else data[k].astype(np.uint8)
                  for k in data.files if not (k == OUTPUT or k.startswith("__"))}
        output = data[OUTPUT] if OUTPUT in data.files else None
        return LavaRun(spikes, output, float(data["__wall_s__"]), int(data["__steps__"]),
                       float(data["__peak_mb__"]))

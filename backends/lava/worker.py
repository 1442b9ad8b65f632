"""Child process that runs one Lava simulation: ``python -m backends.lava.worker JOB``.

JOB is a directory holding job.pkl (written by our own parent process). Progress lines
``progress DONE TOTAL`` go to stdout; the result is written to JOB/result.npz.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

# Fault injection for the tests: when set, the worker stops answering after its first batch,
# with its Lava processes up, as a hung runtime does (the parent's --timeout must end the run).
STALL_ENV = "SNNCOMPILE_LAVA_STALL"
# A file the worker could not write (full or read-only TMPDIR): this exit code and a stderr line.
OS_ERROR_EXIT, OS_ERROR_TAG = 75, "snncompile-worker-oserror:"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries that over
    exec from the forked copy of the parent, so a worker started by a large driver reported
    the driver's size (264 MB for a 42 MB run)."""
    with open("/proc/self/status") as fh:
        line = next(ln for ln in fh if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _alive(pid: int) -> bool:
    """Running (a zombie is dead: its parent just has not reaped it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _start_reaper(job: Path) -> int:
    """Fork a reaper into our group: if this worker dies without saying "done" on the returned
    pipe (SIGKILL, e.g. Ray killing a cancelled task's children), it kills the whole group, and
    removes the job folder when our parent is gone too. A thread would die with the worker, and
    Lava's processes, forked into our group, outlive it otherwise."""
    leader, parent = os.getpid(), os.getppid()
    r, w = os.pipe()
    if os.fork():
        os.close(r)
        return w
    os.close(w)
    os.set_blocking(r, False)
    while os.getppid() == leader:
        try:
            if os.read(r, 4) == b"done":
                os._exit(0)
        except BlockingIOError:
            pass
        time.sleep(0.3)
    _kill_group_but_me()
    end = time.monotonic() + 5   # a killer (Ray) may kill our parent just after the worker
    while time.monotonic() < end:
        if not _alive(parent):   # nobody else will remove it
            shutil.rmtree(job, ignore_errors=True)
            break
        time.sleep(0.2)
    os._exit(1)


def _kill_group_but_me() -> None:
    me, group = os.getpid(), os.getpgid(0)
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            try:
                if os.getpgid(int(name)) == group:
                    os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass


def main(job_dir: str) -> int:
    job = Path(job_dir)
    # only as a group leader (run_lava starts us so): then the group is ours alone to kill
    reaper = _start_reaper(job) if os.getpgid(0) == os.getpid() else None
    with open(job / "job.pkl", "rb") as fh:
        spec = pickle.load(fh)  # our own file, written by the parent a moment ago
    stall = bool(os.environ.get(STALL_ENV))

    def progress(done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)
        while stall:   # never returns: Lava's processes stay up, waiting on this one
            time.sleep(3600)

    # imports before the clock and the memory baseline (as backends.netx.run): both count the run
    fused = spec.get("emit", "fused") == "fused"
    if fused:
        from backends.lava.fused import batch_size, lava_runs, run_fused
    else:
        from backends.lava.network import run_plan
    t0, base = time.perf_counter(), _rss_mb()
    T, N = spec["x"].shape[:2]
    if fused:
        # every stage of a staged run (window hosts) steps all T steps of every batch again
        steps = T * -(-N // (spec.get("batch") or batch_size(spec["plan"], N))) * lava_runs(spec["plan"])
        out = run_fused(spec["plan"], spec["x"], spec["record"], job, progress, spec.get("batch"), release=True)
    else:
        out = run_plan(spec["plan"], spec["x"], spec["record"], progress, spec.get("emit", "stock"))
        steps = T * N + spec["plan"].depth
    tmp = job / "result.tmp.npz"
    np.savez(tmp, **{k: v for k, v in out.items()}, __wall_s__=np.array(time.perf_counter() - t0),
             __steps__=np.array(steps),
             __peak_mb__=np.array(peak_rss_mb() - base))
    os.replace(tmp, job / "result.npz")
    if reaper is not None:
        os.write(reaper, b"done")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except OSError as exc:   # a full or read-only TMPDIR: one line for the parent to report
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{OS_ERROR_TAG} {exc.strerror or exc}{where}", file=sys.stderr, flush=True)
        sys.exit(OS_ERROR_EXIT)

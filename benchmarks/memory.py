"""Memory of a process and of the processes it starts, read from Linux's /proc (benchmarks only).

Lava forks one runtime process per Lava process, and the compile benchmark runs each
measurement in a child: a process's own RSS misses what its descendants hold, so the
benchmarks measure the whole tree.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def status_kb(key: str, pid: int | str = "self") -> int:
    """A ``/proc/PID/status`` field in kB (``VmRSS``, ``VmHWM`` …); 0 where absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from each process's parent in /proc/PID/stat)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and its descendants (0 for a process that is gone)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            total += status_kb("VmRSS", p) * 1024
        except (OSError, ValueError):
            continue
    return total


def pss_mb(pids: list[int]) -> float:
    """Proportional set size (shared pages split between sharers) summed over ``pids``, in MB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class TreeMemory:
    """Peak PSS summed over every process this one starts while the block runs (sampled every
    50 ms): e.g. a Lava worker and all its Lava processes."""

    def __enter__(self) -> TreeMemory:
        self.peak, self._stop = 0.0, threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, pss_mb(descendants(os.getpid())))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

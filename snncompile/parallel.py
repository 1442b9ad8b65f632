"""Samples simulated in shards on Ray: one actor per worker holds the compiled network.

Samples are independent, so ``--workers N`` splits them into N contiguous shards; Ray task
k receives the netlist (put in Ray's object store once) and its shard, builds the network
once on its worker and simulates the shard on the target; the shards are merged back in
sample order. Without ``--ray-address`` Ray starts on this machine (embedded); with one it
joins that cluster. A task whose worker process dies is retried once (``max_retries=1``); a
shard that fails again ends the run with its reason: partial results are never presented
as complete. An error the target raises (e.g. a timeout) is not retried.

Ray is optional: :func:`ray_module` says how to install it when it is missing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from snncompile.errors import EXIT_BACKEND, EXIT_USAGE, SnnCompileError
from snncompile.netlist import Netlist
from snncompile.netlist.target import TargetRun

INSTALL_HINT = "install Ray (pip install 'ray==2.60.0'; `make venv` does), or drop --workers"
# Fault injection for the tests: "SHARD:MARKER" makes the worker running shard SHARD die once
# (it creates MARKER first, so the retry runs normally); "SHARD:" makes it die every time.
KILL_ONCE_ENV = "SNNCOMPILE_KILL_SHARD_ONCE"


def ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise SnnCompileError("--workers and sweep run on Ray, which is not installed", INSTALL_HINT,
                              EXIT_USAGE) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a Ray address (``ray://`` too), or None for ``auto``/``local``."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float) -> None:
    """Fail within ``timeout_s`` when nothing listens at ``address``: Ray's own client retries
    an unreachable head for minutes."""
    import socket

    where = _host_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=timeout_s).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise SnnCompileError(f"cannot reach the Ray cluster at {address} within {timeout_s:g} s ({reason})",
                              "check --ray-address (ray status on the head node) and the network, raise "
                              "--ray-connect-timeout, or run without --ray-address", EXIT_BACKEND) from None


def start(workers: int | None, address: str | None = None, connect_timeout: float = 30.0) -> Any:
    """Start Ray on this machine (``workers`` CPUs) or join the cluster at ``address``
    (refused when it does not answer within ``connect_timeout`` seconds)."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    if address:
        probe(address, connect_timeout)
    env = {k: v for k, v in os.environ.items() if k in (KILL_ONCE_ENV, "PYTHONPATH")}
    runtime_env = {"env_vars": env} if env else None
    try:
        if address:
            _join(ray, address, runtime_env, connect_timeout)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     runtime_env=runtime_env, logging_level=logging.ERROR)
    except SnnCompileError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection and start-up failures of every kind
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SnnCompileError(f"could not start or join {where}: {type(exc).__name__}: {exc}",
                              "check --ray-address (ray status on the head node), or run without it",
                              EXIT_BACKEND) from None
    return ray


def _join(ray: Any, address: str, runtime_env: dict | None, timeout_s: float) -> None:
    """``ray.init(address)`` bounded in time: something that accepts connections but is not a
    Ray head makes Ray's client retry for minutes. The attempt runs in a daemon thread, which
    is abandoned (it does not keep the process alive) when it overruns."""
    import threading

    failure: list[BaseException] = []

    def attempt() -> None:
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=attempt, name="ray-join", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise SnnCompileError(f"cannot reach the Ray cluster at {address} within {timeout_s:g} s (no answer "
                              "from a Ray head there)",
                              "check --ray-address (ray status on the head node) and the network, raise "
                              "--ray-connect-timeout, or run without --ray-address", EXIT_BACKEND)
    if failure:
        raise failure[0]


def shards(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous [lo, hi) ranges covering ``n`` samples (none empty)."""
    k = max(1, min(k, n))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _run_shard(target: str, net: Netlist, index: int, x: np.ndarray, timeout_s: float,
               emit: str | None) -> TargetRun:
    """One shard on one worker (a Ray task): the worker builds the network once, for its shard."""
    _maybe_die(index)
    import backends  # noqa: F401  (registers the targets in this worker)
    from snncompile.netlist.target import get

    return get(target).run(net, x, timeout_s=timeout_s, emit=emit)


def _maybe_die(index: int) -> None:
    spec = os.environ.get(KILL_ONCE_ENV, "")
    if ":" in spec:
        shard, marker = spec.split(":", 1)
        if int(shard) == index and not (marker and os.path.exists(marker)):
            if marker:
                open(marker, "w").close()
            os._exit(1)  # the process dies as a crashed worker would


def run_sharded(target: str, net: Netlist, x: np.ndarray, *, workers: int, address: str | None,
                timeout_s: float, emit: str | None = None,
                progress: Callable[[int, int], None] | None = None, connect_timeout: float = 30.0) -> TargetRun:
    """Simulate x [T, N, ...] in ``workers`` shards on Ray; merged like a single run."""
    ray = start(workers, address, connect_timeout)
    parts = shards(x.shape[1], workers)
    task = ray.remote(max_retries=1, retry_exceptions=False, num_cpus=1)(_run_shard)
    net_ref = ray.put(net)  # shipped to each worker once
    t0 = time.perf_counter()
    pending = {task.remote(target, net_ref, i, np.ascontiguousarray(x[:, lo:hi]), timeout_s, emit): i
               for i, (lo, hi) in enumerate(parts)}
    results: dict[int, TargetRun] = {}
    failed: dict[int, str] = {}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=max(1.0, timeout_s))
            if not done:
                raise SnnCompileError(f"sharded simulation did not finish within {timeout_s:.0f} s",
                                      "raise --timeout or use more --workers", EXIT_BACKEND)
            ref = done[0]
            i = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task's own error or a dead worker
                failed[i] = _reason(exc)
            if progress:
                progress(len(results) + len(failed), len(parts))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    if failed:
        detail = "; ".join(f"shard {i} (samples {parts[i][0]}–{parts[i][1] - 1}): {why}"
                           for i, why in sorted(failed.items()))
        raise SnnCompileError(f"{len(failed)} of {len(parts)} shards failed after one retry, so the "
                              f"simulation is incomplete: {detail}",
                              "rerun; if a shard keeps failing, run without --workers to see its error",
                              EXIT_BACKEND)
    runs = [results[i] for i in range(len(parts))]
    spikes = {k: np.concatenate([r.spikes[k] for r in runs], axis=1) for k in runs[0].spikes}
    output = None if runs[0].output is None else np.concatenate([r.output for r in runs], axis=1)
    return TargetRun(spikes, output, time.perf_counter() - t0, max(r.steps for r in runs),
                     f"{runs[0].backend} on ray ×{len(parts)}", runs[0].emission)


def _reason(exc: Exception) -> str:
    from snncompile.errors import SnnCompileError as Err

    cause = getattr(exc, "cause", None)
    if isinstance(cause, Err):
        return cause.message
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]

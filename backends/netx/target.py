"""The netx target: writes the compiled network as a lava-dl netx HDF5 file (``model.net``,
fixed point under netx's rules) and, with ``--simulate``, runs that file with lava-dl's own
loader on Lava's CPU backend (fixed_pt) in a child process under the timeout."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snncompile.errors import EXIT_BACKEND, EXIT_USAGE, SnnCompileError
from snncompile.netlist import FixedNetlist, Netlist
from snncompile.netlist.target import TargetRun
from snncompile.targets import TARGETS as SPECS


def _fixed(net: Netlist) -> FixedNetlist:
    if not isinstance(net, FixedNetlist):   # pragma: no cover - the API quantizes first (fixed point implied)
        raise SnnCompileError("the netx target needs the fixed-point netlist", "pass --fixed-point", EXIT_USAGE)
    return net


class NetxTarget:
    name = "netx"
    emissions = SPECS["netx"].emissions

    def emit(self, net: Netlist) -> dict[str, bytes]:
        from backends.netx.export import netx_bytes

        return {"model.net": netx_bytes(_fixed(net))}

    def describe(self, net: Netlist, steps: int) -> dict:
        """How to feed and read the file (for the report)."""
        from backends.netx.export import layout
        from backends.netx.run import INPUT_MESSAGE_BITS, RESET_OFFSET

        q = _fixed(net)
        lay = layout(q)
        return {"blocks": [b.kind for b in lay.blocks], "latency_steps": lay.latency,
                "input_scale": q.input_scale, "input": "round(x * input_scale), graded",
                "input_layout": "(W, H, C, T)" if lay.conv_input else "(features, T), C-order flattened",
                "network_args": {"input_message_bits": INPUT_MESSAGE_BITS, "reset_interval": steps,
                                 "reset_offset": RESET_OFFSET},
                "output": f"last block's spikes, {lay.latency} steps after their input step"}

    def run(self, net: Netlist, x: np.ndarray, *, timeout_s: float,
            progress: Callable[[int, int], None] | None = None, emit: str | None = None) -> TargetRun:
        q = _fixed(net)
        job = run_job(q, x, timeout_s)
        if progress:
            progress(x.shape[1], x.shape[1])
        return TargetRun({q.output_pop: job.spikes}, None, job.wall_s, x.shape[0] * x.shape[1] + job.latency,
                         "lava-dl-netx-cpu-fixed_pt", "hdf5")


@dataclass
class NetxJob:
    """A finished netx run: output spikes [T, N, size], its wall time and peak memory in the child."""

    spikes: np.ndarray
    wall_s: float
    peak_mb: float
    latency: int


def run_job(q: FixedNetlist, x: np.ndarray, timeout_s: float) -> NetxJob:
    """Write ``q``'s netx file and run it on x [T, N, ...] (floats) in a child process."""
    from backends.netx.export import write
    from snncompile.sim.kernels import input_values

    with tempfile.TemporaryDirectory(prefix="snncompile-netx-") as tmp:
        job = Path(tmp)
        lay = write(q, job / "model.net")
        x_int = input_values(q, x).reshape(x.shape)
        with open(job / "job.pkl", "wb") as fh:
            pickle.dump({"x": x_int, "conv_input": lay.conv_input, "latency": lay.latency}, fh)
        try:
            done = subprocess.run([sys.executable, "-m", "backends.netx.run", str(job)], capture_output=True,
                                  text=True, timeout=timeout_s, cwd=str(Path(__file__).resolve().parents[2]))
        except subprocess.TimeoutExpired:
            raise SnnCompileError(f"the netx run on Lava took longer than {timeout_s:g} s",
                                  "pass a larger --timeout, or fewer --samples", EXIT_BACKEND) from None
        if done.returncode != 0 or not (job / "result.npz").exists():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SnnCompileError(f"the netx run on Lava failed: {last}", "rerun with --debug", EXIT_BACKEND)
        res = np.load(job / "result.npz")
        return NetxJob(res["spikes"], float(res["__wall_s__"]), float(res["__peak_mb__"]), lay.latency)

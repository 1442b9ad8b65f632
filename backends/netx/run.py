"""Run a netx file with lava-dl's own loader on Lava's CPU backend (fixed_pt), the samples
back to back in one network: inputs are graded integers ``round(x·input_scale)`` fed to the first block,
output spikes are read ``latency`` steps later (one step per synapse block).

Also ``python -m backends.netx.run JOB`` (a child process, as the Lava target runs Lava: a
failing Lava child can hang, so the parent holds a timeout).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

INPUT_MESSAGE_BITS = 24   # graded input: the first synapse computes W·x on the integers
RESET_OFFSET = 1          # block k resets at time step 2 + k (Lava counts from 1; one step per synapse)


def frames(x_int: np.ndarray, conv_input: bool) -> np.ndarray:
    """One sample's inputs [T, *shape] (C, H, W order) → netx's input layout [*inp, T]:
    (W, H, C, T) for a conv-first file, (features, T) otherwise."""
    T = x_int.shape[0]
    if conv_input:
        return np.ascontiguousarray(x_int.transpose(3, 2, 1, 0))
    return np.ascontiguousarray(x_int.reshape(T, -1).T)


def run_file(path: str | Path, x_int: np.ndarray, *, conv_input: bool, latency: int,
             progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Output spikes [T, N, out size] (C, H, W order flattened) of the netx file at ``path``
    on integer inputs ``x_int`` [T, N, *shape].

    One network runs the samples back to back, as netx intends: ``reset_interval=T`` makes
    every neuron a ``LIFReset`` that zeroes u and v at the step its first input of a sample
    arrives (block k at step 2 + k, ``reset_offset=1``), so no neuron integrates its bias
    before the sample reaches it. Output step t of sample n is read at n·T + t + latency.
    """
    from backends.lava import compat

    hdf5 = compat.import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    T, N = x_int.shape[:2]
    steps = N * T + latency
    net = hdf5.Network(net_config=str(path), input_message_bits=INPUT_MESSAGE_BITS, reset_interval=T,
                       reset_offset=RESET_OFFSET)
    data = np.concatenate([frames(x_int[:, n], conv_input) for n in range(N)], axis=-1)
    src = Source(data=np.concatenate([data, np.zeros((*data.shape[:-1], latency), data.dtype)], axis=-1))
    sink = Sink(shape=net.out.shape, buffer=steps)
    src.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = sink.data.get()
    finally:
        net.stop()
    spikes = np.moveaxis(got, -1, 0)[latency:]                        # [N·T, *out shape]
    if spikes.ndim == 4:                                              # (W, H, C) → (C, H, W)
        spikes = spikes.transpose(0, 3, 2, 1)
    if progress:
        progress(N, N)
    return spikes.reshape(N, T, -1).transpose(1, 0, 2).astype(np.int64)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(job_dir: str) -> int:
    job = Path(job_dir)
    with open(job / "job.pkl", "rb") as fh:
        spec = pickle.load(fh)  # our own file, written by the parent a moment ago
    from backends.lava import compat
    from backends.lava.worker import peak_rss_mb

    compat.import_netx()   # imports before the baseline: the peak counts the run, as the Lava worker's does
    import lava.proc.io.sink  # noqa: F401
    import lava.proc.io.source  # noqa: F401

    t0 = time.perf_counter()
    base = _rss_mb()
    out = run_file(job / "model.net", spec["x"], conv_input=spec["conv_input"], latency=spec["latency"],
                   progress=lambda d, t: print(f"progress {d} {t}", flush=True))
    tmp = job / "result.tmp.npz"
    np.savez(tmp, spikes=out, __wall_s__=np.array(time.perf_counter() - t0),
             __peak_mb__=np.array(peak_rss_mb() - base))
    os.replace(tmp, job / "result.npz")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

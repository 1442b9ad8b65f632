"""The fused process: the whole network in one Lava process, a batch of samples at once.

The stock emission builds one process per projection and one per population, and streams
samples one after another. Here one process owns every population's
:class:`snncompile.sim.kernels.Kernel` (the synapses of every projection into it, its neuron
parameters and state) and steps them all on a batch of samples, in
:func:`snncompile.sim.kernels.step_order` within each Lava time step:

- step t of a population sees step t of its sources (no hop latency, no delays needed); a
  delay population emits its drive of ``steps`` ago before anything steps and stores this
  step's drive after, so a recurrent loop closes without waiting;
- batch b of the input occupies Lava steps ``b·T + 1 … (b+1)·T``; state resets at each
  batch's first step;
- the input is read from a memory-mapped ``.npy`` file and what is recorded is written
  straight into memory-mapped files, read once after the run: the process has no ports.

One process instead of one per population: Lava forks an OS process per Lava process and
builds channels and semaphores for each, which cost more than the arithmetic on networks of
this size (digits: 0.6 s of a 1 s run), and every forked process copies the parent's pages
it touches (≈ 30–100 MB of PSS each on the CIFAR ticket).
"""

from __future__ import annotations

from lava.magma.core.process.process import AbstractProcess


class FusedNetwork(AbstractProcess):
    """Every population's kernel (proc param ``kernels``, in step order), fed by ``feeds``
    ({population: path of a [T, N, n] ``.npy`` file}: the input population, or in a staged run
    the values of an earlier stage); ``records``: {population: path of a [T, N, size] ``.npy``
    file} written as the run goes."""

    def __init__(self, *, batch: int, steps: int, samples: int, feeds: dict[str, str], kernels: list,
                 records: dict[str, str], errors: str = "errors.txt", name: str | None = None) -> None:
        super().__init__(batch=batch, steps=steps, samples=samples, feeds=feeds, kernels=kernels,
                         records=records, errors=errors, name=name)

"""Fused processes: one Lava process per population, its incoming synapses inside it.

The stock emission builds one process per projection and one per population, and streams
samples one after another. Here each population is a single process that owns a
:class:`snncompile.sim.kernels.Kernel` (the synapses of every projection into it, its
neuron parameters and state) and steps a whole batch of samples at once:

- ``in_k`` ports carry the current outputs ``[B, size]`` of its k-th source population
  (spikes as uint8, graded values as float64 or int32), ``out`` carries its own;
- every process receives its inputs, steps, then sends, all in the same Lava time step, so
  step t of a population sees step t of its sources (no hop latency, no delays needed);
  a delay population sends first (its drive of ``steps`` ago), then receives: a recurrent
  loop passes through one, so no process waits on one that waits on it;
- batch b of the input occupies Lava steps ``b·T + 1 … (b+1)·T``; state resets at each
  batch's first step;
- each process writes what is recorded straight into a memory-mapped file (no per-step
  messages back to the host), read once after the run.
"""

from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess


class _Fused(AbstractProcess):
    def __init__(self, *, batch: int, size: int, steps: int, samples: int, in_sizes: tuple[int, ...] = (),
                 has_out: bool = True, record: str | None = None, errors: str = "errors.txt",
                 name: str | None = None, **params) -> None:
        super().__init__(batch=batch, size=size, steps=steps, samples=samples, record=record,
                         in_sizes=tuple(in_sizes), has_out=has_out, errors=errors, name=name, **params)
        for k, n in enumerate(in_sizes):
            setattr(self, f"in_{k}", InPort(shape=(batch, n)))
        if has_out:
            self.out = OutPort(shape=(batch, size))


class FusedSource(_Fused):
    """Sends batch rows of the input (proc param ``data``: path of a [T, N, n] .npy file)."""


class FusedSpiking(_Fused):
    """A neuron (or OR) population with its incoming synapses; sends spikes (uint8)."""


class FusedGraded(_Fused):
    """A product population or the value readout; sends real values (or none: readout)."""

"""Lava backend: IR → Lava processes (RingBuffer, Sparse/DelaySparse, SJNeuron), run on
Lava's CPU backend (Loihi2SimCfg, floating_pt) in a child process under a timeout."""

from backends.lava.backend import LavaRun, run_lava

__all__ = ["LavaRun", "run_lava"]

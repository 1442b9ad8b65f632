"""How the source model shows a neuron that is not a module of its own."""

from __future__ import annotations


class SpikeTap(str):
    """Where a neuron written inline in forward() came from (a ``str``: the code location and
    parameters, for reports), with the module that receives its spikes (``module``, None if
    none does): those spikes are recorded as that module's input."""

    module: str | None

    def __new__(cls, label: str, module: str | None = None) -> SpikeTap:
        tap = super().__new__(cls, label)
        tap.module = module
        return tap

    def __reduce__(self):   # pickles (ray workers) as a SpikeTap, not as a plain str
        return SpikeTap, (str(self), self.module)

"""Process models of the fused process (floating_pt and fixed_pt share the code: the kernels
they are given are float or integer)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from backends.lava.procs.fused.process import FusedNetwork
from snncompile.sim.kernels import step_kernels


class _Network(PyLoihiProcessModel):
    """Lava step g (from 1) is step t of batch b: every kernel steps on that batch."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        p = proc_params
        self.batch, self.steps, self.samples = p["batch"], p["steps"], p["samples"]
        self.kernels, self.errors = p["kernels"], p["errors"]
        self.feeds = {name: np.load(path, mmap_mode="r") for name, path in p["feeds"].items()}
        self.recs = {name: np.load(path, mmap_mode="r+") for name, path in p["records"].items()}

    def run_spk(self) -> None:
        try:
            self._run()
        except Exception:
            # Lava hangs instead of propagating a model's exception: leave it where the
            # driver polls for it, so the run stops at once with the real message.
            import traceback

            with open(self.errors, "a") as fh:
                fh.write(traceback.format_exc())
            raise

    def _run(self) -> None:
        b, t = divmod(self.time_step - 1, self.steps)
        lo = b * self.batch
        hi = min(self.samples, lo + self.batch)
        if t == 0:
            for k in self.kernels:
                k.reset(self.batch)
        xs = {}
        for name, data in self.feeds.items():
            x = xs[name] = np.zeros((self.batch, data.shape[2]), dtype=data.dtype)
            x[: hi - lo] = data[t, lo:hi]   # a last, partial batch is padded with zeros
        cur = step_kernels(self.kernels, xs)
        for name, rec in self.recs.items():
            rec[t, lo:hi] = cur[name][: hi - lo]
            if t == self.steps - 1 and hi == self.samples:
                rec.flush()


@implements(proc=FusedNetwork, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedNetworkFloat(_Network):
    """Float64 kernels."""


@implements(proc=FusedNetwork, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedNetworkFixed(_Network):
    """Loihi's integer datapath (the kernels of a FixedNetlist)."""

"""Process models of the fused processes (floating_pt and fixed_pt share the code: the
kernel they are given is float or integer)."""

from __future__ import annotations

import sys

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from backends.lava.procs.fused.process import FusedGraded, FusedSource, FusedSpiking


class _Batched(PyLoihiProcessModel):
    """Batch geometry shared by every fused model: Lava step g (from 1) is step t of batch b."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.batch, self.steps, self.samples = proc_params["batch"], proc_params["steps"], proc_params["samples"]

    def where(self) -> tuple[int, int, int]:
        """(t, first sample, end sample) of the current Lava step."""
        b, t = divmod(self.time_step - 1, self.steps)
        lo = b * self.batch
        return t, lo, min(self.samples, lo + self.batch)


class _Stepper(_Batched):
    """A population's kernel stepped on the batch, its outputs recorded and sent."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        p = proc_params
        self.kernel = p["kernel"]
        self.has_out = p["has_out"]
        self.rec = None if p["record"] is None else np.load(p["record"], mmap_mode="r+")
        self.n_in = len(p["in_sizes"])
        self.errors = p["errors"]

    def record(self, t: int, lo: int, hi: int, values: np.ndarray) -> None:
        if self.rec is not None and hi > lo:
            self.rec[t, lo:hi] = values[: hi - lo]
            if t == self.steps - 1 and hi == self.samples:
                self.rec.flush()

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
        t, lo, hi = self.where()
        if t == 0:
            self.kernel.reset(self.batch)
        if self.kernel.sends_first:   # a delay: send, then take this step's drive: closes loops
            out = self.kernel.emit()
            self.record(t, lo, hi, out)
            self.out.send(out)
            self.kernel.absorb([getattr(self, f"in_{k}").recv() for k in range(self.n_in)])
            return
        out = self.kernel.step([getattr(self, f"in_{k}").recv() for k in range(self.n_in)])
        self.record(t, lo, hi, out)
        if self.has_out:
            self.out.send(out)


class _Source(_Batched):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.data = np.load(proc_params["data"], mmap_mode="r")

    def run_spk(self) -> None:
        t, lo, hi = self.where()
        rows = self.data[t, lo:hi]
        buf = np.zeros((self.batch, self.data.shape[2]), dtype=self.data.dtype)
        buf[: len(rows)] = rows
        self.out.send(buf)


@implements(proc=FusedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFusedSourceFloat(_Source):
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float64)


@implements(proc=FusedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedSourceFixed(_Source):
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)


# Message types: spikes travel as uint8; real values as float64 (float) or int32 (fixed).
_IN = {"floating_pt": (np.float64, None), "fixed_pt": (np.int32, 24)}
_OUT = {(False, "floating_pt"): (np.uint8, 1), (False, "fixed_pt"): (np.uint8, 1),
        (True, "floating_pt"): (np.float64, None), (True, "fixed_pt"): (np.int32, 24)}
_CLASSES: dict[tuple, tuple[type, type]] = {}


def _lava_type(port, dtype, precision):
    return LavaPyType(port, dtype) if precision is None else LavaPyType(port, dtype, precision=precision)


def classes(graded: bool, n_in: int, has_out: bool, select: str) -> tuple[type, type]:
    """The process class and its model for a fused population with ``n_in`` input ports.

    Lava requires a model to declare exactly its process's ports, so each port layout gets
    its own (cached) subclass pair; the run config maps one to the other.
    """
    key = (graded, n_in, has_out, select)
    if key not in _CLASSES:
        base = FusedGraded if graded else FusedSpiking
        suffix = f"{n_in}{'o' if has_out else ''}"
        proc = type(f"{base.__name__}{suffix}", (base,), {"__module__": __name__})
        attrs = {f"in_{k}": _lava_type(PyInPort.VEC_DENSE, *_IN[select]) for k in range(n_in)}
        if has_out:
            attrs["out"] = _lava_type(PyOutPort.VEC_DENSE, *_OUT[(graded, select)])
        attrs["__module__"] = __name__
        model = type(f"Py{proc.__name__}{'Fixed' if select == 'fixed_pt' else 'Float'}", (_Stepper,), attrs)
        model = implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(select)(model)))
        # Lava looks a process's models up among the attributes of the process's module
        module = sys.modules[__name__]
        setattr(module, proc.__name__, proc)
        setattr(module, model.__name__, model)
        _CLASSES[key] = (proc, model)
    return _CLASSES[key]

"""Float model of SpikeMatMul (float64, exact for spike counts)."""

from __future__ import annotations

from collections import deque

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from backends.lava.procs.matmul.process import SpikeMatMul


def _gather(values: np.ndarray, gather: np.ndarray) -> np.ndarray:
    padded = np.append(values, np.zeros(1, values.dtype))  # index -1 → the appended zero
    return padded[gather]


class _AbstractSpikeMatMul(PyLoihiProcessModel):
    a_gather: np.ndarray = LavaPyType(np.ndarray, int)
    b_gather: np.ndarray = LavaPyType(np.ndarray, int)
    a_shape: np.ndarray = LavaPyType(np.ndarray, int)
    b_shape: np.ndarray = LavaPyType(np.ndarray, int)
    delays: np.ndarray = LavaPyType(np.ndarray, int)
    hadamard: np.ndarray = LavaPyType(np.ndarray, int)
    scales: np.ndarray = LavaPyType(np.ndarray, float)
    use_scales = True

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._hist: list[deque] | None = None

    def run_spk(self) -> None:
        self.out.send(self.buf)
        a, b = self.a_in.recv(), self.b_in.recv()
        if self._hist is None:
            self._hist = [deque([np.zeros_like(a)] * int(self.delays[0]), maxlen=int(self.delays[0]) + 1),
                          deque([np.zeros_like(b)] * int(self.delays[1]), maxlen=int(self.delays[1]) + 1)]
        self._hist[0].append(a)
        self._hist[1].append(b)
        a_now, b_now = self._hist[0][0], self._hist[1][0]
        ma = _gather(a_now, self.a_gather).reshape(tuple(self.a_shape))
        mb = _gather(b_now, self.b_gather).reshape(tuple(self.b_shape))
        if self.use_scales:
            ma, mb = ma * self.scales[0], mb * self.scales[1]
        self.buf = (ma * mb if self.hadamard[0] else np.matmul(ma, mb)).reshape(-1)


@implements(proc=SpikeMatMul, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeMatMulModelFloat(_AbstractSpikeMatMul):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    b_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    buf: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=SpikeMatMul, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeMatMulModelFixed(_AbstractSpikeMatMul):
    """Products of integer spike counts: exact in integers (scales are in the next weights)."""

    use_scales = False

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    b_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

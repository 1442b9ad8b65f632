"""Product of two dynamic operands (spiking self-attention: Q·Kᵀ, then ·V).

There is no static weight matrix, so a Loihi-class core cannot run this as synapses: it
is a custom process, marked as such in the report. Each operand is a population's output
(kept neurons only) gathered into a matrix by a fixed index array and held ``delay``
steps so both factors belong to the same time step. Like every synapse process, the
product is sent one step later.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class SpikeMatMul(AbstractProcess):
    def __init__(self, *, a_size: int, b_size: int, out_size: int, a_gather: np.ndarray,
                 b_gather: np.ndarray, a_shape: tuple[int, ...], b_shape: tuple[int, ...],
                 a_delay: int = 0, b_delay: int = 0, hadamard: bool = False,
                 scales: tuple[float, float] = (1.0, 1.0), name: str | None = None) -> None:
        super().__init__(name=name)
        self.a_in = InPort(shape=(a_size,))
        self.b_in = InPort(shape=(b_size,))
        self.out = OutPort(shape=(out_size,))
        # gather arrays index the kept-neuron vector; -1 marks a removed neuron (value 0)
        self.a_gather = Var(shape=a_gather.shape, init=a_gather)
        self.b_gather = Var(shape=b_gather.shape, init=b_gather)
        self.a_shape = Var(shape=(len(a_shape),), init=np.array(a_shape))
        self.b_shape = Var(shape=(len(b_shape),), init=np.array(b_shape))
        self.delays = Var(shape=(2,), init=np.array([a_delay, b_delay]))
        self.hadamard = Var(shape=(1,), init=np.array([int(hadamard)]))
        # constant factors of the operands; the fixed_pt model leaves them to the next weights
        self.scales = Var(shape=(2,), init=np.array(scales, dtype=float))
        self.buf = Var(shape=(out_size,), init=np.zeros(out_size))

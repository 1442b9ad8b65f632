"""A population of neurons with spikingjelly's exact semantics.

Stock Lava LIF fires on ``v > vth``, resets hard to 0, has a scalar threshold and no
subtractive reset. spikingjelly fires on ``v >= v_th``, resets to any ``v_reset`` or by
subtraction (of ``reset_by``, per neuron; v_th when None), and charges as IF, LIF
(``decay_input`` either way) or parametric LIF.
This process carries those parameters; the float model computes the same update as the
reference simulator (``snncompile.ir.dynamics.step``); ``model_code`` comes from
``backends.lava.dynamics.SJ_PARAMS``.
The fixed_pt model steps :func:`snncompile.fixedpoint.neuron_int.step`: Lava's bit-accurate
LIF (current ``u`` with decay ``du``, the synapse sum shifted by 6) for a stock neuron, the
same datapath with the extensions above for an extended one.

Between samples the membrane is reset to its initial value at every step ``g`` with
``(g - depth) % interval == 0``: ``depth`` is the population's latency in steps, so a
pipelined stream of samples needs no pause between them.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class SJNeuron(AbstractProcess):
    def __init__(self, *, shape: tuple[int, ...], model_code: int, v_threshold, v_reset: float | None,
                 leak: float = 1.0, decay_input: bool = True, bias=0.0,
                 reset_interval: int = 0, depth: int = 0, strict: bool = False,
                 reset_by=None, du: int = 4095, bias_current: bool = False,
                 name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        n = int(np.prod(shape))
        v0 = 0.0 if v_reset is None else float(v_reset)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=np.full(shape, v0))
        self.bias = Var(shape=shape, init=np.broadcast_to(np.asarray(bias, float).reshape(-1), (n,))
                        .reshape(shape).copy())
        self.v_th = Var(shape=shape, init=np.broadcast_to(np.asarray(v_threshold, float).reshape(-1),
                                                          (n,)).reshape(shape).copy())
        self.v_reset = Var(shape=(1,), init=np.array([v0]))
        by = v_threshold if reset_by is None else reset_by   # soft reset: v -= reset_by on a spike
        self.reset_by = Var(shape=shape, init=np.broadcast_to(np.asarray(by, float).reshape(-1), (n,))
                            .reshape(shape).copy())
        self.soft_reset = Var(shape=(1,), init=np.array([int(v_reset is None)]))
        self.model_code = Var(shape=(1,), init=np.array([int(model_code)]))
        self.leak = Var(shape=(1,), init=np.array([float(leak)]))
        self.decay_input = Var(shape=(1,), init=np.array([int(decay_input)]))
        self.reset_interval = Var(shape=(1,), init=np.array([int(reset_interval)]))
        self.depth = Var(shape=(1,), init=np.array([int(depth)]))
        self.strict = Var(shape=(1,), init=np.array([int(strict)]))  # fire on v > v_th
        # fixed_pt only: Lava's current u and its decay du (4095: u is this step's input)
        self.u = Var(shape=shape, init=np.zeros(shape))
        self.du = Var(shape=(1,), init=np.array([int(du)]))
        self.bias_current = Var(shape=(1,), init=np.array([int(bias_current)]))   # bias into u, not v

"""Float process model of SJNeuron (bit-equal to the reference simulator in float64)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from backends.lava.dynamics import from_code
from backends.lava.procs.sj_neuron.process import SJNeuron
from snncompile.fixedpoint import neuron_int
from snncompile.ir import dynamics


@implements(proc=SJNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySJNeuronModelFloat(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    v_th: np.ndarray = LavaPyType(np.ndarray, float)
    v_reset: np.ndarray = LavaPyType(np.ndarray, float)
    reset_by: np.ndarray = LavaPyType(np.ndarray, float)
    soft_reset: np.ndarray = LavaPyType(np.ndarray, int)
    model_code: np.ndarray = LavaPyType(np.ndarray, int)
    leak: np.ndarray = LavaPyType(np.ndarray, float)
    decay_input: np.ndarray = LavaPyType(np.ndarray, int)
    reset_interval: np.ndarray = LavaPyType(np.ndarray, int)
    depth: np.ndarray = LavaPyType(np.ndarray, int)
    strict: np.ndarray = LavaPyType(np.ndarray, int)
    # the integer datapath's Vars: Lava wants every Var of the process in each of its models
    u: np.ndarray = LavaPyType(np.ndarray, float)
    du: np.ndarray = LavaPyType(np.ndarray, int)
    bias_current: np.ndarray = LavaPyType(np.ndarray, int)

    def _params(self) -> dynamics.Dynamics:
        soft = bool(self.soft_reset[0])
        return from_code(int(self.model_code[0]), float(self.leak[0]), bool(self.decay_input[0]),
                         v_threshold=self.v_th, v_reset=None if soft else float(self.v_reset[0]),
                         strict=bool(self.strict[0]), reset_by=self.reset_by if soft else None)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        interval = int(self.reset_interval[0])
        if interval and (self.time_step - 1 - int(self.depth[0])) % interval == 0:
            self.v[:] = self.v_reset[0]
        s, v = dynamics.step(self.v, a_in + self.bias, self._params())
        self.v[:] = v
        self.s_out.send(s)


@implements(proc=SJNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySJNeuronModelFixed(PyLoihiProcessModel):
    """Integer datapath: :func:`snncompile.fixedpoint.neuron_int.step` (Lava's bit-accurate LIF,
    or its extended form). ``leak`` holds dv, ``du`` Lava's current decay, ``v_th`` the integer
    threshold θ in membrane units; ``bias``/``v_reset``/``reset_by`` integers from the quantizer."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    v_th: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    v_reset: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    reset_by: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    soft_reset: np.ndarray = LavaPyType(np.ndarray, int)
    model_code: np.ndarray = LavaPyType(np.ndarray, int)
    leak: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    du: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    decay_input: np.ndarray = LavaPyType(np.ndarray, int)
    reset_interval: np.ndarray = LavaPyType(np.ndarray, int)
    depth: np.ndarray = LavaPyType(np.ndarray, int)
    strict: np.ndarray = LavaPyType(np.ndarray, int)
    bias_current: np.ndarray = LavaPyType(np.ndarray, int)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.params: neuron_int.IntNeuron | None = None

    def _params(self) -> neuron_int.IntNeuron:
        soft = bool(self.soft_reset[0])
        th = self.v_th.astype(np.int64)
        return neuron_int.make(du=int(self.du[0]), dv=int(self.leak[0]),
                               threshold=th[0] if np.all(th == th[0]) else th, strict=bool(self.strict[0]),
                               v_reset=int(self.v_reset[0]), soft=soft,
                               reset_by=self.reset_by.astype(np.int64) if soft else None,
                               bias_current=bool(self.bias_current[0]))

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        if self.params is None:   # Vars are set once the model runs: read them at the first step
            self.params = self._params()
        interval = int(self.reset_interval[0])
        if interval and (self.time_step - 1 - int(self.depth[0])) % interval == 0:
            self.v[:] = self.v_reset[0]
            self.u[:] = 0
        s, (v, u) = neuron_int.step((self.v.astype(np.int64), self.u.astype(np.int64)), a_in,
                                    self.bias.astype(np.int64), self.params)
        self.v[:] = v
        self.u[:] = u
        self.s_out.send(s)

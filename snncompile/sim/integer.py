"""Integer reference simulator: predicts Lava's fixed_pt run bit for bit.

Steps a quantized Netlist (see ``snncompile.fixedpoint.quantize``) with the fixed-point
kernels of :mod:`snncompile.sim.kernels`: Lava's bit-accurate ``Sparse``/``Dense``
arithmetic (integer weight mantissas, sum, then ``<< weight_exp`` or an arithmetic
``>> -weight_exp``) and the SJNeuron fixed_pt datapath (``neuron_int.step``). The stock
Lava emission, which runs Lava's own synapse models, is checked against it.
"""

from __future__ import annotations

import numpy as np

from snncompile.netlist import FixedNetlist, Netlist
from snncompile.sim.kernels import run_kernels


def simulate_int(plan: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    """x [T, N, ...] floats → {population: [T, N, size] int spikes or products}, and for a
    value readout ``OUTPUT``: [T, N, size] dequantized floats."""
    if not isinstance(plan, FixedNetlist):
        raise ValueError("simulate_int needs a quantized plan (quantize_plan)")
    return run_kernels(plan, x)

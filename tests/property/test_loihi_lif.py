"""Our integer neuron step equals Lava's own bit-accurate LIF on every state, every step.

Random du, dv, vth, per-neuron bias mantissa/exponent, initial (u, v) and integer inputs go
through :func:`snncompile.fixedpoint.neuron_int.step` and through Lava's code: its
``PyLifModelBitAcc.run_spk`` called directly (fast, many examples), and a real ``LIF``
process run with ``Loihi2SimCfg(select_tag="fixed_pt")`` (marked ``lava``). The ranges
reach the 24-bit wrap of u (u accumulates with du = 0) and the saturation of v (large
biases with a high vth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snncompile.fixedpoint import neuron_int as ni

from .profiles import budget, slow_phases

N = 24          # neurons per example (one Lava process)
T = 14          # steps
DECAYS = st.one_of(st.sampled_from([0, 1, 2048, 4094, 4095]), st.integers(0, 4095))


@dataclass
class Case:
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray     # int16, 13-bit
    bias_exp: np.ndarray      # 3-bit
    u0: np.ndarray
    v0: np.ndarray
    a_in: np.ndarray          # [T, N] synapse sums (16-bit, as Lava's a_in port)

    @property
    def bias(self) -> np.ndarray:
        return self.bias_mant.astype(np.int64) << self.bias_exp.astype(np.int64)


@st.composite
def cases(draw, random_state: bool = True) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vth = draw(st.one_of(st.integers(0, 400), st.integers(0, ni.VTH_MAX)))
    amp = draw(st.sampled_from([4, 300, 32767]))
    bias_mant = rng.integers(-4096, 4096, N) * (rng.random(N) < draw(st.floats(0, 1)))
    state = (1 << 23) if random_state else 1
    return Case(du=draw(DECAYS), dv=draw(DECAYS), vth=vth,
                bias_mant=bias_mant.astype(np.int16), bias_exp=rng.integers(0, 8, N).astype(np.int16),
                u0=rng.integers(-state + 1, state, N), v0=rng.integers(-state + 1, state, N),
                a_in=rng.integers(-amp, amp + 1, (T, N)))


def ours(c: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, s) [T, N] from our integer step."""
    p = ni.LoihiLIF(du=c.du, dv=c.dv, vth=c.vth)
    state = (c.v0[None].astype(np.int64), c.u0[None].astype(np.int64))
    out = np.zeros((3, T, N), dtype=np.int64)
    for t in range(T):
        s, state = ni.step(state, c.a_in[t][None], c.bias, p)
        out[:, t] = state[1][0], state[0][0], s[0]
    return out[0], out[1], out[2]


class _Port:
    """Stands in for Lava's ports: ``recv`` gives this step's input, ``send`` keeps the spikes."""

    def __init__(self, data: np.ndarray | None = None) -> None:
        self.data = data

    def recv(self) -> np.ndarray:
        return self.data

    def send(self, data: np.ndarray) -> None:
        self.data = data


def lava_direct(c: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, s) [T, N] from Lava's ``PyLifModelBitAcc.run_spk``, its Vars set as its runtime sets them."""
    from backends.lava import compat

    compat.install()
    from lava.proc.lif.models import PyLifModelBitAcc

    m = PyLifModelBitAcc({})
    m.u, m.v = c.u0.astype(np.int32), c.v0.astype(np.int32)
    m.du, m.dv, m.vth = c.du, c.dv, c.vth
    m.bias_mant, m.bias_exp = c.bias_mant.copy(), c.bias_exp.copy()
    m.a_in, m.s_out = _Port(), _Port()
    out = np.zeros((3, T, N), dtype=np.int64)
    for t in range(T):
        m.a_in.data = c.a_in[t].astype(np.int32)
        m.run_spk()
        out[:, t] = m.u, m.v, m.s_out.data
    return out[0], out[1], out[2]


def lava_process(c: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, s) [T, N] from a real Lava ``LIF`` process fed by a ``RingBuffer``, fixed_pt."""
    from backends.lava import compat

    compat.install()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    src = RingBuffer(data=c.a_in.T.astype(np.int32))
    lif = LIF(shape=(N,), u=c.u0, v=c.v0, du=c.du, dv=c.dv, vth=c.vth, bias_mant=c.bias_mant,
              bias_exp=c.bias_exp)
    src.s_out.connect(lif.a_in)
    mons = {name: Monitor() for name in ("u", "v", "s_out")}
    for name, mon in mons.items():
        mon.probe(getattr(lif, name), T)
    try:
        lif.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = [np.asarray(mon.get_data()[lif.name][name]) for name, mon in mons.items()]
    finally:
        lif.stop()
    return tuple(np.rint(g).astype(np.int64) for g in got)


def _assert_same(c: Case, theirs: tuple[np.ndarray, ...]) -> None:
    mine = ours(c)
    for what, a, b in zip(("u", "v", "spikes"), mine, theirs):
        for t in range(T):
            np.testing.assert_array_equal(a[t], b[t], err_msg=f"{what} at step {t} ({c.du=}, {c.dv=}, {c.vth=})")


@settings(max_examples=budget(ci=150, fuzz=2000))
@given(c=cases())
def test_integer_step_equals_lavas_bit_accurate_lif_model(c: Case) -> None:
    _assert_same(c, lava_direct(c))


@pytest.mark.lava
@settings(max_examples=budget(ci=24, fuzz=150), phases=slow_phases())
@given(c=cases(random_state=False))
def test_integer_step_equals_a_lava_lif_process(c: Case) -> None:
    """A real LIF process (Lava's compiler, runtime and channels), started from rest as our
    populations are; the ranges still reach the wrap (du = 0) and the saturation."""
    c.u0[:] = 0
    c.v0[:] = 0
    _assert_same(c, lava_process(c))

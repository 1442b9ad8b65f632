"""The integer neuron step: Lava's bit-accurate LIF (worked examples) and the extended rules."""

import numpy as np
import pytest

from snncompile.fixedpoint import neuron_int as ni


def _one(v0, a_in=0, bias=0, p=None, u0=0):
    p = p or ni.LoihiLIF(du=ni.DU_NONE, dv=1000, vth=ni.VTH_MAX)
    s, (v, u) = ni.step((np.array([v0]), np.array([u0])), np.array([a_in]), bias, p)
    return int(s[0]), int(v[0]), int(u[0])


@pytest.mark.parametrize("v0,expected", [(1000, 755), (-1000, -755), (7, 5), (123457, 93316), (0, 0)])
def test_decay_truncates_the_decayed_value_as_lava(v0, expected):
    """dv = 1000: v·3096 >> 12 toward zero (the old rule, v − trunc(v·dv/4096), gave 756, 6, 93317)."""
    assert _one(v0)[1] == expected


def test_input_enters_through_the_current_shifted_by_6_and_the_bias_through_v():
    p = ni.LoihiLIF(du=ni.DU_NONE, dv=0, vth=ni.VTH_MAX)
    assert _one(0, a_in=3, bias=5, p=p) == (0, 3 * 64 + 5, 3 * 64)
    cuba = ni.LoihiLIF(du=2047, dv=0, vth=ni.VTH_MAX)        # u decays by (du + 1)/4096 = ½
    assert _one(0, a_in=0, p=cuba, u0=1001)[2] == 500       # 1001·2048 >> 12, toward zero


def test_fires_strictly_above_vth_shifted_and_resets_to_zero_keeping_u():
    p = ni.LoihiLIF(du=ni.DU_NONE, dv=0, vth=2)               # θ = 128
    assert _one(0, a_in=2, p=p)[:2] == (0, 128)                # v = θ: no spike
    s, v, u = _one(1, a_in=2, p=p)
    assert (s, v, u) == (1, 0, 128)


def test_current_wraps_and_membrane_saturates_at_24_bits():
    top = 1 << 23
    assert list(ni.wrap_current(np.array([top, top + 1, -top, -top + 1]))) == [top, -top + 1, top, -top + 1]
    p = ni.LoihiLIF(du=ni.DECAY_MAX, dv=0, vth=ni.VTH_MAX)
    assert ni.charge(np.array([top - 10]), np.array([64]), 0, 0)[0] == ni.V_MAX   # saturates, does not wrap
    assert _one(top - 10, a_in=1, p=p)[:2] == (1, 0)            # V_MAX > vth << 6 = 2^23 − 64: fires
    assert _one(-top + 10, a_in=-1, p=p)[1] == -ni.V_MAX
    no_decay = ni.LoihiLIF(du=0, dv=0, vth=ni.VTH_MAX)          # u·4095 >> 12 + 2^16·64 wraps past 2^23
    assert _one(0, a_in=1 << 16, p=no_decay, u0=top - 5000)[2] < 0


def test_make_names_what_stock_loihi_cannot_do():
    assert ni.make(du=4095, dv=100, threshold=64 * 7, strict=True).stock
    cases = {
        "soft": dict(soft=True),
        "reset to": dict(v_reset=-3),
        ">=": dict(strict=False),
        "per-neuron": dict(threshold=np.array([64, 128])),
        "not vth << 6": dict(threshold=65),
        "dv=4096": dict(dv=4096),
        "bias enters the current": dict(bias_current=True),
    }
    for what, change in cases.items():
        kw = dict(du=4095, dv=100, threshold=64 * 7, strict=True) | change
        p = ni.make(**kw)
        assert isinstance(p, ni.ExtendedLIF) and not p.stock and any(what in r for r in p.reasons), what
    with pytest.raises(ValueError, match="vth"):
        ni.LoihiLIF(vth=ni.VTH_MAX + 1)


def test_extended_rules_on_the_lava_datapath():
    """Fire on h ≥ θ, hard reset to v_r (the leak goes toward v_r), soft reset by ρ."""
    hard = ni.make(du=4095, dv=2048, threshold=100, strict=False, v_reset=-20)
    v = np.array([[-20, -20, -20, 90]])
    s, (v2, _) = ni.step((v, np.zeros_like(v)), np.array([[1, 2, 2, 1]]), np.array([[45, 46, 47, 1]]), hard)
    # h = trunc((v + 20)/2) − 20 + 64·a + b: 89, 154, 155, 100 → ≥ 100 fires (at θ too), resets to −20
    assert list(s[0]) == [0, 1, 1, 1] and list(v2[0]) == [89, -20, -20, -20]
    soft = ni.make(du=4095, dv=0, threshold=100, strict=False, soft=True, reset_by=np.array([30, 100]))
    s, (v2, _) = ni.step((np.array([[50, ni.V_MAX - 5]]), np.zeros((1, 2), np.int64)), np.array([[1, 2]]), 0, soft)
    assert list(s[0]) == [1, 1] and list(v2[0]) == [84, ni.V_MAX - 100]     # saturates first, then subtracts

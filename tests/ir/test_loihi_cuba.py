"""LoihiCuba (a netx CUBA neuron in Lava's membrane units) steps exactly as the integer
datapath that is checked against Lava's own LIF (``fixedpoint.neuron_int``), on numpy and
torch, including wrap of u and saturation of v."""

import numpy as np
import pytest
import torch

from snncompile.fixedpoint import neuron_int
from snncompile.ir.dynamics import LoihiCuba, initial_state, step


@pytest.mark.parametrize("seed", range(4))
def test_loihi_cuba_steps_as_lavas_bit_accurate_lif(seed):
    rng = np.random.default_rng(seed)
    du, dv, vth = int(rng.integers(0, 4096)), int(rng.integers(0, 4096)), int(rng.integers(0, 400))
    big = seed == 3   # inputs that wrap u and saturate v
    p = LoihiCuba(du=du, dv=dv, v_threshold=float(vth << 6))
    q = neuron_int.LoihiLIF(du=du, dv=dv, vth=vth)
    a = rng.integers(-(1 << 17) if big else -300, (1 << 17) if big else 600, (20, 4, 7))
    ours, ours_t = initial_state(p, np.zeros((4, 7))), initial_state(p, torch.zeros(4, 7, dtype=torch.float64))
    lava = neuron_int.initial_state(q, 4, 7)
    fired = 0
    for x in a:
        s, ours = step(ours, (x << 6).astype(np.float64), p)
        st, ours_t = step(ours_t, torch.as_tensor((x << 6).astype(np.float64)), p)
        s_ref, lava = neuron_int.step(lava, x, 0, q)
        np.testing.assert_array_equal(s, s_ref)
        np.testing.assert_array_equal(st.numpy(), s_ref)
        np.testing.assert_array_equal(ours[0], lava[0])
        np.testing.assert_array_equal(ours[1], lava[1])
        fired += int(s_ref.sum())
    assert fired > 0


def test_loihi_cuba_is_lavas_lif_only():
    with pytest.raises(ValueError, match="12 bits"):
        LoihiCuba(du=4096)
    with pytest.raises(ValueError, match="resets to 0"):
        LoihiCuba(v_reset=1.0)

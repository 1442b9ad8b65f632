"""The integer kernels' short cuts are exact: spike sums in int32 only where no target can pass
it, and the decay's fast paths equal Lava's formula."""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from snncompile.fixedpoint.neuron_int import DECAY_ONE, current, decayed
from snncompile.sim.kernels import INT32_SUM, IntSynapses


def _synapses(w: np.ndarray, graded: bool = False, exp: int = 0) -> IntSynapses:
    proj = SimpleNamespace(weights=sp.csr_matrix(w), weight_exp=exp)
    return IntSynapses(proj, SimpleNamespace(graded=graded))


def test_spike_sums_past_int32_run_in_int64():
    """A target whose |weights| sum past 2^31 − 1 would wrap in int32: the sum runs in int64."""
    big = np.array([[2**30, 2**30, 2**30, 5], [3, -4, 0, 1]], dtype=np.int64)
    syn = _synapses(big)
    assert syn.dtype == np.int64 and np.abs(big).sum(axis=1).max() > INT32_SUM
    s = np.array([[1, 1, 1, 1], [0, 1, 0, 1]], dtype=np.int64)
    np.testing.assert_array_equal(syn(s), s @ big.T)
    assert syn(s)[0, 0] == 3 * 2**30 + 5


@pytest.mark.parametrize("exp", [-3, 0, 2])
def test_spike_sums_in_int32_equal_int64(exp):
    rng = np.random.default_rng(0)
    w = rng.integers(-256, 256, (40, 300)) * (rng.random((40, 300)) < 0.3)
    syn = _synapses(w, exp=exp)
    assert syn.dtype == np.int32
    s = (rng.random((7, 300)) < 0.5).astype(np.int64)
    acc = s @ w.T
    np.testing.assert_array_equal(syn(s), acc << exp if exp > 0 else acc >> -exp)


def test_graded_sources_sum_in_int64():
    """Graded inputs (24-bit messages) have no small bound: never int32."""
    w = np.array([[255, 255]])
    syn = _synapses(w, graded=True)
    assert syn.dtype == np.int64
    np.testing.assert_array_equal(syn(np.array([[2**23, 2**23]])), [[255 * 2**24]])


@pytest.mark.parametrize("d", [0, 1, 7, 1000, 4095, DECAY_ONE])
def test_decay_equals_lavas_truncation(d):
    """sign(x·(4096 − d))·(|x·(4096 − d)| >> 12), negatives included, with or without a short cut."""
    x = np.random.default_rng(d).integers(-2**23, 2**23, 5000)
    p = x * (DECAY_ONE - d)
    np.testing.assert_array_equal(decayed(x, d), np.sign(p) * (np.abs(p) >> 12))
    per_neuron = np.full(x.shape, d)
    np.testing.assert_array_equal(decayed(x, per_neuron), np.sign(p) * (np.abs(p) >> 12))


def test_current_wraps_only_past_24_bits():
    u = np.array([0, 2**23 - 100, -(2**23) + 100])
    a_in = np.array([1, 100, -100])  # << 6: the last two pass ±2^23
    got = current(u, a_in, 0)       # du = 0: u keeps its value (decay by 1/4096 only)
    raw = decayed(u, 1) + (a_in << 6)
    want = np.where(raw > 2**23, raw - 2**24, np.where(raw <= -(2**23), raw + 2**24, raw))
    np.testing.assert_array_equal(got, want)
    assert got[1] < 0 < got[2]
    np.testing.assert_array_equal(current(np.array([5, -5]), np.array([2, -2]), 4095), [128, -128])

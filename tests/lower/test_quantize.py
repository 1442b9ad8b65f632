"""Fixed-point quantization: exact for binary weights, bounded error otherwise."""

import numpy as np
import pytest
from equivalence import run_all
from nets import TicketNet, binary_spike_inputs, conv_net, snntorch_soft_reset_net

from snncompile.fixedpoint.quantize import input_scale, quantize_plan
from snncompile.ir.dynamics import IF, LIF
from snncompile.lower import lower
from snncompile.netlist import NeuronPopulation
from snncompile.passes import run_passes
from snncompile.sim.integer import simulate_int


def _plan(model, x, shape):
    runs = run_all(model, x, shape)
    g, _ = run_passes(runs.trace.graph)
    return runs, g, lower(g)


def test_input_scale_is_a_power_of_two_in_8_bits():
    assert input_scale(np.array([0.0, 1.0])) == 128       # 255 / 1 → 2^7
    assert input_scale(np.array([-2.0, 1.0])) == 32       # 127 / 2 → 2^5
    x = np.arange(17) / 16
    assert np.array_equal(np.round(x * input_scale(x)) / input_scale(x), x)  # digits pixels are exact


def test_binary_ticket_weights_quantize_exactly():
    x = np.random.default_rng(0).random((4, 3, 1, 8, 8))
    _, g, plan = _plan(TicketNet(), x, (1, 8, 8))
    q, info = quantize_plan(plan, x)
    by_dst = {e.projection.split("→")[1]: e for e in info.errors}
    # the head is per-layer binary with α folded into the neuron: ±1 maps to ±254·2^e exactly
    assert by_dst["sn3"].rel_weight_error == 0.0
    for proj in q.projections:
        data = proj.weights.data
        assert np.all(data == np.round(data)) and np.all(data % 2 == 0)
        assert data.min() >= -256 and data.max() <= 254
    for fixed in q.fixed.values():
        if fixed.params is not None:
            th = fixed.params.threshold
            assert np.all(th > 2 ** 10) and np.all(th < 2 ** 23)  # ≥ 10 bits of threshold resolution


def test_decays_and_thresholds():
    x = np.random.default_rng(1).random((4, 3, 1, 8, 8))
    _, g, plan = _plan(conv_net("s"), x, (1, 8, 8))
    q, _ = quantize_plan(plan, x)
    dv = {n: f.params.dv for n, f in q.fixed.items() if f.params}
    du = {f.params.du for f in q.fixed.values() if f.params}
    assert du == {4095}                                # no current: u = this step's input (Lava's du + 1)
    assert dv["neuron_2"] == 2048                      # LIF τ=2
    assert dv["neuron_6"] == 0                         # IF
    assert dv["neuron_11"] == round(4096 / 3.0)        # PLIF init_tau=3 → sigmoid(w)=1/3
    assert q.fixed["neuron_6"].params.soft


def test_report_names_stock_loihi_and_extended_neurons():
    """A hard-reset-to-0 LIF is Lava's stock LIF; soft reset and v_r ≠ 0 are extended, named with why."""
    x = np.random.default_rng(1).random((4, 3, 1, 8, 8))
    _, _, plan = _plan(conv_net("s"), x, (1, 8, 8))
    q, info = quantize_plan(plan, x)
    neurons = info.to_dict()["neurons"]
    assert neurons["neuron_2"] == {"layer": "2", "stock_loihi": True, "dynamics": "LoihiLIF"}   # module path 2
    assert type(q.fixed["neuron_2"].params).__name__ == "LoihiLIF"
    assert q.fixed["neuron_2"].params.threshold % 64 == 0          # vth << 6
    for name, why in (("neuron_6", "soft"), ("neuron_11", "reset to")):
        d = neurons[name]
        assert not d["stock_loihi"] and d["note"] == "not a stock Loihi neuron"
        assert any(why in r for r in d["reasons"]), d
    assert info.to_dict()["stock_loihi"] is False


@pytest.mark.parametrize("make,shape", [(lambda: conv_net("s"), (1, 8, 8)), (TicketNet, (1, 8, 8))])
def test_integer_network_tracks_the_float_model(make, shape):
    x = np.random.default_rng(2).random((6, 20, *shape))
    runs, g, plan = _plan(make(), x, shape)
    q, _ = quantize_plan(plan, x)
    out = simulate_int(q, x)
    agree = [np.mean(plan.populations[n].expand(out[n]).reshape(s.shape) == s) for n, s in runs.torch_spikes.items()]
    assert min(agree) > 0.95


def test_soft_reset_amount_quantizes_to_an_integer_and_rounding_is_warned():
    """ρ = θ/β of snnTorch's subtract reset: exact at the scale for β = ½ (ρ = 2θ), rounded
    and named in the warnings for β = 0.75 (ρ = 4/3)."""
    pytest.importorskip("snntorch")
    x = binary_spike_inputs(6, 4, (8,), seed=5)
    for beta, rounded in ((0.5, False), (0.75, True)):
        _, _, plan = _plan(snntorch_soft_reset_net(beta), x, (8,))
        q, info = quantize_plan(plan, x)
        names = {type(p.params): n for n, p in q.populations.items() if isinstance(p, NeuronPopulation)}
        lif_name, lif, iff = names[LIF], q.fixed[names[LIF]], q.fixed[names[IF]]
        p = lif.params
        assert p.soft and np.all(p.reset_by == np.round(lif.scale / beta))
        assert p.strict and np.all(p.threshold == np.round(lif.scale))      # fires on h > θ
        assert np.all(iff.params.reset_by == 0)
        notes = [w for w in info.to_dict()["warnings"] if "soft-reset amount" in w]
        assert bool(notes) == rounded and (not rounded or lif_name in notes[0])
        ints = simulate_int(q, x)
        assert ints[lif_name].sum() > 0

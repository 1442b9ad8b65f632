"""netx import: a lava-dl netx file, written here with h5py in netx's layout, compiles like any
model and our simulation equals lava-dl's own Lava run of the file, spike for spike."""

from __future__ import annotations

import numpy as np
import pytest
from netx_files import conv_dense_file, run_netx, write_netx

import snncompile
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.fixedpoint.neuron_int import LoihiLIF
from snncompile.fixedpoint.quantize import quantize_plan
from snncompile.frontend.netx_import import import_netx
from snncompile.ir.dynamics import LoihiCuba
from snncompile.ir.nodes import Add, Delay, Linear, Neuron
from snncompile.lower import lower
from snncompile.sim import simulate
from snncompile.sim.integer import simulate_int

T = 16


@pytest.fixture(scope="module")
def netx(tmp_path_factory):
    d = tmp_path_factory.mktemp("netx")
    path = conv_dense_file(d / "net.net")
    x = (np.random.default_rng(1).random((T, 2, 1, 10, 10)) < 0.3).astype(np.float64)
    return path, x, import_netx(path)


def test_layers_become_lavas_lif_in_netx_units(netx):
    path, _, g = netx
    neurons = [g.node(n) for n in g.of_type(Neuron)]
    assert [n.shape for n in neurons] == [(8, 10, 10), (12,), (4,)]
    assert all(isinstance(n.dynamics, LoihiCuba) and n.dynamics.strict for n in neurons)
    first, second = neurons[0].dynamics, neurons[1].dynamics
    assert (first.du, first.dv, first.v_threshold) == (4095, 600, 100 * 64)
    assert (second.du, second.dv) == (2999, 300)
    conv = g.node("layer1_conv")
    import h5py

    with h5py.File(path) as fh:
        np.testing.assert_array_equal(conv.weight, fh["layer/1/weight"][()] * 64)
        np.testing.assert_array_equal(conv.bias, fh["layer/1/bias"][()] * 64)


@pytest.mark.lava
def test_our_simulation_equals_netx_running_the_file(netx):
    """lava-dl's loader (real, fixed_pt) against our reference simulator on the output of
    three blocks (conv with bias, dense with current memory, dense): one step of latency
    per block; netx zeroes each layer as its first input arrives (``reset_interval``), as for
    back-to-back samples (without it a biased layer integrates its bias while the pipeline fills)."""
    path, x, g = netx
    ours = simulate(g, x[:, :1]).spikes
    for layers, latency, name in ((5, 3, "layer4"),):
        out = run_netx(path, x[:, 0], latency=latency, layers=layers)
        mine = ours[name][:, 0]
        if mine.ndim == 4:   # netx's (X, Y, C) order
            mine = mine.transpose(0, 3, 2, 1)
        mine = mine.reshape(T, -1)
        assert not out[:latency].any()
        np.testing.assert_array_equal(out[latency:latency + T], mine, err_msg=name)
        assert 0 < mine.sum() < mine.size and mine.any(axis=0).all()


def test_fixed_point_of_a_netx_network_is_the_identity(netx):
    """Quantizing keeps netx's integers: the integer reference equals the float one and
    every neuron is Lava's stock LIF with the file's vThMant."""
    _, x, g = netx
    plan = lower(g)
    q, info = quantize_plan(plan, x)
    assert info.input_scale == 1.0 or np.array_equal(np.round(x * info.input_scale) / info.input_scale, x)
    ref, ints = simulate(g, x).spikes, simulate_int(q, x)
    for name in ref:
        np.testing.assert_array_equal(ints[name], ref[name].reshape(T, 2, -1), err_msg=name)
    assert [q.fixed[n].params.vth for n in ("layer1", "layer3", "layer4")] == [100, 150, 300]
    assert all(isinstance(q.fixed[n].params, LoihiLIF) for n in q.fixed)


def test_a_netx_file_compiles_like_any_model(netx, tmp_path):
    path, x, _ = netx
    np.save(tmp_path / "x.npy", x)
    rep = snncompile.compile(path, "lava", fixed_point=True, emit="loihi", input=tmp_path / "x.npy")
    assert rep.mapping["chip_fit"]["claimed"] and rep.mapping["cores"] >= 3
    assert rep.fixed_point["integer_reference"]["spike_agreement"] == 1.0
    assert rep.energy.mode == "exact" and {r.name for r in rep.energy.layers} >= {"layer1_conv", "layer3_dense"}


@pytest.mark.parametrize("change,match,code", [
    (lambda ls: ls.insert(2, {"type": "pool", "shape": np.array([8, 5, 5])}), "`pool`", EXIT_UNSUPPORTED),
    (lambda ls: ls[3].update(delay=np.full(12, 63)), r"whole steps in 0 … 62", EXIT_UNSUPPORTED),
    (lambda ls: ls[3].update(delay=np.ones(5)), "`delay` has shape", EXIT_USAGE),
    (lambda ls: ls[1].update(delay=np.ones(8)), "conv with synaptic delays", EXIT_UNSUPPORTED),
    (lambda ls: ls[3].update(bias=np.ones(12)), "iDecay=3000 < 4096", EXIT_UNSUPPORTED),
    (lambda ls: ls[3].update(weight=np.ones((12, 799))), "declares shape", EXIT_USAGE),
    (lambda ls: ls[4].update(weight=np.full((4, 12), 300)), "8-bit", EXIT_USAGE),
    (lambda ls: ls.pop(2), "needs a `flatten`", EXIT_USAGE),
    (lambda ls: ls.pop(0), "before any input", EXIT_USAGE),
    (lambda ls: ls[0].update(neuron=(10, 4096, 0)), "drives through the neuron's bias", EXIT_UNSUPPORTED),
])
def test_what_netx_import_cannot_build_is_refused_by_name(tmp_path, change, match, code):
    rng = np.random.default_rng(0)
    layers = [
        {"type": "input", "shape": np.array([1, 10, 10])},
        {"type": "conv", "shape": np.array([8, 10, 10]), "weight": rng.integers(-5, 5, (8, 1, 3, 3)),
         "padding": np.array([1, 1]), "neuron": (100, 4096, 0)},
        {"type": "flatten", "shape": np.array([800])},
        {"type": "dense", "shape": np.array([12]), "weight": rng.integers(-5, 5, (12, 800)), "neuron": (50, 3000, 0)},
        {"type": "dense", "shape": np.array([4]), "weight": rng.integers(-5, 5, (4, 12)), "neuron": (50, 4096, 0)},
    ]
    import_netx(write_netx(tmp_path / "ok.net", layers))
    change(layers)
    with pytest.raises(SnnCompileError, match=match) as exc:
        import_netx(write_netx(tmp_path / "bad.net", layers))
    assert exc.value.exit_code == code and exc.value.hint


def test_a_file_that_is_not_netx_is_refused(tmp_path):
    (tmp_path / "a.net").write_text("not hdf5")
    with pytest.raises(SnnCompileError, match="not an HDF5 file"):
        import_netx(tmp_path / "a.net")
    import h5py

    with h5py.File(tmp_path / "b.net", "w") as fh:
        fh.create_group("weights")
    with pytest.raises(SnnCompileError, match="no `layer` group"):
        import_netx(tmp_path / "b.net")
    write_netx(tmp_path / "c.net", [{"type": "input", "shape": np.array([4])},
                                    {"type": "dense", "shape": np.array([2]), "weight": np.ones((2, 4)),
                                     "neuron": (10, 4096, 0)}])
    with h5py.File(tmp_path / "c.net", "a") as fh:
        del fh["layer/1/neuron/type"]
        fh["layer/1/neuron"].create_dataset("type", data=np.bytes_("SDNN"))
    with pytest.raises(SnnCompileError, match="SDNN neuron"):
        import_netx(tmp_path / "c.net")


def _delay_file(path, seed: int = 0):
    """input 20 → dense 24 → dense 16 with a delay per synapse → dense 10 with one per input →
    dense 6 with one per output neuron (delays 0 … 4; current memory and leaks on the way)."""
    rng = np.random.default_rng(seed)

    def w(shape, p=0.5):
        return (rng.integers(-30, 90, shape) * (rng.random(shape) < p)).astype(np.int32)

    return write_netx(path, [
        {"type": "input", "shape": np.array([20])},
        {"type": "dense", "shape": np.array([24]), "weight": w((24, 20)), "neuron": (100, 4096, 300)},
        {"type": "dense", "shape": np.array([16]), "weight": w((16, 24)), "neuron": (100, 4096, 300),
         "delay": rng.integers(0, 5, (16, 24))},
        {"type": "dense", "shape": np.array([10]), "weight": w((10, 16), 0.7), "neuron": (90, 3000, 200),
         "delay": rng.integers(0, 4, 16)},
        {"type": "dense", "shape": np.array([6]), "weight": w((6, 10), 0.8), "neuron": (100, 4096, 100),
         "delay": rng.integers(0, 3, 6)},
    ])


def test_netx_delays_become_delayed_branches(tmp_path):
    """A dense layer's delays: one Linear per delay value d, fed by a Delay of the input by d
    (none for d = 0), summed; the branches' weights add up to the file's."""
    g = import_netx(_delay_file(tmp_path / "d.net"))
    import h5py

    with h5py.File(tmp_path / "d.net") as fh:
        for layer, axis in ((2, None), (3, 0), (4, 1)):   # per synapse, per input, per output
            weight, delay = fh[f"layer/{layer}/weight"][()], fh[f"layer/{layer}/delay"][()]
            delay = np.broadcast_to(delay if axis is None else np.expand_dims(delay, axis), weight.shape)
            values = sorted(set(delay[weight != 0].tolist()))
            branches = [g.node(n) for n in g.of_type(Linear) if n.startswith(f"layer{layer}_dense")]
            assert len(branches) == len(values) > 1
            np.testing.assert_array_equal(sum(b.weight for b in branches), weight * 64)
            for b, d in zip(branches, values):
                np.testing.assert_array_equal(b.weight != 0, (weight != 0) & (delay == d))
            steps = sorted(g.node(n).steps for n in g.of_type(Delay) if n.startswith(f"layer{layer}_"))
            assert steps == [d for d in values if d]
            assert len([n for n in g.of_type(Add) if n.startswith(f"layer{layer}_")]) == len(values) - 1


@pytest.mark.lava
def test_netx_delays_equal_netx_running_the_file(tmp_path):
    """Delays per synapse, per input and per output (netx's DelayDense): our reference, the
    integer reference of the quantized network and its fused Lava emission equal lava-dl's own
    run, spike for spike."""
    path = _delay_file(tmp_path / "d.net")
    x = (np.random.default_rng(1).random((T, 1, 20)) < 0.4).astype(np.float64)
    g = import_netx(path)
    ours = simulate(g, x).spikes["layer4"][:, 0].reshape(T, -1)
    out = run_netx(path, x[:, 0], latency=4)
    np.testing.assert_array_equal(out[4:4 + T], ours)
    assert 0 < ours.sum() < ours.size and ours.any(axis=0).all()
    q, _ = quantize_plan(lower(g), x)
    np.testing.assert_array_equal(simulate_int(q, x)["layer4"][:, 0], ours)
    from backends.lava import run_lava

    np.testing.assert_array_equal(run_lava(q, x, record=["layer4"], timeout_s=120).spikes["layer4"][:, 0], ours)

"""NIR graphs from snnTorch and Norse on Lava (fused emission): the frameworks' own spikes."""

from __future__ import annotations

import pytest
from interchange.frameworks import agreement, make_norse, make_snntorch, spike_inputs

from snncompile import api, stages
from snncompile.netlist import NeuronPopulation, OutputKind


@pytest.mark.lava
@pytest.mark.parametrize("framework", ["snntorch", "norse"])
def test_framework_nir_on_lava_is_spike_exact(tmp_path, framework):
    path = tmp_path / f"{framework}.nir"
    run = make_snntorch(path) if framework == "snntorch" else make_norse(path, dt=1e-3)
    x = spike_inputs(20, 8, 16, seed=7)
    tr = api.trace(path, nir_dt=None if framework == "snntorch" else 1e-6)
    net = stages.lower(stages.optimize(tr.graph).graph)
    lava = stages.simulate_on("lava", net, x, timeout=300)
    got = {tr.neuron_sources[n]: net.populations[n].expand(s) for n, s in lava.spikes.items()}
    assert agreement(run(x), got)[0] == 1.0


@pytest.mark.lava
def test_cubalif_and_li_readout_on_lava():
    """snnTorch Synaptic (CubaLIF) spike for spike, and a Norse LI readout (non-spiking: the
    netlist's output is the population's membrane, sent as float64 by the fused processes)."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from interchange.frameworks import make_norse_readout, make_snntorch_synaptic

    from snncompile.sim.kernels import run_kernels

    with tempfile.TemporaryDirectory() as tmp:
        run = make_snntorch_synaptic(Path(tmp) / "s.nir")
        x = spike_inputs(20, 8, 16, seed=7)
        tr = api.trace(Path(tmp) / "s.nir")
        net = stages.lower(stages.optimize(tr.graph).graph)
        lava = stages.simulate_on("lava", net, x, timeout=300)
        got = {tr.neuron_sources[n]: net.populations[n].expand(s) for n, s in lava.spikes.items()}
        assert agreement(run(x), got) == (1.0, 6720)

        run = make_norse_readout(Path(tmp) / "n.nir")
        tr = api.trace(Path(tmp) / "n.nir", nir_dt=1e-6)
    net = stages.lower(stages.optimize(tr.graph).graph)
    assert net.output_kind is OutputKind.MEMBRANE and net.populations[net.output_pop].graded
    ref = run(x)
    lava = stages.simulate_on("lava", net, x, timeout=300)
    (hidden,) = tr.neuron_sources
    np.testing.assert_array_equal(net.populations[hidden].expand(lava.spikes[hidden]), ref["1"])
    values = lava.spikes[net.output_pop]
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, run_kernels(net, x)[net.output_pop])   # the kernels, bit for bit
    np.testing.assert_allclose(values, ref["3"], rtol=1e-6, atol=1e-7)           # Norse (float32 τ in its file)


def test_stock_emission_refuses_nir_dynamics_and_fixed_point_runs_cubalif(tmp_path):
    """Stock Lava and ONNX refuse CubaLIF by name; fixed point runs it as Loihi's CUBA
    compartment (a 24-bit current decayed by du = 4096·q_s, then the membrane) and refuses
    the non-spiking LI readout."""
    import numpy as np
    from interchange.frameworks import make_norse_readout, make_snntorch_synaptic

    from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
    from snncompile.ir.dynamics import CubaLIF
    from snncompile.sim.kernels import run_kernels

    run = make_snntorch_synaptic(tmp_path / "s.nir")
    net = stages.lower(stages.optimize(api.trace(tmp_path / "s.nir").graph).graph)
    x = spike_inputs(20, 8, 16, seed=7)
    with pytest.raises(SnnCompileError, match="cubalif neuron .NIR CubaLIF.") as err:
        stages.simulate_on("lava", net, x, timeout=60, emit="stock")
    assert err.value.exit_code == EXIT_UNSUPPORTED and "fused" in err.value.hint
    with pytest.raises(SnnCompileError, match="cannot write"):
        from backends.onnx.step import build_step

        build_step(net)
    qnet, _ = stages.quantize(net, x, (16,))
    hidden = next(n for n, p in qnet.populations.items()
                  if isinstance(p, NeuronPopulation) and isinstance(p.params, CubaLIF))
    qp = qnet.fixed[hidden].params
    # Lava decays u by (du + 1)/4096: du = 4096·q_s − 1; NIR's bias feeds the current, Lava's the
    # membrane: exact only as an extended (not stock) neuron
    assert qp.du == round(4096 * net.populations[hidden].params.syn_decay) - 1 and qp.dv > 0
    assert qp.bias_current and not qp.stock and any("bias" in r for r in qp.reasons)
    ints = stages.integer_reference(qnet, x)
    ref = run(x)
    agree = float(np.mean(qnet.populations[hidden].expand(ints[hidden]) == ref["1"].reshape(20, 8, -1)))
    assert agree > 0.9 and ints[hidden].sum() > 0          # 8-bit weights: close to snnTorch, not equal
    np.testing.assert_array_equal(run_kernels(qnet, x)[hidden], ints[hidden])

    make_norse_readout(tmp_path / "n.nir")
    net = stages.lower(stages.optimize(api.trace(tmp_path / "n.nir", nir_dt=1e-6).graph).graph)
    with pytest.raises(SnnCompileError, match="fixed-point") as err:
        stages.quantize(net, x, (16,))
    assert err.value.exit_code == EXIT_UNSUPPORTED and "LI" in err.value.hint


@pytest.mark.lava
def test_cubalif_fixed_point_on_lava_is_bit_exact_with_the_integer_reference(tmp_path):
    from interchange.frameworks import make_snntorch_synaptic

    make_snntorch_synaptic(tmp_path / "s.nir")
    net = stages.lower(stages.optimize(api.trace(tmp_path / "s.nir").graph).graph)
    x = spike_inputs(20, 8, 16, seed=7)
    qnet, _ = stages.quantize(net, x, (16,))
    ints = stages.integer_reference(qnet, x)
    lava = stages.simulate_on("lava", qnet, x, timeout=300)
    for name, spikes in lava.spikes.items():
        assert (spikes == ints[name]).all(), name

"""``--emit loihi``: a quantized network on Lava's standard processes only (RingBuffer,
Sparse/Dense/DelaySparse, LIFReset), bit-exact with the integer reference; what it cannot
express is rewritten exactly (OR-pools) or refused by name before Lava starts."""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import run_all
from nets import SDSANet, binary_spike_inputs, cifar_stock_ticket, exact_threshold_net
from torch import nn

from backends.lava import run_lava
from backends.lava.standard import STANDARD, rewrites, split_bias, standard_specs
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.fixedpoint.neuron_int import LoihiLIF
from snncompile.fixedpoint.quantize import quantize_plan
from snncompile.lower import lower
from snncompile.netlist import OUTPUT, OrPopulation, OutputKind
from snncompile.passes import run_passes
from snncompile.sim.integer import simulate_int

CIFAR = (3, 32, 32)


def _quantized(model: nn.Module, x: np.ndarray, shape: tuple[int, ...]):
    graph, _ = run_passes(run_all(model, x, shape).trace.graph)
    plan = lower(graph)
    q, _ = quantize_plan(plan, x)
    return plan, q


def _digits(name: str, n: int, steps: int):
    from snncompile import stages

    d = np.load("models/digits_test.npz")
    x0 = d["x"][:n].astype(np.float64)
    x = np.broadcast_to(x0[None], (steps, *x0.shape)).copy()
    tr = stages.trace(stages.load(f"models/{name}.pt"), x0.shape[1:])
    graph = stages.optimize(tr.graph).graph
    q, _ = quantize_plan(lower(graph), x)
    return q, x


def _assert_bit_exact(q, x, lava) -> int:
    ints = simulate_int(q, x)
    assert lava.spikes
    for name, s in lava.spikes.items():
        np.testing.assert_array_equal(s, ints[name], err_msg=name)
    if q.output_kind is OutputKind.VALUES:
        np.testing.assert_array_equal(lava.output, ints[OUTPUT])
    return sum(int(s.sum()) for s in lava.spikes.values())


@pytest.mark.lava
def test_shipped_ticket_on_standard_processes_is_bit_exact():
    """The pruned digits ticket (its max-pool an OR-pool, rewritten as LIF vth 0)."""
    q, x = _digits("digits_scnn_ticket", n=2, steps=4)
    assert rewrites(q), "the OR-pool should be rewritten"
    fired = _assert_bit_exact(q, x, run_lava(q, x, timeout_s=300, emit="loihi"))
    assert fired > 100


@pytest.mark.lava
def test_cifar_size_ticket_on_standard_processes_is_bit_exact():
    x = np.random.default_rng(1).random((3, 1, *CIFAR))
    plan, q = _quantized(cifar_stock_ticket(), x, CIFAR)
    assert max(p.size for p in plan.populations.values()) >= 128 * 32 * 32 * 0.9
    assert sum(isinstance(p, OrPopulation) for p in q.populations.values()) == 2
    assert len(rewrites(q)) == 2   # both OR-pools become LIF with vth 0
    fired = _assert_bit_exact(q, x, run_lava(q, x, timeout_s=600, emit="loihi"))
    assert fired > 1000


def test_every_neuron_becomes_lava_lif_parameters():
    """Stock neurons keep their integer parameters; the bias splits into Lava's 13-bit
    mantissa and 3-bit exponent exactly."""
    q, _ = _digits("digits_scnn_binw_ticket", n=2, steps=2)
    specs = standard_specs(q)
    for name, spec in specs.items():
        if spec is None:
            continue
        fixed = q.fixed[name]
        if isinstance(fixed.params, LoihiLIF):
            assert (spec.du, spec.dv, spec.vth) == (fixed.params.du, fixed.params.dv, fixed.params.vth)
        np.testing.assert_array_equal(spec.bias_mant.astype(np.int64) << spec.bias_exp, fixed.bias)
    mant, exp = split_bias(np.array([0, 4095, -4096, 8190, -8192 * 8, 4095 << 7]), "b")
    assert np.all(np.abs(mant) < 4097) and np.all(exp <= 7)
    np.testing.assert_array_equal(mant << exp, [0, 4095, -4096, 8190, -8192 * 8, 4095 << 7])
    with pytest.raises(SnnCompileError, match="13-bit mantissa"):
        split_bias(np.array([4097 << 8]), "b")


def test_what_standard_processes_cannot_run_is_refused_by_name():
    x = binary_spike_inputs(4, 3, (8,))
    _, soft = _quantized(exact_threshold_net(None, "plif", False), x, (8,))
    with pytest.raises(SnnCompileError, match=r"not a stock Loihi neuron \(soft") as exc:
        run_lava(soft, x, emit="loihi")
    assert exc.value.exit_code == EXIT_UNSUPPORTED and "--emit stock" in exc.value.hint
    xs = binary_spike_inputs(4, 2, (5, 8), p=0.4)
    _, attn = _quantized(SDSANet(), xs, (5, 8))
    with pytest.raises(SnnCompileError, match="spike·spike product"):
        standard_specs(attn)
    float_plan, _ = _quantized(exact_threshold_net(0.0, "if"), x, (8,))
    with pytest.raises(SnnCompileError, match="quantized") as exc:
        run_lava(float_plan, x, emit="loihi")
    assert exc.value.exit_code == EXIT_USAGE and exc.value.hint == "add --fixed-point"
    assert STANDARD.missing() == []


def test_only_the_loihi_emission_claims_chip_fit():
    import snncompile

    with pytest.raises(SnnCompileError, match="--emit loihi") as exc:
        snncompile.compile("models/digits_scnn_ticket.pt", "lava", emit="loihi")
    assert exc.value.hint == "add --fixed-point"
    rep = snncompile.compile("models/digits_scnn_ticket.pt", "lava", emit="loihi", fixed_point=True)
    fit = rep.mapping["chip_fit"]
    assert fit["claimed"] and list(fit["exact_rewrites"]) == ["pool2d_6"]
    assert not snncompile.compile("models/digits_scnn_ticket.pt", "lava", fixed_point=True).mapping["chip_fit"]["claimed"]


@pytest.mark.lava
def test_the_loihi_emission_builds_lava_standard_processes_only():
    """Every neuron process is Lava's own LIFReset (no SJNeuron, no fused or product process)."""
    from backends.lava import network

    q, x = _digits("digits_scnn_ticket", n=1, steps=2)
    arith = network.arithmetic(q, "loihi")
    procs = network._processes(arith, x, 2, 2 + q.depth)
    assert {type(p).__module__ for p in procs.values()} == {"lava.proc.io.source", "lava.proc.lif.process"}
    assert {type(p).__name__ for n, p in procs.items() if n != q.source.name} == {"LIFReset"}
    stock = network._processes(network.arithmetic(q, "stock"), x, 2, 2 + q.depth)
    assert any(not type(p).__module__.startswith("lava.") for p in stock.values())   # SJNeuron: ours

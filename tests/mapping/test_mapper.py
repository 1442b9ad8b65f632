"""Core mapping against limits computed by hand, and the over-capacity error."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.lower import lower
from snncompile.mapping import load_chip, map_to_cores
from snncompile.passes import run_passes


def mlp(n_in: int, hidden: int, density: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(n_in, hidden), neuron.IFNode(), nn.Linear(hidden, 10), neuron.IFNode()).eval()
    with torch.no_grad():
        m[0].weight.mul_((torch.rand(m[0].weight.shape) < density).float())
    return m


def plan_of(model: nn.Module, shape) -> object:
    g, _ = run_passes(trace_model(model, shape).graph)
    return lower(g)


def test_neuron_limit_splits_layers():
    chip = load_chip("loihi1")
    cmap = map_to_cores(plan_of(mlp(16, 2500), (16,)), chip)
    layers = {row["layer"]: row for row in cmap.layers()}
    hidden = layers["neuron_1"]
    assert hidden["cores"] == 3 and hidden["neurons"] == 2500     # ⌈2500 / 1024⌉
    assert [c.neurons for c in cmap.cores if c.layer == "neuron_1"] == [1024, 1024, 452]
    assert hidden["binding_limit"] == "neurons"
    assert cmap.chips == 1
    # each hidden neuron projects to the single output core: one output axon each
    assert sum(c.output_axons for c in cmap.cores if c.layer == "neuron_1") == 2500


def test_synapse_memory_binds_for_wide_fan_in():
    chip = load_chip("loihi1")
    cmap = map_to_cores(plan_of(mlp(4000, 300), (4000,)), chip)
    cores = [c for c in cmap.cores if c.layer == "neuron_1"]
    per_neuron = 4000 * (8 + chip.synapse_index_bits)              # float weights stored in 8 bits
    per_core = chip.synapse_bits_per_core // per_neuron
    assert [c.neurons for c in cores][:-1] == [per_core] * (len(cores) - 1)
    assert cores[0].bound == "synapse_bits" and len(cores) == -(-300 // per_core)


def test_fan_in_above_axon_limit_is_a_clear_error():
    with pytest.raises(SnnCompileError) as e:
        map_to_cores(plan_of(mlp(5000, 8), (5000,)), load_chip("loihi1"))
    assert e.value.exit_code == EXIT_UNSUPPORTED
    assert "neuron_1" in e.value.message and "5,000 inputs" in e.value.message and "4,096" in e.value.message
    assert "prune" in e.value.hint
    # pruned below the limit, the same layer fits
    cmap = map_to_cores(plan_of(mlp(5000, 8, density=0.5), (5000,)), load_chip("loihi1"))
    assert len(cmap.cores) >= 2


def test_profiles_mark_unverified_figures(tmp_path):
    l2 = load_chip("loihi2")
    assert "neurons_per_core" in l2.unverified
    custom = tmp_path / "tiny.toml"
    fields = dataclasses.asdict(load_chip("loihi1"))
    fields.update(name="tiny", neurons_per_core=100, unverified=[])
    custom.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items()))
    cmap = map_to_cores(plan_of(mlp(16, 250), (16,)), load_chip(str(custom)))
    assert [c.neurons for c in cmap.cores if c.layer == "neuron_1"] == [100, 100, 50]
    with pytest.raises(SnnCompileError, match="unknown chip profile"):
        load_chip("loihi9")
    assert np.isfinite(cmap.to_dict()["layers"][0]["utilisation"]["neurons"])


def test_loihi2_splits_a_layer_above_its_neurons_per_core_and_says_the_limit_is_unverified():
    """Loihi 2 places 8,192 neurons per core (the profile's unverified figure): 9,000 IF
    neurons with 2 inputs each (42 bits of synapses: memory never binds) need two cores."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 9000), neuron.IFNode()).eval()
    chip = load_chip("loihi2")
    cmap = map_to_cores(plan_of(model, (2,)), chip)
    cores = [c for c in cmap.cores if c.layer == "neuron_1"]
    assert [c.neurons for c in cores] == [chip.neurons_per_core, 9000 - chip.neurons_per_core]
    assert cores[0].bound == "neurons" and cores[0].synapse_bits == chip.neurons_per_core * 2 * (8 + 13)
    report = cmap.to_dict()
    assert "neurons_per_core" in report["unverified"] and report["chips"] == 1


def test_a_core_with_too_many_output_axons_is_re_split():
    """A 32-channel conv layer of 4,608 neurons fits one Loihi 2 core by neurons, but each
    neuron reaches several cores of the next conv layer (split by its input axons): the
    mapper re-splits the layer until every core's output axons fit (it used to refuse)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), neuron.IFNode(),
                          nn.Conv2d(32, 32, 3, padding=1), neuron.IFNode()).eval()
    plan = plan_of(model, (1, 12, 12))
    for name in ("loihi1", "loihi2"):
        chip = load_chip(name)
        cmap = map_to_cores(plan, chip)
        first = [c for c in cmap.cores if c.layer == "neuron_1"]
        assert len(first) > -(-4608 // chip.neurons_per_core)
        assert sum(c.neurons for c in first) == 4608
        assert {r["layer"]: r["binding_limit"] for r in cmap.layers()}["neuron_1"] == "output_axons"
        for c in cmap.cores:
            assert c.output_axons <= chip.output_axons_per_core and c.input_axons <= chip.input_axons_per_core
        # each neuron of layer 1 reaches at least one core of layer 2: at least one axon each
        assert sum(c.output_axons for c in first) >= 4608


def test_the_report_says_which_limits_are_cited_and_which_unverified():
    cmap = map_to_cores(plan_of(mlp(16, 20), (16,)), load_chip("loihi1"))
    limits = cmap.to_dict()["limits"]
    assert limits["neurons_per_core"] == {"value": 1024, "status": "cited (source)"}
    assert limits["synapse_index_bits"]["status"] == "unverified"

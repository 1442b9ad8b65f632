"""Energy estimation: exact operation counts × cited cost models."""

from snncompile.energy.costs import CostModel, available, load_cost_model
from snncompile.energy.counts import (
    LayerCount,
    NeuronCount,
    dynamic_counts,
    measured_firing_rates,
    neuron_counts,
    parse_firing_rates,
    static_counts,
)
from snncompile.energy.estimate import energy_summary, estimate_energy
from snncompile.energy.plot import plot_energy
from snncompile.energy.render import render_energy

__all__ = ["CostModel", "available", "load_cost_model", "LayerCount", "NeuronCount", "static_counts",
           "dynamic_counts", "neuron_counts", "measured_firing_rates", "parse_firing_rates",
           "energy_summary", "estimate_energy", "render_energy", "plot_energy"]

"""Energy estimation: exact operation counts × cited cost models → a typed report."""

from snncompile.energy.costs import CostModel, available, load_cost_model
from snncompile.energy.counts import (
    LayerCount,
    NeuronCount,
    dynamic_counts,
    measured_firing_rates,
    neuron_counts,
    static_counts,
)
from snncompile.energy.estimate import estimate_energy
from snncompile.energy.plot import plot_energy
from snncompile.energy.rates import parse_firing_rates
from snncompile.energy.render import render_energy
from snncompile.energy.report import EnergyReport

__all__ = ["CostModel", "available", "load_cost_model", "LayerCount", "NeuronCount", "static_counts",
           "dynamic_counts", "neuron_counts", "measured_firing_rates", "parse_firing_rates",
           "estimate_energy", "EnergyReport", "render_energy", "plot_energy"]

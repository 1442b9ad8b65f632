"""Energy estimation: exact operation counts × cited cost models."""

from snncompile.energy.costs import CostModel, load_cost_model
from snncompile.energy.counts import LayerCount, dynamic_counts, static_counts
from snncompile.energy.estimate import energy_summary

__all__ = ["CostModel", "load_cost_model", "LayerCount", "static_counts", "dynamic_counts",
           "energy_summary"]

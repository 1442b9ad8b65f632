"""The one lowering: final IR → netlist (:mod:`snncompile.netlist`)."""

from snncompile.lower.lower import LOWER, OR_PARAMS, count_synapses, lower

__all__ = ["LOWER", "OR_PARAMS", "count_synapses", "lower"]

"""The netlist: populations and projections (kernels kept), the lowering's one output."""

from snncompile.netlist.netlist import (
    OUTPUT,
    Chain,
    FixedNetlist,
    FixedPoint,
    Netlist,
    OutputKind,
    Projection,
    synaptic_memory,
)
from snncompile.netlist.populations import (
    POPULATION_REGISTRIES,
    POPULATION_TYPES,
    BiasMap,
    DelayPopulation,
    InputPopulation,
    MissingPopulation,
    NeuronPopulation,
    Operand,
    OrPopulation,
    Population,
    PopulationRegistry,
    ProductPopulation,
    bias_map,
)

__all__ = ["OUTPUT", "POPULATION_REGISTRIES", "POPULATION_TYPES", "BiasMap", "Chain", "DelayPopulation", "FixedNetlist",
           "FixedPoint", "InputPopulation", "MissingPopulation", "Netlist", "NeuronPopulation", "Operand", "OutputKind",
           "OrPopulation", "Population", "PopulationRegistry", "ProductPopulation", "Projection",
           "bias_map", "synaptic_memory"]

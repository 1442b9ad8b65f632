"""The netlist: populations and projections (kernels kept), the lowering's one output."""

from snncompile.netlist.netlist import (
    OUTPUT,
    Chain,
    FixedNetlist,
    FixedPoint,
    Netlist,
    OutputKind,
    Projection,
    refuse_host,
    synaptic_memory,
    window_stages,
)
from snncompile.netlist.populations import (
    OFF_CORE,
    POPULATION_REGISTRIES,
    POPULATION_TYPES,
    WINDOW_HINT,
    BiasMap,
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    MissingPopulation,
    NeuronPopulation,
    Operand,
    OrPopulation,
    Population,
    PopulationRegistry,
    ProductPopulation,
    bias_map,
    host_populations,
    host_refusal,
    window_refusal,
)

__all__ = ["OUTPUT", "POPULATION_REGISTRIES", "POPULATION_TYPES", "BiasMap", "Chain", "DelayPopulation", "FixedNetlist",
           "FixedPoint", "InputPopulation", "MissingPopulation", "Netlist", "NeuronPopulation", "Operand", "OutputKind",
           "OrPopulation", "Population", "PopulationRegistry", "ProductPopulation", "Projection",
           "bias_map", "synaptic_memory", "OFF_CORE", "HostPopulation", "host_populations", "host_refusal", "refuse_host",
           "window_refusal", "window_stages", "WINDOW_HINT"]

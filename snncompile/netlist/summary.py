"""The lowering's summary in the report: counts and lists per population kind.

Each kind adds its own facts (:data:`SUMMARY`, a :class:`PopulationRegistry`: a new kind
without an entry fails ``tests/netlist/test_population_registries.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncompile.netlist.netlist import Netlist, window_stages
from snncompile.netlist.populations import (
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    NeuronPopulation,
    OrPopulation,
    PopulationRegistry,
    ProductPopulation,
)

SUMMARY = PopulationRegistry("lowering summary")


@SUMMARY.register(InputPopulation)
def _input(pop: InputPopulation, out: dict[str, Any]) -> None:
    """The input is read, not computed: not a unit of the compiled network."""


@SUMMARY.register(NeuronPopulation)
def _neurons(pop: NeuronPopulation, out: dict[str, Any]) -> None:
    out["populations"] += 1
    out["neurons"] += pop.size
    out["neurons_removed"] += pop.logical_size - pop.size


@SUMMARY.register(OrPopulation)
def _or(pop: OrPopulation, out: dict[str, Any]) -> None:
    _neurons(pop, out)   # OR neurons are neurons (of a memoryless model)
    out["or_populations"] += 1


@SUMMARY.register(ProductPopulation)
def _product(pop: ProductPopulation, out: dict[str, Any]) -> None:
    out["custom_processes"].append({"name": pop.name, "kind": "spike matmul",
                                    "note": "no static synapses: not mappable to Loihi synapses"})


@SUMMARY.register(DelayPopulation)
def _delay(pop: DelayPopulation, out: dict[str, Any]) -> None:
    # recurrent loops and NIR Delays: on a chip the synapses' own delay; in Lava a relay process
    out["delay_lines"].append({"name": pop.name, "steps": int(np.max(pop.steps)), "per_neuron": bool(np.ndim(pop.steps)),
                               "sends": "spikes" if pop.relay else "values", "size": pop.size})


@SUMMARY.register(HostPopulation)
def _host(pop: HostPopulation, out: dict[str, Any]) -> None:
    # off the neuromorphic cores: the embedded CPU or the host runs it (issue #24)
    out["host_partitions"].append({"name": pop.name, "op": pop.fn.describe(), "source": pop.source or pop.name,
                                   "size": pop.size})


def lowering_summary(net: Netlist) -> dict[str, Any]:
    """Populations, neurons, synapses, latency, output and implementations of ``net``."""
    out: dict[str, Any] = {"populations": 0, "or_populations": 0, "custom_processes": [], "delay_lines": [],
                           "host_partitions": [],
                           "neurons": 0, "neurons_removed": 0}
    for pop in net.populations.values():
        SUMMARY(pop)(pop, out)
    stages = window_stages(net)
    if any(stages.values()):   # window hosts (time barriers): the run is staged (issue 24)
        out["stages"] = {"count": max(stages.values()) + 1,
                         "barriers": [n for n, p in net.populations.items()
                                      if isinstance(p, HostPopulation) and p.fn.window],
                         "schedule": "stage k runs all T steps on the cores, then the host computes the window "
                                     "host(s) of stage k + 1 from every step, then stage k + 1 runs all T steps"}
    out.update({
        "projections": sum(1 for p in net.projections if p.nnz),
        "synapses": sum(p.nnz for p in net.projections),
        "latency_steps": net.depth,
        "output": net.output_kind.value,
        "synaptic_memory_bytes": sum(p.memory_bits for p in net.projections) // 8,
        "implementations": [{"from": p.src, "to": p.dst, "layers": p.layers, "impl": p.impl,
                             "synapses": p.nnz, "delay": p.delay, "weight_bits": p.weight_bits,
                             "memory_bits": p.memory_bits} for p in net.projections],
    })
    return out

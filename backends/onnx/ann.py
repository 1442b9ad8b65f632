"""The ANN variant the energy report compares against, as an ONNX model.

The same compiled topology and weights, one pass on a static input: every neuron
population becomes ReLU(drive) (drive = its synapses' sum + bias), an OR population (a
max-pool of spikes) a MaxPool of its source's activations, a spike product the product of
activations, and the readout the same affine map (or the output population's
activations). Removed neurons stay removed (output 0). A delay population (a recurrent
loop) sends its initial state, 0: one pass has no earlier step to read.
"""

from __future__ import annotations

import json

import onnx

from backends.onnx.builder import Builder
from backends.onnx.network import INPUT, READOUT, NetworkEmitter, order
from backends.onnx.ops import LINEAR, MAX
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.netlist import (
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    Population,
    PopulationRegistry,
    ProductPopulation,
    host_refusal,
)

FORMAT = "snncompile ANN variant"


ANN_ACTIVATION = PopulationRegistry("ONNX ANN activation")   # (emitter, population) → its value, None: none


@ANN_ACTIVATION.register(NeuronPopulation)
def _relu(em: NetworkEmitter, pop: NeuronPopulation) -> str:
    return em.b.op("Relu", [em.drive(pop.name, pop.bias, LINEAR)], f"{pop.name}_relu")


@ANN_ACTIVATION.register(OrPopulation)
def _max(em: NetworkEmitter, pop: OrPopulation) -> str:
    return em.drive(pop.name, pop.bias, MAX)


@ANN_ACTIVATION.register(HostPopulation)
def _host(em: NetworkEmitter, pop: HostPopulation) -> str:
    raise SnnCompileError(host_refusal(pop, "the ONNX ANN emission"),
                          "the reference simulator (--target energy) runs host partitions exactly", EXIT_UNSUPPORTED)


@ANN_ACTIVATION.register(ProductPopulation)
def _product(em: NetworkEmitter, pop: ProductPopulation) -> str:
    return em.product(pop)


@ANN_ACTIVATION.register(InputPopulation, DelayPopulation)
def _no_activation(em: NetworkEmitter, pop: Population) -> None:
    """The input is given; a delay reads zeros in the one static pass (set before the loop)."""
    return None


def build_ann(net: Netlist, dtype: str = "float64") -> onnx.ModelProto:
    """Input ``x`` [N, *input shape]; outputs ``readout`` and ``<population>.act`` per population
    (named by its module path, as in the step model)."""
    b = Builder(dtype)
    em = NetworkEmitter(b, net)
    outputs = []
    for pop in net.delays:
        em.kept[pop.name] = em.zeros(pop.size, f"{pop.name}_initial")
    for pop in order(net):
        act = ANN_ACTIVATION(pop)(em, pop)
        if act is not None:
            em.kept[pop.name] = act
            outputs.append((act, f"{net.label(pop.name)}.act", pop.size))
    readout = em.readout()
    for value, name, size in outputs:
        b.add_output(value, name, (size,))
    b.add_output(readout, READOUT, tuple(net.output_shape))
    meta = {"format": FORMAT, "dtype": dtype, "input": INPUT, "input_shape": list(em.input_shape),
            "readout": READOUT, "activations": [name for _, name, _ in outputs]}
    doc = ("ANN variant of a spiking network compiled by snncompile: neurons as ReLU, OR "
           "populations as max-pools, one pass on a static input.")
    return b.model("ann", doc, {"snncompile": json.dumps(meta)})

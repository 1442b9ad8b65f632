"""The converter's op table: one handler module per op or layer family.

Importing this package fills the table (``registry``); ``snncompile.frontend.trace`` runs
it over the traced fx graph. Adding an op: docs/frontend.md, "Adding an op".
"""

from snncompile.frontend.ops import (  # noqa: F401 - each module registers its handlers
    arithmetic,
    attention,
    containers,
    functional,
    hand_neurons,
    host,
    host_select,
    indexing,
    inline_neurons,
    neurons,
    normalization,
    pooling,
    refusals,
    shape,
    snntorch_neurons,
    synapses,
)
from snncompile.frontend.ops.common import SUPPORTED, is_neuron
from snncompile.frontend.ops.context import PROBE_B, PROBE_T, Converter
from snncompile.frontend.ops.registry import call_op, calls, module_classes, module_handler, op_name

__all__ = ["PROBE_B", "PROBE_T", "SUPPORTED", "Converter", "call_op", "calls", "is_neuron", "module_classes",
           "module_handler", "op_name"]

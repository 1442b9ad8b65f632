"""The converter's op table (snncompile.frontend.ops): every op and layer the frontend
compiles has a handler, unknown ones are refused by name, and a new op is one handler plus
one registry entry."""

import operator

import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.frontend.ops import Converter, call_op, calls, module_handler, registry
from snncompile.frontend.trace import _TORCH_LAYERS
from snncompile.ir import Neuron, Scale

# what the test models and the corpus use, by name (functions and Tensor methods alike)
TRACED = ("add", "__add__", "iadd", "sub", "__sub__", "isub", "rsub", "mul", "__mul__", "imul", "truediv",
          "div", "matmul", "__matmul__", "flatten", "view", "reshape", "contiguous", "permute", "transpose",
          "mean", "sum", "cat", "concat", "chunk", "split", "unbind", "unsqueeze", "squeeze", "repeat",
          "expand", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")
REFUSED = ("topk", "sort", "gather", "where", "rand_like", "bernoulli")


@pytest.mark.parametrize("opcode", ["call_function", "call_method"])
@pytest.mark.parametrize("name", TRACED + REFUSED)
def test_every_traced_op_has_a_handler(opcode, name):
    assert call_op(opcode, name) is not None


def test_getitem_and_stack_are_functions_only():
    assert call_op("call_function", "getitem") is not None and call_op("call_method", "getitem") is None
    assert call_op("call_function", "stack") is not None and call_op("call_method", "stack") is None


def test_refusals_and_pieces_run_before_the_tensor_check():
    early = {name for (_, name), op in calls().items() if op.early}
    assert {"topk", "where", "rand_like", "chunk", "split", "getitem"} <= early
    assert not {"add", "mul", "view", "mean", "cat"} & early


@pytest.mark.parametrize("cls", [*_TORCH_LAYERS, layer.Conv2d, layer.Linear, layer.BatchNorm2d,
                                 layer.SeqToANNContainer, layer.VotingLayer, layer.Flatten, nn.Sequential])
def test_every_leaf_layer_has_a_handler(cls):
    """is_leaf keeps these as units: each must have a handler (found along the MRO)."""
    assert module_handler(cls.__new__(cls)) is not None


@pytest.mark.parametrize("cls", [neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode])
def test_every_spikingjelly_neuron_has_a_family(cls):
    """Neurons are built by the family that claims them (registry.neuron_family), not by a layer handler."""
    family = registry.family_of(cls.__new__(cls))
    assert family is not None and family.name == "spikingjelly"


def test_unknown_layer_has_no_handler():
    assert module_handler(nn.ReLU()) is None and module_handler(nn.ConvTranspose2d(1, 1, 1)) is None


def test_two_handlers_for_one_op_are_an_error():
    with pytest.raises(ValueError, match="two handlers for call_method `view`"):
        registry.op("an_op_of_nobody", "view", opcodes=("call_method",))(lambda cx, n: None)
    assert registry.call_op("call_method", "an_op_of_nobody") is None   # nothing registered
    with pytest.raises(ValueError, match="two handlers for Linear"):
        registry.layer(nn.Linear)(lambda cx, m, path, src, shape: src)


class _Exp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.sn = neuron.IFNode()

    def forward(self, x):
        return self.sn(self.fc(x).exp())


def test_unknown_method_is_refused_by_name():
    with pytest.raises(SnnCompileError, match="unsupported operation `exp`") as e:
        trace_model(_Exp().eval(), (4,))
    assert e.value.exit_code == EXIT_UNSUPPORTED


def test_a_new_op_is_one_handler_and_one_entry(monkeypatch):
    """Registering a handler for ``exp`` is all it takes for the converter to use it."""
    def exp(cx: Converter, n: fx.Node) -> str:   # a stand-in: e·x, only to see it called
        return cx.add("exp", Scale(cx.sample_shape(n), n.format_node(), factor=2.0),
                      [cx.ir_input(n.args[0], n.format_node())])

    monkeypatch.setitem(registry._CALLS, ("call_method", "exp"), registry.Op(exp))
    g = trace_model(_Exp().eval(), (4,)).graph
    assert [node.op for _, node in g.items()] == ["input", "linear", "scale", "neuron", "output"]
    assert "exp" in g.nx and g.node("exp").factor == 2.0 and len(g.of_type(Neuron)) == 1


def test_dead_python_values_skip_their_handler():
    """``x.size(0)`` and its arithmetic are Python values: no handler runs, no node is added."""
    class Sized(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 4)
            self.sn = neuron.IFNode()

        def forward(self, x):
            return self.sn(self.fc(x.view(x.size(0), -1)))

    g = trace_model(Sized().eval(), (2, 3)).graph
    assert [node.op for _, node in g.items()] == ["input", "reshape", "linear", "neuron", "output"]


class _Asserting(nn.Module):
    """Checks its input in forward(): a plain AssertionError, raised by no traced operation."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.sn = neuron.IFNode()

    def forward(self, x):
        assert x.shape[-1] == 5, "expects 5 features"
        return self.sn(self.fc(x))


def test_forward_that_raises_by_itself_is_reported_not_an_internal_error():
    """It used to read an unbound ``exc`` (UnboundLocalError: an internal error)."""
    with pytest.raises(SnnCompileError) as e:
        trace_model(_Asserting().eval(), (4,))
    assert "cannot trace the model on input of shape (5, 4): AssertionError: expects 5 features" in e.value.message
    assert e.value.exit_code == EXIT_UNSUPPORTED and "--input-shape" in e.value.hint


def test_an_operation_failing_on_the_shape_names_the_shape():
    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 3)
            self.sn = neuron.IFNode()

        def forward(self, x):
            return self.sn(self.fc(x))

    with pytest.raises(SnnCompileError, match=r"fails on input of per-sample shape \(4,\)") as e:
        trace_model(Wrong().eval(), (4,))
    assert e.value.exit_code == EXIT_USAGE


def test_getitem_target_is_operator_getitem():
    """fx records ``x[i]`` as operator.getitem: the name the table keys it by."""
    assert registry.op_name(fx.Graph().call_function(operator.getitem, (None, 0))) == "getitem"
    assert torch.stack.__name__ == "stack"

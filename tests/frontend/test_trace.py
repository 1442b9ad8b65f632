"""torch.fx tracing into the IR: structure, shapes, and unsupported constructs."""

import numpy as np
import pytest
import torch
from nets import ResidualNet, conv_net, seq_container_net
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import Add, BatchNorm, Conv2d, Linear, Neuron, Pool2d
from snncompile.ir.dynamics import IF, LIF, PLIF


def test_conv_net_structure():
    g = trace_model(conv_net("s"), (1, 8, 8)).graph
    ops = [node.op for _, node in g.items()]
    assert ops == ["input", "conv2d", "batchnorm", "neuron", "pool2d", "conv2d", "batchnorm", "neuron",
                   "pool2d", "reshape", "linear", "neuron", "output"]
    neurons = [g.node(n) for n in g.of_type(Neuron)]
    assert [(type(n.dynamics), n.dynamics.v_reset) for n in neurons] == [(LIF, 0.0), (IF, None), (PLIF, -0.2)]
    assert (neurons[0].dynamics.decay_input, neurons[2].dynamics.decay_input) == (True, False)
    assert neurons[1].dynamics.v_threshold == 0.8
    assert neurons[2].dynamics.decay == pytest.approx(1 / 3.0)
    assert g.node(g.output_name).shape == (10,)


def test_seq_container_expanded_and_time_axes_found():
    tr = trace_model(seq_container_net(), (2, 8, 8))
    g = tr.graph
    assert tr.step_mode == "m"
    assert len(g.of_type(Conv2d)) == 1 and len(g.of_type(Linear)) == 2 and len(g.of_type(BatchNorm)) == 2
    assert g.node(g.of_type(Conv2d)[0]).shape == (4, 4, 4)


def test_residual_add_traced():
    g = trace_model(ResidualNet(), (20,)).graph
    add = g.of_type(Add)
    assert len(add) == 1 and len(g.inputs(add[0])) == 2


def test_weights_are_read_only_views_of_the_model_and_pool_parameters_copied():
    """The IR does not hold a paper-size model twice: its weights share the model's memory,
    read-only so that no pass can change the model behind the user's back."""
    m = conv_net("s")
    g = trace_model(m, (1, 8, 8)).graph
    conv = g.node(g.of_type(Conv2d)[0])
    np.testing.assert_array_equal(conv.weight, m[0].weight.detach().double().numpy())
    assert np.shares_memory(conv.weight, m[0].weight.detach().numpy())
    with pytest.raises(ValueError, match="read-only"):
        conv.weight[0, 0, 0, 0] = 1.0
    pool = g.node(g.of_type(Pool2d)[1])
    assert (pool.mode, pool.kernel, pool.stride) == ("avg", (2, 2), (2, 2))


@pytest.mark.parametrize("bad,typename", [(nn.ReLU(), "torch.nn.modules.activation.ReLU"),
                                          (nn.ConvTranspose1d(4, 4, 1), "torch.nn.modules.conv.ConvTranspose1d")])
def test_unsupported_layer_names_path_type_and_supported_list(bad, typename):
    m = nn.Sequential(nn.Identity(), nn.Identity(), nn.Sequential(bad), neuron.IFNode()).eval()
    with pytest.raises(SnnCompileError) as e:
        trace_model(m, (4, 3))
    assert e.value.exit_code == EXIT_UNSUPPORTED
    assert "`2.0`" in e.value.message and typename in e.value.message
    assert "LIFNode" in e.value.hint and "Conv2d" in e.value.hint


def test_host_function_is_named_when_host_partitions_are_refused():
    class Mul(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.sn = neuron.IFNode()

        def forward(self, x):
            return self.sn(torch.sigmoid(self.fc(x)))

    # a real-valued sigmoid is a host partition (issue #24); a pure network refuses it by name
    assert trace_model(Mul().eval(), (4,)).graph is not None
    with pytest.raises(SnnCompileError, match="`sigmoid` .*host operation"):
        trace_model(Mul().eval(), (4,), no_host=True)


def test_no_neurons_and_mixed_modes_rejected():
    with pytest.raises(SnnCompileError, match="no spiking neurons"):
        trace_model(nn.Sequential(nn.Linear(2, 2)), (2,))
    m = nn.Sequential(layer.Linear(2, 2, step_mode="m"), neuron.IFNode(step_mode="s"))
    with pytest.raises(SnnCompileError, match="mixes single-step"):
        trace_model(m, (2,))


def test_wrong_input_shape_is_a_usage_error():
    with pytest.raises(SnnCompileError, match="fails on input of per-sample shape") as e:
        trace_model(conv_net("s"), (3, 8, 8))
    assert "--input-shape" in e.value.hint


class CountingIF(neuron.IFNode):
    """An IF neuron that keeps a Python-side statistic: ``.item()`` has no value on the meta
    device, so the shape probe must fall back to running the model itself."""

    def single_step_forward(self, x):
        self.seen = getattr(self, "seen", 0) + int(x.abs().sum().item() >= 0)
        return super().single_step_forward(x)


def test_a_neuron_that_cannot_run_on_meta_is_traced_without_running_the_model():
    # the neuron's .item() fails on meta values: a neuron maps each input element to one
    # output, so its shape is known without running the (possibly paper-size) model for real
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), CountingIF())
    g = trace_model(model, (2, 3)).graph
    assert g.node(g.of_type(Linear)[0]).shape == (4,)
    assert g.node(g.of_type(Neuron)[0]).shape == (4,)
    assert not hasattr(model[2], "seen"), "the model itself was run"

"""The legacy ``spikingjelly.clock_driven`` names published code imports (#23): every name
read in published repositories (Spikformer, Spike-driven Transformer, SEW-ResNet and
spikingjelly's 0.0.0.0.12 examples, the SNN lottery-ticket code, TET, DVS gesture code)
imports and is the right class; the 0.0.0.0.12 names with no counterpart fail with an
snncompile error naming them."""

from __future__ import annotations

import importlib

import pytest
from spikingjelly.activation_based import functional as new_functional
from spikingjelly.activation_based import layer as new_layer
from spikingjelly.activation_based import neuron as new_neuron
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import legacy, trace_model

PUBLISHED = {
    "neuron": ["IFNode", "LIFNode", "ParametricLIFNode", "MultiStepIFNode", "MultiStepLIFNode",
               "MultiStepParametricLIFNode", "BaseNode"],
    "layer": ["SeqToANNContainer", "MultiStepContainer", "MultiStepDropout", "MultiStepDropout2d", "Dropout",
              "Dropout2d", "SynapseFilter", "PrintShapeModule", "NeuNorm", "DropConnectLinear",
              "ElementWiseRecurrentContainer", "LinearRecurrentContainer", "MultiStepThresholdDependentBatchNorm2d",
              "MultiStepTemporalWiseAttention"],
    "functional": ["reset_net", "multi_step_forward", "seq_to_ann_forward", "set_threshold_margin",
                   "first_spike_index", "redundant_one_hot", "kernel_dot_product", "spike_similar_loss",
                   "temporal_efficient_training_cross_entropy", "kaiming_normal_conv_linear_weight"],
    "surrogate": ["ATan", "atan", "Sigmoid", "sigmoid", "SurrogateFunctionBase", "heaviside", "PiecewiseQuadratic",
                  "PiecewiseExp", "SoftSign", "NonzeroSignLogAbs", "Erf", "PiecewiseLeakyReLU",
                  "SquarewaveFourierSeries", "S2NN", "QPseudoSpike", "check_manual_grad"],
    "encoding": ["PoissonEncoder", "StatelessEncoder", "StatefulEncoder", "PeriodicEncoder", "LatencyEncoder",
                 "WeightedPhaseEncoder"],
    "base": ["MemoryModule"],
}
REFUSED_NAMES = [("neuron", n) for n in ("EIFNode", "MultiStepEIFNode", "QIFNode", "LIAFNode", "GeneralNode",
                                         "AdaptiveBaseNode")] + \
                [("layer", n) for n in ("DCT", "AXAT", "ChannelsPool", "ConvBatchNorm2d", "SpikeConv2d", "STDPLearner")] + \
                [("functional", "fuse_convbn2d"), ("surrogate", "MultiArgsSurrogateFunctionBase")]
REFUSED_MODULES = ["model", "model.sew_resnet", "model.spiking_resnet", "model.spiking_vgg", "accelerating",
                   "cu_kernel_opt", "neuron_kernel", "monitor", "ann2snn", "lava_exchange"]


@pytest.fixture(scope="module", autouse=True)
def shim():
    legacy.install()


@pytest.mark.parametrize("module,name", [(m, n) for m, names in PUBLISHED.items() for n in names])
def test_every_published_name_imports(module, name):
    mod = importlib.import_module(f"spikingjelly.clock_driven.{module}")
    assert getattr(mod, name) is not None


def test_legacy_classes_are_todays_with_the_legacy_step_mode():
    from spikingjelly.clock_driven import layer, neuron

    for old, new, mode in [("LIFNode", new_neuron.LIFNode, "s"), ("MultiStepIFNode", new_neuron.IFNode, "m"),
                           ("MultiStepParametricLIFNode", new_neuron.ParametricLIFNode, "m")]:
        n = getattr(neuron, old)(backend="cupy")   # legacy-only options are accepted
        assert isinstance(n, new) and n.step_mode == mode
    bn = layer.MultiStepThresholdDependentBatchNorm2d(alpha=1.0, v_th=1.0, num_features=8)
    assert isinstance(bn, new_layer.ThresholdDependentBatchNorm2d) and bn.step_mode == "m"
    from spikingjelly.clock_driven.functional import reset_net

    assert reset_net is new_functional.reset_net


@pytest.mark.parametrize("module,name", REFUSED_NAMES)
def test_names_without_counterpart_are_refused_by_name(module, name):
    mod = importlib.import_module(f"spikingjelly.clock_driven.{module}")
    with pytest.raises(SnnCompileError, match=rf"`spikingjelly\.clock_driven\.{module}\.{name}` .*no counterpart") as e:
        getattr(mod, name)
    assert e.value.exit_code == EXIT_UNSUPPORTED
    if module == "neuron":
        assert "LIFNode" in e.value.hint
    # hasattr() probes of other names stay ordinary (AttributeError)
    assert not hasattr(mod, "no_such_name_anywhere")


@pytest.mark.parametrize("sub", REFUSED_MODULES)
def test_legacy_modules_without_counterpart_are_refused_by_name(sub):
    with pytest.raises(SnnCompileError, match=rf"`spikingjelly\.clock_driven\.{sub.split('.')[0]}"):
        importlib.import_module(f"spikingjelly.clock_driven.{sub}")
    top = sub.split(".")[0]
    with pytest.raises(SnnCompileError, match=rf"`spikingjelly\.clock_driven\.{top}`") as e:
        exec(f"from spikingjelly.clock_driven import {top}", {})
    if top == "model":
        assert "activation_based.model" in e.value.hint


def test_published_multi_step_block_compiles_through_the_shim():
    """Spikformer/SEW style: SeqToANNContainer(Conv, BN), MultiStepLIFNode, MultiStepDropout."""
    from spikingjelly.clock_driven import layer, neuron

    m = nn.Sequential(layer.SeqToANNContainer(nn.Conv2d(2, 16, 3, padding=1), nn.BatchNorm2d(16)),
                      neuron.MultiStepLIFNode(tau=2.0, detach_reset=True, backend="torch"),
                      layer.MultiStepDropout(0.1), layer.SeqToANNContainer(nn.Flatten(), nn.Linear(16 * 8 * 8, 10)),
                      neuron.MultiStepIFNode())
    tr = trace_model(m.eval(), (2, 8, 8))
    assert tr.step_mode == "m" and sum(1 for _, n in tr.graph.items() if n.op == "neuron") == 2

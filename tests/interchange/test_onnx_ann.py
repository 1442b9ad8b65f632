"""ONNX export, issue 12: the ANN variant (neurons as ReLU, OR as max-pool) equals the same
network computed without the netlist and, where the passes keep the ANN, the torch ReLU twin."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from interchange.onnx_helpers import NETS, ann_reference, compile_model
from nets import TicketNet, cifar_ticket, conv_net
from spikingjelly.activation_based import neuron
from torch import nn

from backends.onnx.ann import build_ann
from backends.onnx.network import order
from backends.onnx.run import session
from backends.onnx.target import serialize
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import Linear
from snncompile.netlist import OrPopulation

# passes that keep the ReLU network as it is (dead_neurons removes neurons that can never
# fire: as ReLUs they may output their bias; binarize may move α into thresholds)
ANN_EXACT = ["fold_batchnorm", "fuse_convpep", "mask_patches", "prune_synapses"]


def relu_twin(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for mod in list(twin.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, neuron.BaseNode):
                setattr(mod, name, nn.ReLU())
    return twin.double().eval()


def run_ann(net, x: np.ndarray) -> np.ndarray:
    model = build_ann(net)
    serialize(model, "ANN")  # onnx.checker accepts it
    return session(model).run(["readout"], {"x": np.asarray(x, dtype=np.float64)})[0]


@pytest.mark.parametrize("name", sorted(NETS))
def test_ann_equals_relu_ir(name):
    factory, shape, xf = NETS[name]
    c = compile_model(factory(), shape)
    x = xf()[0]
    got = run_ann(c.net, x)
    want = ann_reference(c.graph, x)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("factory, shape", [(lambda: conv_net("s"), (1, 8, 8)), (TicketNet, (1, 8, 8)),
                                            (cifar_ticket, (3, 32, 32))])
def test_ann_equals_torch_relu_twin(factory, shape):
    model = factory()
    c = compile_model(model, shape, ANN_EXACT)
    x = np.random.default_rng(4).random((6, *shape))
    got = run_ann(c.net, x)
    with torch.no_grad():
        want = relu_twin(model)(torch.as_tensor(x)).numpy()
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-12, atol=1e-12)
    # activations are named by the model's neuron modules (``sn1.act``; in a Sequential ``2.act``)
    acts = {o.name for o in build_ann(c.net).graph.output}
    assert {f"{n}.act" for n, m in model.named_modules() if isinstance(m, neuron.BaseNode)} <= acts


def test_or_populations_become_max_pools():
    c = compile_model(cifar_ticket(), (3, 32, 32))
    assert any(isinstance(p, OrPopulation) for p in order(c.net))
    ops = [n.op_type for n in build_ann(c.net).graph.node]
    assert "MaxPool" in ops and "Relu" in ops and "GreaterOrEqual" not in ops


def test_or_that_is_no_window_is_refused():
    c = compile_model(cifar_ticket(), (3, 32, 32))
    or_pop = next(p for p in order(c.net) if isinstance(p, OrPopulation))
    proj = c.net.into(or_pop.name)[0]
    proj.chains[0].nodes.insert(0, Linear(proj.chains[0].in_shape, "features.weird",
                                          weight=np.eye(proj.chains[0].in_shape[-1])))
    with pytest.raises(SnnCompileError, match="features.weird") as exc:
        build_ann(c.net)
    assert exc.value.exit_code == EXIT_UNSUPPORTED and exc.value.hint

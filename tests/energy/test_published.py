"""MAC and parameter counts of traced spiking twins of published CNNs equal the published
conv + FC figures (torchvision / kuangliu; bias excluded from MACs)."""

import numpy as np
import pytest
from energy.zoo import SpikingResNet18, n_params, spiking_vgg16_bn_cifar, spiking_vgg16_imagenet

from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
from snncompile.ir import BatchNorm, Conv2d, Linear, Pool2d

# (builder, input shape, conv+FC MACs, parameters), from the published tables
PUBLISHED = {
    "resnet18-224": (lambda: SpikingResNet18(imagenet=True), (3, 224, 224), 1_814_073_344, 11_689_512),
    "vgg16-224": (spiking_vgg16_imagenet, (3, 224, 224), 15_470_264_320, 138_357_544),
    "resnet18-cifar": (lambda: SpikingResNet18(imagenet=False), (3, 32, 32), 555_422_720, 11_173_962),
    "vgg16bn-cifar": (spiking_vgg16_bn_cifar, (3, 32, 32), 313_201_664, 14_724_042),
}


def ir_params(graph) -> int:
    """Parameters held by the IR: synapse weights and biases, batch-norm scale and shift."""
    total = 0
    for _, node in graph.items():
        if isinstance(node, (Conv2d, Linear)):
            total += node.weight.size + (0 if node.bias is None else node.bias.size)
        elif isinstance(node, BatchNorm):
            total += node.weight.size + node.bias.size
    return total


@pytest.mark.parametrize("key", list(PUBLISHED))
def test_macs_and_parameters_equal_published(key):
    build, shape, macs, params = PUBLISHED[key]
    model = build().eval()
    assert n_params(model) == params
    graph = trace_model(model, shape, name=key).graph
    del model
    assert ir_params(graph) == params           # the trace kept every layer
    energy = estimate_energy(graph, steps=4).to_dict()    # static: no spikes needed for the ANN count
    assert energy["variants"]["ann"]["macs"] == macs
    assert sum(r["macs"] for r in energy["layers"]) == macs
    # the first conv reads the image, every other synaptic layer reads spikes, except the
    # ResNet classifier, which reads the average of spikes (real values)
    inputs = [r["input"] for r in energy["layers"] if r["op"] in ("conv2d", "linear")]
    assert inputs[0] == "real"
    assert inputs[1:-1] == ["spikes"] * (len(inputs) - 2)
    assert inputs[-1] == ("real" if key.startswith("resnet") else "spikes")
    assert energy["variants"]["snn"] is None and energy["mode"] == "static"
    assert energy["variants"]["bnn"]["bops"] + energy["variants"]["bnn"]["macs"] == macs
    if key == "resnet18-224":
        pools = [graph.node(n) for n in graph.of_type(Pool2d)]
        assert [(p.mode, p.kernel, p.stride, p.padding) for p in pools][0] == ("max", (3, 3), (2, 2), (1, 1))
        # analytic SNN on the same graph: SOPs = rate · T · synapses, first layer MACs · T
        e = estimate_energy(graph, steps=4, firing_rates={"*": 0.2}).to_dict()
        rows = [r for r in e["layers"] if r["op"] in ("conv2d", "linear")]
        spiking = [r for r in rows if r["input"] == "spikes"]
        assert e["variants"]["snn"]["sops"] == pytest.approx(0.2 * 4 * sum(r["synapses"] for r in spiking))
        assert e["variants"]["snn"]["macs"] == 4 * (rows[0]["macs"] + rows[-1]["macs"])
        assert np.isfinite(e["savings"]["snn_vs_ann"]) and e["savings"]["snn_vs_ann"] > 1

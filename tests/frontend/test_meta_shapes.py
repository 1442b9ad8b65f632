"""The tracer's shape rules for convolutions and linear layers (``tracer._same_shape``): the
module's own meta output on every valid input, and no rule (the module runs, raising what it
raises) on anything else."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import layer
from torch import nn

from snncompile.frontend.tracer import _same_shape


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2d(3, 128, 3, padding=1, bias=False), (2, 3, 32, 32)),
    (lambda: nn.Conv2d(128, 256, 3, stride=2, padding=1), (2, 128, 32, 32)),
    (lambda: nn.Conv2d(128, 128, 3, padding=2, dilation=2, groups=4), (1, 128, 17, 15)),
    (lambda: nn.Conv2d(256, 128, (3, 1), stride=(2, 1), padding=(1, 0)), (2, 256, 4, 4)),
    (lambda: nn.Conv2d(3, 64, 7, 2, 3, padding_mode="reflect"), (1, 3, 224, 224)),
    (lambda: nn.Conv2d(3, 8, 4, stride=3), (1, 3, 10, 11)),                 # floor of a remainder
    (lambda: nn.Conv1d(128, 128, 5, padding=2), (2, 128, 64)),
    (lambda: nn.Conv3d(2, 8, 3, padding=1), (1, 2, 4, 8, 8)),
    (lambda: layer.Conv2d(3, 128, 3, padding=1, step_mode="m"), (4, 2, 3, 32, 32)),
    (lambda: layer.Conv2d(3, 128, 3, padding=1), (2, 3, 32, 32)),
    (lambda: nn.Linear(512, 1000), (1, 512)),
    (lambda: nn.Linear(384, 1536), (4, 2, 64, 384)),                        # tokens [T, B, N, C]
    (lambda: layer.Linear(256, 10, step_mode="m"), (4, 2, 256)),
])
def test_shape_rule_gives_the_module_s_meta_output(make, shape):
    mod = make().eval().to("meta")
    x = torch.empty(shape, device="meta")
    got = _same_shape(mod, (x,), {})
    want = mod(x)
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype and got.device == want.device


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2d(3, 8, 3), (2, 4, 32, 32)),                    # wrong channel count
    (lambda: nn.Conv2d(3, 8, 5), (2, 3, 3, 3)),                      # input smaller than the kernel
    (lambda: nn.Conv2d(3, 8, 3), (2, 3, 32)),                        # wrong rank
    (lambda: layer.Conv2d(3, 8, 3, step_mode="m"), (2, 3, 32, 32)),  # multi-step without T
    (lambda: nn.Linear(16, 8), (2, 15)),                             # wrong feature count
])
def test_no_shape_rule_for_an_input_the_module_refuses(make, shape):
    mod = make().eval().to("meta")
    x = torch.empty(shape, device="meta")
    assert _same_shape(mod, (x,), {}) is None
    with pytest.raises((ValueError, RuntimeError)):
        mod(x)


def test_no_shape_rule_where_the_module_decides_itself():
    x = torch.empty(2, 3, 32, 32, device="meta")
    same = nn.Conv2d(3, 8, 3, padding="same").to("meta")             # padding by name
    assert _same_shape(same, (x,), {}) is None
    unbatched = nn.Conv2d(3, 8, 3).to("meta")
    assert _same_shape(unbatched, (torch.empty(3, 32, 32, device="meta"),), {}) is None
    ws = layer.WSConv2d(3, 8, 3).to("meta")                          # standardises its weight in forward
    assert _same_shape(ws, (x,), {}) is None
    double = nn.Conv2d(3, 8, 3).double().to("meta")                  # dtype mismatch: the module raises
    assert _same_shape(double, (x,), {}) is None

    class Sub(nn.Linear):                                            # a user's subclass may compute anything
        def forward(self, x):
            return super().forward(x).sum(-1)

    assert _same_shape(Sub(3, 4).to("meta"), (torch.empty(2, 3, device="meta"),), {}) is None
    assert _same_shape(nn.Linear(3, 4).to("meta"), (torch.empty(2, 3, device="meta"),), {"x": 1}) is None


def _pools():
    """Every 2-d pooling the shape rule covers, over kernels, strides, paddings, dilations,
    ceil_mode and odd sizes (each case with its input shape)."""
    cases = []
    for n in (7, 8, 32, 33):
        for k, s, p, d in [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 1), (2, 1, 0, 1), (3, 2, 1, 2), (3, 3, 0, 1),
                           ((3, 2), (2, 1), (1, 0), (1, 2)), (4, None, 2, 1), (5, 3, 2, 1)]:
            for ceil in (False, True):
                cases.append((lambda k=k, s=s, p=p, d=d, c=ceil: nn.MaxPool2d(k, s, p, d, ceil_mode=c), (2, 16, n, n)))
                if d == 1:
                    cases.append((lambda k=k, s=s, p=p, c=ceil: nn.AvgPool2d(k, s, p, ceil_mode=c), (2, 16, n, n + 1)))
    cases.append((lambda: layer.MaxPool2d(2, 2, step_mode="m"), (4, 2, 128, 32, 32)))
    cases.append((lambda: layer.AvgPool2d(3, 2, 1, step_mode="m"), (4, 2, 128, 33, 31)))
    cases.append((lambda: layer.MaxPool2d(3, 2, 1), (2, 128, 32, 32)))
    return cases


@pytest.mark.parametrize("make,shape", _pools())
def test_pooling_shape_rule_gives_the_module_s_meta_output(make, shape):
    mod = make().eval().to("meta")
    x = torch.empty(shape, device="meta")
    try:
        want = mod(x)
    except RuntimeError:   # torch refuses the case (a window past the padding): so must the rule
        assert _same_shape(mod, (x,), {}) is None
        return
    got = _same_shape(mod, (x,), {})
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.MaxPool2d(3, 2, padding=2), (2, 3, 32, 32)),          # padding over half the kernel
    (lambda: nn.MaxPool2d(5), (2, 3, 3, 3)),                          # input smaller than the window
    (lambda: nn.AvgPool2d(3, padding=2), (2, 3, 32, 32)),
    (lambda: nn.MaxPool2d(2, stride=0), (2, 3, 32, 32)),
])
def test_no_pooling_shape_rule_for_what_torch_refuses(make, shape):
    mod = make().eval().to("meta")
    x = torch.empty(shape, device="meta")
    assert _same_shape(mod, (x,), {}) is None
    with pytest.raises((ValueError, RuntimeError)):
        mod(x)


def test_no_pooling_shape_rule_where_the_module_decides_itself():
    x = torch.empty(2, 3, 32, 32, device="meta")
    assert _same_shape(nn.MaxPool2d(2, return_indices=True), (x,), {}) is None   # two outputs
    assert _same_shape(nn.MaxPool2d(2), (torch.empty(3, 32, 32, device="meta"),), {}) is None   # unbatched
    assert _same_shape(nn.MaxPool2d(2), (x.to(memory_format=torch.channels_last),), {}) is None


def test_a_first_trace_in_a_new_process_does_not_import_sympy():
    """A CNN with max and average pooling traced in a fresh process: torch's meta kernel of
    2-d pooling would import its symbolic-shape machinery and sympy (0.3-1.3 s a command)."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom torch import nn\nfrom spikingjelly.activation_based import neuron\n"
            "from snncompile.frontend import trace_model\n"
            "m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), neuron.IFNode(), nn.MaxPool2d(2),\n"
            "                  nn.Conv2d(8, 8, 3, padding=1), neuron.IFNode(), nn.AvgPool2d(2), nn.Flatten(),\n"
            "                  nn.Linear(8 * 8 * 8, 10), neuron.IFNode()).eval()\n"
            "trace_model(m, (3, 32, 32))\n"
            "print('sympy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"

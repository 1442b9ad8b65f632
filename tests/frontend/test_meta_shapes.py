"""The tracer's shape rules for convolutions and linear layers (``shape_rules.module_output``): the
module's own meta output on every valid input, and no rule (the module runs, raising what it
raises) on anything else."""

from __future__ import annotations

import operator

import pytest
import torch
from spikingjelly.activation_based import layer
from torch import nn

from snncompile.frontend.shape_rules import (
    _matmul_shape,
    like,
    module_output,
    reduced,
    repeated,
    same_operands,
)


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
    got = module_output(mod, (x,), {})
    want = mod(x)
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype and got.device == want.device


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2d(3, 8, 3), (2, 4, 32, 32)),                    # wrong channel count
    (lambda: nn.Conv2d(3, 8, 5), (2, 3, 3, 3)),                      # input smaller than the kernel
    (lambda: nn.Conv2d(3, 8, 3), (2, 3, 32)),                        # wrong rank
    (lambda: layer.Conv2d(3, 8, 3, step_mode="m"), (2, 3, 32, 32)),  # multi-step without T
    (lambda: nn.Linear(16, 8), (2, 15)),                             # wrong feature count
    (lambda: nn.MaxPool2d(3, 2, padding=2), (2, 3, 32, 32)),         # padding over half the kernel
    (lambda: nn.MaxPool2d(5), (2, 3, 3, 3)),                         # input smaller than the window
    (lambda: nn.AvgPool2d(3, padding=2), (2, 3, 32, 32)),
    (lambda: nn.MaxPool2d(2, stride=0), (2, 3, 32, 32)),
])
def test_no_shape_rule_for_an_input_the_module_refuses(make, shape):
    mod = make().eval().to("meta")
    x = torch.empty(shape, device="meta")
    assert module_output(mod, (x,), {}) is None
    with pytest.raises((ValueError, RuntimeError)):
        mod(x)


def test_no_shape_rule_where_the_module_decides_itself():
    x = torch.empty(2, 3, 32, 32, device="meta")
    same = nn.Conv2d(3, 8, 3, padding="same").to("meta")             # padding by name
    assert module_output(same, (x,), {}) is None
    unbatched = nn.Conv2d(3, 8, 3).to("meta")
    assert module_output(unbatched, (torch.empty(3, 32, 32, device="meta"),), {}) is None
    ws = layer.WSConv2d(3, 8, 3).to("meta")                          # standardises its weight in forward
    assert module_output(ws, (x,), {}) is None
    double = nn.Conv2d(3, 8, 3).double().to("meta")                  # dtype mismatch: the module raises
    assert module_output(double, (x,), {}) is None

    class Sub(nn.Linear):                                            # a user's subclass may compute anything
        def forward(self, x):
            return super().forward(x).sum(-1)

    assert module_output(Sub(3, 4).to("meta"), (torch.empty(2, 3, device="meta"),), {}) is None
    assert module_output(nn.Linear(3, 4).to("meta"), (torch.empty(2, 3, device="meta"),), {"x": 1}) is None


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
        assert module_output(mod, (x,), {}) is None
        return
    got = module_output(mod, (x,), {})
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype


def test_no_pooling_shape_rule_where_the_module_decides_itself():
    x = torch.empty(2, 3, 32, 32, device="meta")
    assert module_output(nn.MaxPool2d(2, return_indices=True), (x,), {}) is None   # two outputs
    assert module_output(nn.MaxPool2d(2), (torch.empty(3, 32, 32, device="meta"),), {}) is None   # unbatched
    assert module_output(nn.MaxPool2d(2), (x.to(memory_format=torch.channels_last),), {}) is None


def _layouts(shape):
    """Meta tensors of ``shape`` in several layouts: contiguous, transposed views, channels-last,
    a permuted copy, and an overlapping (expanded) view."""
    x = torch.empty(shape, device="meta")
    out = [x]
    if len(shape) >= 2:
        out.append(torch.empty(shape[:-2] + shape[-2:][::-1], device="meta").transpose(-1, -2))
    if len(shape) == 4:
        out.append(x.to(memory_format=torch.channels_last))
        out.append(torch.empty((shape[0], shape[2], shape[3], shape[1]), device="meta").permute(0, 3, 1, 2))
        out.append(torch.empty((shape[1], shape[0], shape[2], shape[3]), device="meta").transpose(0, 1))
    out.append(torch.empty(shape[-1:], device="meta").expand(shape))   # overlapping: left to torch
    return out


SHAPES = [(3, 5, 64, 384), (2, 1, 4, 4), (2, 8, 1, 1), (1, 8, 4, 4), (4, 2, 16), (7, 1), (6,)]


@pytest.mark.parametrize("shape", SHAPES)
def test_elementwise_rules_give_torch_s_meta_strides(shape):
    """Same-shape tensor ⊙ tensor in every pair of layouts, tensor ⊙ Python number, and the
    in-place operators: the rule's output (when it gives one) has the meta kernel's shape,
    strides and dtype; ``empty_like`` likewise."""
    for x in _layouts(shape):
        want = torch.empty_like(x)
        got = like(x)
        assert (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)
        for y in _layouts(shape):
            for op in (operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.mul):
                want = op(x, y)
                got = same_operands(op, (x, y), {})
                if got is not None:
                    assert (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)
                elif x.is_contiguous() or x.stride() != (0,) * len(shape):
                    assert 0 in x.stride() or 0 in y.stride(), (x.stride(), y.stride())   # only overlap is left
            got = same_operands(operator.iadd, (x, y), {})
            # x itself, as torch's in-place operator returns (an expanded target is left to torch)
            assert got is (None if 0 in x.stride() else x)
        for v in (2, 0.125, -3.0):
            for a, b in ((x, v), (v, x)):
                want = operator.mul(a, b)
                got = same_operands(operator.mul, (a, b), {})
                assert got is not None and (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)


def test_elementwise_rules_leave_the_rest_to_torch():
    x = torch.empty(2, 3, device="meta")
    assert same_operands(operator.add, (x, torch.empty(3, device="meta")), {}) is None      # broadcast
    assert same_operands(operator.add, (x, x.double()), {}) is None                         # promotion
    assert same_operands(operator.add, (x.int(), 2), {}) is None                            # integer tensor
    assert same_operands(operator.add, (x, True), {}) is None                               # a bool
    assert same_operands(operator.iadd, (x, 2.0), {}) is None
    assert same_operands(operator.add, (x, x), {"alpha": 2}) is None


@pytest.mark.parametrize("a,b", [((3, 5, 8, 64, 48), (3, 5, 8, 48, 64)), ((3, 5, 8, 64, 48), (48, 10)),
                                 ((2, 16, 32), (32, 8)), ((16, 32), (32, 8)), ((4, 1, 6, 5), (3, 5, 2)),
                                 ((1, 7, 5), (4, 5, 3))])
def test_matmul_rule_gives_torch_s_meta_output(a, b):
    for x in _layouts(a)[:2]:
        for y in _layouts(b)[:2]:
            want = x @ y
            got = _matmul_shape(x, y)
            assert got is not None and (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)


def test_no_matmul_rule_for_what_torch_refuses_or_lays_out_otherwise():
    m = torch.empty
    assert _matmul_shape(m(2, 3, 4, device="meta"), m(5, 6, device="meta")) is None            # k mismatch
    assert _matmul_shape(m(2, 3, 4, device="meta"), m(3, 4, 5, device="meta")) is None         # batch mismatch
    assert _matmul_shape(m(4, 5, device="meta"), m(2, 5, 3, device="meta")) is None            # rank a < rank b
    assert _matmul_shape(m(4, device="meta"), m(4, 3, device="meta")) is None                  # a vector


@pytest.mark.parametrize("method", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(3, 5, 64, 384), (4, 2, 10), (4, 2, 128, 8, 8)])
def test_reduction_rule_gives_torch_s_meta_output(method, shape):
    for x in _layouts(shape)[:2]:
        for args, kwargs in [((0,), {}), ((-1,), {}), ((2,), {"keepdim": True}), (((2, 3),), {}),
                             ((), {"dim": 1}), ((0, True), {}), (((-2, -1),), {"keepdim": False})]:
            got = reduced(method, (x, *args), kwargs)
            try:
                want = getattr(x, method)(*args, **kwargs)
            except IndexError:   # no such axis: torch raises, so the rule gives nothing
                assert got is None
                continue
            assert got is not None and (got.shape, got.dtype) == (want.shape, want.dtype)
            assert got.is_contiguous() and want.is_contiguous()


def test_no_reduction_rule_for_what_torch_refuses_or_types_otherwise():
    x = torch.empty(3, 4, device="meta")
    assert reduced("mean", (x, 2), {}) is None               # no such axis
    assert reduced("mean", (x, (0, 0)), {}) is None          # an axis twice
    assert reduced("mean", (x,), {}) is None                 # over everything: left to torch
    assert reduced("sum", (x.int(), 0), {}) is None          # integer sums promote
    assert reduced("mean", (x, 0), {"dtype": torch.float64}) is None
    assert reduced("max", (x, 0), {}) is None


def test_adaptive_pool_rule_gives_torch_s_meta_output():
    for size in [(7, 7), 1, (1, 1), (None, 3), 5]:
        for shape in [(2, 16, 32, 32), (2, 16, 3, 3), (2, 16, 14, 9)]:
            mod = nn.AdaptiveAvgPool2d(size)
            x = torch.empty(shape, device="meta")
            want, got = mod(x), module_output(mod, (x,), {})
            assert got is not None and got.shape == want.shape and got.dtype == want.dtype
    mod = layer.AdaptiveAvgPool2d((7, 7), step_mode="m")
    x = torch.empty(4, 2, 16, 32, 32, device="meta")
    assert module_output(mod, (x,), {}).shape == mod(x).shape
    assert module_output(nn.AdaptiveAvgPool2d(7), (torch.empty(16, 32, 32, device="meta"),), {}) is None


def test_a_first_trace_and_estimate_in_a_new_process_do_not_import_sympy():
    """A CNN (max and average pooling, residual ``+=``) pickled whole and compiled by the CLI
    (``--target energy``), and a small Spikformer (q @ kᵀ, a scale, a transposed residual sum,
    mean over time) traced and estimated, in a fresh process: the checkpoint's allowlist, torch's
    meta kernels of these and autograd's check of a given gradient would import torch's
    symbolic-shape machinery and sympy (0.3–1.3 s a command). Also four published-style
    models of the corpus (Spikformer's ``x.repeat(T, …)``, legacy ``clock_driven`` neurons,
    a VotingLayer, SeqToANNContainer probes), which took 0.4–1.3 s to trace first."""
    import subprocess
    import sys

    code = """
import sys, tempfile, torch
from pathlib import Path
from snncompile.cli import main
from torch import nn
from spikingjelly.activation_based import neuron
from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
sys.path.insert(0, "tests")
from energy.spikformer import Spikformer

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.sn = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), neuron.IFNode()
    def forward(self, x):
        out = self.bn(self.conv(x))
        out += x
        return self.sn(out)

cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), neuron.IFNode(), nn.MaxPool2d(2), Block(),
                    nn.AvgPool2d(2), nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(32, 10), neuron.IFNode())
stock = nn.Sequential(*[m for m in cnn if not isinstance(m, Block)]).eval()   # whole-pickled: stock classes
with tempfile.TemporaryDirectory() as d:
    torch.save(stock, Path(d) / "cnn.pt")
    code = main([str(Path(d) / "cnn.pt"), "--target", "energy", "--input-shape", "3,32,32", "--steps", "4",
                 "-o", str(Path(d) / "out")])
assert code == 0, code
for model in (cnn.eval(), Spikformer(1, 64, 10, imagenet=False, heads=4).eval()):
    graph = trace_model(model, (3, 32, 32)).graph
    estimate_energy(graph, steps=4, firing_rates={"*": 0.1})
from corpus.families import RAW, build   # x.repeat(T, ...), legacy clock_driven neurons, VotingLayer, containers
for name in ("spikformer", "sj-spikformer", "sj-plif-cifar10", "kim-resnet"):
    estimate_energy(trace_model(build(name), RAW[name].shape).graph, steps=4, firing_rates={"*": 0.1})
print("sympy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("make,shape", [
    (lambda: layer.SeqToANNContainer(nn.Conv2d(3, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128)),
     (4, 2, 3, 32, 32)),
    (lambda: layer.SeqToANNContainer(nn.MaxPool2d(3, 2, 1)), (4, 2, 128, 32, 32)),
    (lambda: layer.SeqToANNContainer(nn.Linear(384, 1536), nn.BatchNorm1d(1536)), (4, 2, 384)),
    (lambda: layer.SeqToANNContainer(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d((7, 7))), (2, 5, 3, 16, 16)),
])
def test_seq_to_ann_container_rule_gives_its_meta_output(make, shape):
    mod = make().eval().to("meta")
    x = torch.empty(shape, device="meta")
    got, want = module_output(mod, (x,), {}), mod(x)
    assert got is not None and (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)


def test_no_seq_to_ann_container_rule_unless_every_layer_has_one():
    x = torch.empty(4, 2, 3, 32, 32, device="meta")
    assert module_output(layer.SeqToANNContainer(nn.Conv2d(3, 8, 3), nn.ReLU()).to("meta"), (x,), {}) is None
    assert module_output(layer.SeqToANNContainer(nn.Conv2d(4, 8, 3)).to("meta"), (x,), {}) is None   # wrong C
    assert module_output(layer.SeqToANNContainer(nn.Conv2d(3, 8, 3)).to("meta"), (x[0],), {}) is None   # no T axis


def test_no_rule_for_inputs_torch_refuses_found_in_review():
    """Each a case a rule once accepted while torch's own kernel raises (the model must fail
    to trace as it fails to run, not compile as something else)."""
    x = torch.empty(2, 3, 16, 16, device="meta")
    cases = [
        (nn.AvgPool2d(2, divisor_override=0), x),                    # "divisor must be not zero"
        (nn.MaxPool2d(3, padding=2, dilation=2), x),                 # pad over half the kernel, dilated
        (nn.Conv2d(3, 4, 3, padding=16, padding_mode="reflect"), x),  # reflect padding wider than the input
        (nn.BatchNorm1d(3, track_running_stats=False).eval(), torch.empty(1, 3, device="meta")),   # 1 value
    ]
    conv = nn.Conv2d(3, 4, 3)
    conv.bias = nn.Parameter(conv.bias.detach().double())            # bias of another dtype
    cases.append((conv, x))
    for mod, inp in cases:
        mod = mod.to("meta")
        assert module_output(mod, (inp,), {}) is None, mod
        with pytest.raises((RuntimeError, ValueError)):
            mod(inp)
    y = torch.empty(3, 4, device="meta")
    assert reduced("mean", (y, 1, None), {}) is None                 # keepdim must be a bool
    assert reduced("sum", (y,), {"dim": 1, "keepdim": None}) is None
    with pytest.raises(TypeError):
        y.mean(1, None)
    assert same_operands(operator.mul, (y, 2 ** 70), {}) is None      # "int too big to convert"
    assert same_operands(operator.mul, (-(2 ** 63) - 1, y), {}) is None
    assert same_operands(operator.mul, (y, 2 ** 64 - 1), {}) is not None
    with pytest.raises(OverflowError):
        y * 2 ** 70


def test_avg_pool_with_a_zero_divisor_is_refused_as_it_fails():
    from spikingjelly.activation_based import neuron

    from snncompile.errors import SnnCompileError
    from snncompile.frontend import trace_model

    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), neuron.IFNode(), nn.AvgPool2d(2, divisor_override=0),
                      nn.Flatten(), nn.Linear(64, 10), neuron.IFNode()).eval()
    with pytest.raises(SnnCompileError, match="divisor"):
        trace_model(m, (3, 8, 8))


@pytest.mark.parametrize("shape,sizes", [
    ((2, 3, 32, 32), (4, 1, 1, 1, 1)), ((5, 64), (1, 3)), ((5, 64), (2, 1, 1)), ((3,), (0,)),
    ((2, 3), ((4, 1, 2),)), ((2, 3), (torch.Size([1, 2]),)),
])
def test_repeat_rule_gives_torch_s_meta_output(shape, sizes):
    for x in _layouts(shape)[:2] if len(shape) > 1 else [torch.empty(shape, device="meta")]:
        got, want = repeated((x, *sizes), {}), x.repeat(*sizes)
        assert got is not None and (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)


def test_repeat_rule_raises_what_torch_raises_and_leaves_the_rest_to_it():
    x = torch.empty(2, 3, device="meta")
    for sizes in [(2,), (1, -1), (-2, 1, 1)]:   # too few sizes, negative: the meta kernel's own errors
        with pytest.raises(RuntimeError) as want:
            x.repeat(*sizes)
        with pytest.raises(RuntimeError) as got:
            repeated((x, *sizes), {})
        assert str(got.value) == str(want.value)
    assert repeated((x,), {}) is None                       # no sizes
    assert repeated((x, 2.0, 1), {}) is None                # not ints
    assert repeated((x, True, 1), {}) is None
    assert repeated((x, 2, 1), {"out": None}) is None


@pytest.mark.parametrize("step_mode,shape,v", [("s", (5, 100), 10), ("m", (4, 5, 100), 10), ("s", (5, 37), 5),
                                               ("m", (3, 2, 12), 12)])
def test_voting_layer_rule_gives_its_meta_output(step_mode, shape, v):
    mod = layer.VotingLayer(v, step_mode=step_mode)
    x = torch.empty(shape, device="meta")
    got, want = module_output(mod, (x,), {}), mod(x)
    assert got is not None and (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)


def test_no_voting_layer_rule_where_it_would_fail_or_a_subclass_decides():
    assert module_output(layer.VotingLayer(10), (torch.empty(5, 4, device="meta"),), {}) is None   # N < v

    class Mine(layer.VotingLayer):
        pass
    assert module_output(Mine(10), (torch.empty(5, 100, device="meta"),), {}) is None


def test_legacy_neurons_are_stock_and_a_subclass_with_methods_is_not():
    from spikingjelly.activation_based import neuron

    from snncompile.frontend import legacy
    from snncompile.frontend.ops.neurons import stock_neuron

    multi_step_lif = legacy._classes()["MultiStepLIFNode"]   # (the class itself: sys.modules left alone)
    assert stock_neuron(neuron.LIFNode()) and stock_neuron(multi_step_lif(tau=2.0))

    class Louder(neuron.LIFNode):
        def single_step_forward(self, x):
            return super().single_step_forward(x) * 2
    assert not stock_neuron(Louder())

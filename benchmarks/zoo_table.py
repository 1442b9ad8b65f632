"""The closing table of #23: every model of spikingjelly's zoo that ships in the package and
every published-code family of our corpus, as written, at CIFAR size (32 px, random init,
90 % magnitude-pruned), through snncompile.

    python -m benchmarks.zoo_table [--json] [--only NAME ...]

Per model: traced?, lowered to a netlist?, reference-simulator spike agreement with PyTorch
(float64, a few real inputs), Conv/Linear MACs of the energy report equal to a forward-hook
count?, and the refusal message if refused. A figure, not a test: nothing asserts here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pkgutil
import signal
import sys
import time
from argparse import Namespace
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the corpus imports `corpus.…`

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from snncompile.errors import SnnCompileError  # noqa: E402

CIFAR = (3, 32, 32)
DVS = (2, 32, 32)
T = 2
ROW_SECONDS = 240   # per model (a loaded 2-core machine); over it, the row says TIMEOUT


@dataclass
class Row:
    model: str
    origin: str                      # "zoo" (spikingjelly's package) or "corpus" (published patterns)
    traced: bool = False
    compiled: bool = False           # lowered to a netlist (Lava / Loihi); energy needs only the trace
    agreement: float | None = None   # reference simulator vs PyTorch, over every observable neuron
    macs_equal: bool | None = None
    neurons: int = 0
    refusal: str = ""
    seconds: float = 0.0


# -- the models ------------------------------------------------------------------------------------

def _zoo_builders() -> dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], bool]]:
    """spikingjelly.activation_based.model.<module> → (small CIFAR build, input shape, multi-step)."""
    from corpus.zoo import zoo
    from spikingjelly.activation_based import functional, neuron, surrogate

    def m(model: nn.Module) -> nn.Module:
        functional.set_step_mode(model, "m")
        return model

    def resnet(kind: str, **kw) -> nn.Module:
        mod = zoo(kind)
        cls = mod.SpikingResNet if kind == "spiking_resnet" else mod.SEWResNet
        return m(cls(mod.BasicBlock, [1, 1, 1, 1], num_classes=10, spiking_neuron=neuron.IFNode,
                     surrogate_function=surrogate.ATan(), detach_reset=True, **kw))

    def vgg() -> nn.Module:
        net = zoo("spiking_vgg").SpikingVGG([16, "M", 32, "M", 64, "M"], batch_norm=True, num_classes=10,
                                             spiking_neuron=neuron.IFNode)
        return m(net)

    def ottt() -> nn.Module:
        return zoo("spiking_vggws_ottt").OTTTSpikingVGG([16, "M", 32, "M", 512], num_classes=10,
                                                         spiking_neuron=neuron.OTTTLIFNode)

    def snas() -> nn.Module:
        args = Namespace(timestep=T, second_avgpooling=2, dataset="cifar10", celltype="forward", tau=2.0,
                         threshold=1.0)
        return zoo("snas_net").SNASNet(args, torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]))

    def dhs() -> nn.Module:
        return zoo("spike_dhs").SpikeDHS(init_channels=3, args=Namespace(timestep=T))

    small = dict(T=T, num_classes=10)
    return {
        "spiking_resnet": (lambda: resnet("spiking_resnet"), CIFAR, True),
        "sew_resnet (ADD)": (lambda: resnet("sew_resnet", cnf="ADD"), CIFAR, True),
        "sew_resnet (IAND)": (lambda: resnet("sew_resnet", cnf="IAND"), CIFAR, True),
        "spiking_vgg (bn)": (vgg, CIFAR, True),
        "spiking_vggws_ottt": (ottt, CIFAR, False),
        "parametric_lif_net": (lambda: m(zoo("parametric_lif_net").CIFAR10Net(
            channels=16, spiking_neuron=neuron.ParametricLIFNode)), CIFAR, True),
        "ms_resnet (MSResNet)": (lambda: zoo("ms_resnet").MSResNet(
            layers=(1, 1, 1, 1), base_channels=16, stem_kernel_size=3, stem_stride=1, **small), CIFAR, False),
        "ms_resnet (max_resnet18)": (lambda: zoo("ms_resnet").max_resnet18(**small), CIFAR, False),
        "masnn (MASNN, DVS)": (lambda: zoo("masnn").MASNN(T=T, channels=(16, 32, 32), fc_hidden=32, reduction_t=1,
                                                           reduction_c=4), DVS, False),
        "masnn (AttMSResNet)": (lambda: zoo("masnn").AttMSResNet(layers=(1, 1, 1, 1), base_channels=16,
                                                                  stem_kernel_size=3, stem_stride=1, **small),
                                CIFAR, False),
        "spikformer": (lambda: zoo("spikformer").Spikformer(
            T=T, img_size_h=32, img_size_w=32, patch_size=4, num_classes=10, embed_dims=32, num_heads=4,
            depths=1), CIFAR, False),
        "spike_driven_transformer": (lambda: zoo("spike_driven_transformer").SpikeDrivenTransformer(
            T=T, num_classes=10, embed_dims=32, num_heads=4, depths=1), CIFAR, False),
        "qkformer": (lambda: zoo("qkformer").QKFormer(embed_dims=48, num_heads=(1, 2, 2), depths=(1, 1, 1),
                                                        **small), CIFAR, False),
        "maxformer": (lambda: zoo("maxformer").MaxFormer(embed_dims=48, depths=(1, 1, 1), cifar=True, **small),
                      CIFAR, False),
        "snas_net": (snas, CIFAR, False),
        "spike_dhs": (dhs, CIFAR, False),
    }


def _zoo_modules() -> list[str]:
    """What spikingjelly ships in activation_based.model (so a new zoo module shows up as a row)."""
    import spikingjelly.activation_based.model as zoo_pkg

    return sorted(m.name for m in pkgutil.iter_modules(zoo_pkg.__path__))


def _corpus_builders() -> dict[str, Callable[[], tuple[nn.Module, tuple[int, ...], int | None]]]:
    """Our corpus families following published code: (model as a ticket, shape, T fed or None)."""
    from corpus import forward_weights
    from corpus.families import RAW, build
    from corpus.hand import DietSNN
    from corpus.tickets import prune_

    out: dict[str, Callable[[], tuple[nn.Module, tuple[int, ...], int | None]]] = {}
    for name, fam in RAW.items():
        if not name.startswith("sj-"):   # the zoo rows build those as shipped
            out[name] = lambda name=name, fam=fam: (build(name), fam.shape, fam.steps)
    for name in forward_weights.FAMILIES:
        out[f"forward-weights {name}"] = lambda name=name: (forward_weights.build(name, steps=T), CIFAR, T)

    def diet(exact: bool) -> tuple[nn.Module, tuple[int, ...], int | None]:
        torch.manual_seed(0)
        model = DietSNN(timesteps=4, exact=exact)
        prune_(model)
        with torch.no_grad():
            for layer in model.modules():
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    layer.weight.mul_(3.0)
        return model.double().eval(), CIFAR, None

    out["diet-snn (autograd >=)"] = lambda: diet(False)
    out["diet-snn (published out[x > 0] = 1)"] = lambda: diet(True)
    return out


# -- one row -----------------------------------------------------------------------------------

def _agreement(model: nn.Module, tr, x: np.ndarray) -> tuple[float | None, int]:
    from snncompile.sim import run_torch, simulate

    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced,
                    output_steps=tr.graph.output_steps)
    ref = simulate(tr.graph, x)
    same = total = 0
    for n, p in tr.neuron_sources.items():
        if p in tor.spikes:
            a, b = tor.spikes[p], ref.spikes[n]
            same += int((a == b.reshape(a.shape)).sum())
            total += a.size
    return (same / total if total else None), len(tr.neuron_sources)


def _macs_equal(model: nn.Module, tr, x: np.ndarray) -> bool:
    from corpus.test_corpus import hook_counts

    from snncompile.energy import estimate_energy
    from snncompile.passes import run_passes

    theirs = hook_counts(model, x, tr.step_mode, tr.graph.output_steps)
    graph, _ = run_passes(tr.graph, ["fold_batchnorm", "prune_synapses"])
    rows = [r for r in estimate_energy(graph, steps=x.shape[0]).to_dict()["layers"] if r["op"] in ("conv2d", "linear")]
    ours = {r["source"]: r["macs"] for r in rows}
    # a layer applied functionally (F.linear(x, self.fc.weight)) runs no module: hooks cannot see
    # it, so only the layers the hooks saw are compared, and each of them must be in the report
    return set(theirs) <= set(ours) and all(ours[k] == v["macs"] for k, v in theirs.items())


def _row(name: str, origin: str, make: Callable[[], tuple[nn.Module, tuple[int, ...], int | None]]) -> Row:
    """One model's row, within ROW_SECONDS."""
    row, t0 = Row(name, origin), time.perf_counter()
    signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(ROW_SECONDS)
    try:
        return _fill(row, make, t0)
    except TooSlow:
        row.refusal = f"TIMEOUT: not finished within {ROW_SECONDS} s (a figure of this table, not a refusal)"
        row.seconds = round(time.perf_counter() - t0, 1)
        return row
    finally:
        signal.alarm(0)


class TooSlow(BaseException):   # not caught as a model's own failure
    """A row over its time budget."""


def _too_slow(_signum: int, _frame: object) -> None:
    raise TooSlow


def _fill(row: Row, make: Callable[[], tuple[nn.Module, tuple[int, ...], int | None]], t0: float) -> Row:
    from corpus.tickets import images

    from snncompile.frontend import trace_model
    from snncompile.lower import lower
    from snncompile.passes import run_passes

    try:
        model, shape, fed = make()
    except Exception as exc:  # noqa: BLE001 - a zoo constructor that cannot build this size
        row.refusal = f"not built at CIFAR size: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        return row
    try:
        tr = trace_model(model, shape)
        row.traced = True
        steps = tr.graph.model_steps or fed or T
        x = np.broadcast_to(images(2, shape, seed=7)[None], (steps, 2, *shape))
        row.agreement, row.neurons = _agreement(model, tr, x)
        row.macs_equal = _macs_equal(model, tr, x)
        lower(run_passes(tr.graph)[0])
        row.compiled = True
    except SnnCompileError as exc:
        row.refusal = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # noqa: BLE001 - an internal error is a finding of this table, not a crash of it
        row.refusal = f"INTERNAL {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    row.seconds = round(time.perf_counter() - t0, 1)
    return row


def _zoo_rows(only: set[str]) -> Iterator[Row]:
    from corpus.tickets import ticket

    builders = _zoo_builders()
    for module in _zoo_modules():
        mine = {k: v for k, v in builders.items() if k.split(" ")[0] == module}
        if not mine and not only:
            yield Row(module, "zoo", refusal="no small CIFAR build written for this zoo module")
        for name, (build, shape, multi) in mine.items():
            if only and name not in only:
                continue

            def make(build=build, shape=shape, multi=multi):
                torch.manual_seed(0)
                return ticket(build(), shape, multi_step_input=T if multi else None).eval(), shape, T
            yield _row(name, "zoo", make)


def table(only: set[str] | None = None, each: Callable[[Row], None] = lambda r: None) -> list[Row]:
    """Every row (``only``: those named), ``each`` called as each one is done."""
    only = only or set()
    rows = []
    for row in _zoo_rows(only):
        each(row)
        rows.append(row)
    for name, make in _corpus_builders().items():
        if not only or name in only:
            rows.append(_row(name, "corpus", make))
            each(rows[-1])
    return rows


HEAD = f"{'model':38} {'origin':6} {'traced':6} {'netlist':7} {'agree':>7} {'MACs=':5} {'s':>6}  refusal"


def _line(r: Row) -> str:
    agree = "-" if r.agreement is None else f"{r.agreement:.4f}"
    macs = "-" if r.macs_equal is None else ("yes" if r.macs_equal else "NO")
    return (f"{r.model:38} {r.origin:6} {'yes' if r.traced else 'no':6} {'yes' if r.compiled else 'no':7} "
            f"{agree:>7} {macs:5} {r.seconds:6.1f}  {r.refusal.split(' (hint: ')[0]}")   # --json: the hint too


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--only", nargs="*", default=[], help="only these rows (by model name)")
    args = ap.parse_args()
    if args.json:
        rows = table(set(args.only))
        print(json.dumps({"steps": T, "shape": list(CIFAR), "rows": [asdict(r) for r in rows]}, indent=1))
        return
    print(HEAD + "\n" + "-" * len(HEAD), flush=True)
    table(set(args.only), lambda r: print(_line(r), flush=True))


if __name__ == "__main__":
    main()

"""Time the always-on per-layer equivalence guard (``snncompile.frontend.guard``) inside a trace.

    python -m benchmarks.guard_speed [--model resnet18-224|vgg16-224|spikformer|spike-driven-transformer]

Traces the model twice (the first warms torch's lazy imports and kernels) and reports, for the
second trace, its total time and the time spent in ``check_layers``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the corpus imports `corpus.…`

from snncompile.frontend import trace as trace_mod  # noqa: E402
from tests.energy.zoo import SpikingResNet18, spiking_vgg16_imagenet  # noqa: E402

IMAGENET = (3, 224, 224)


def _corpus(name: str):
    from corpus.families import RAW, build

    return build(name), RAW[name].shape


MODELS = {
    "resnet18-224": lambda: (SpikingResNet18(imagenet=True), IMAGENET),
    "vgg16-224": lambda: (spiking_vgg16_imagenet(), IMAGENET),
    "spikformer": lambda: _corpus("spikformer"),
    "spike-driven-transformer": lambda: _corpus("spike-driven-transformer"),
}


def measure(name: str) -> tuple[float, float]:
    """(seconds of one trace, seconds of the guard inside it)."""
    model, shape = MODELS[name]()
    spent: list[float] = []
    check = trace_mod.check_layers

    def timed(*args) -> None:
        t0 = time.perf_counter()
        check(*args)
        spent.append(time.perf_counter() - t0)

    trace_mod.check_layers = timed
    try:
        trace_mod.trace_model(model, shape)
        spent.clear()
        t0 = time.perf_counter()
        trace_mod.trace_model(model, shape)
        total = time.perf_counter() - t0
    finally:
        trace_mod.check_layers = check
    return total, sum(spent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), action="append")
    for name in ap.parse_args().model or sorted(MODELS):
        total, guard = measure(name)
        print(f"{name}: trace {total * 1e3:.0f} ms, guard {guard * 1e3:.1f} ms ({100 * guard / total:.0f} %)")


if __name__ == "__main__":
    main()

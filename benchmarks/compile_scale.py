"""Compile wall time and peak memory of three large models, against one PyTorch forward pass.

    python -m benchmarks.compile_scale [--models spikformer-8-768,...] [--quick]
                                       [--cap-gb 8] [--timeout 900] [--json]

Models (random seeded weights and BatchNorm statistics, saved as a state_dict + metadata and
loaded back through ``--arch benchmarks.compile_scale:FACTORY``), T = 4:

* ``spikformer-8-768``: Spikformer-8-768, ImageNet, 224 px (66.3 M parameters);
* ``spikformer-4-384``: the paper's CIFAR Spikformer-4-384, 32 px;
* ``resnet18-ticket``: kuangliu's CIFAR ResNet-18 with IF neurons, every conv / linear layer
  magnitude-pruned to 90 % zeros (per layer: on untrained weights a global threshold would
  zero the whole last stage, whose fan-in is largest).

Each measurement runs in its own child process: ``snncompile.compile(ckpt, "lava", arch=...,
input_shape=..., steps=4, firing_rates="0.15")`` (default passes, no simulation), and one
forward pass of the PyTorch model (model build + state_dict load + forward; the time column is
the forward pass alone, the peak includes the load). Two peaks per child, both divided by the
checkpoint's float bytes: the whole process (the larger of VmHWM before and after the
measurement: what a user's machine must have; goal ≤ 3×), and above the imports (VmHWM -
VmRSS after importing torch, spikingjelly, the model code and snncompile, with VmHWM reset
through /proc/self/clear_refs; goal ≤ 2×). Wall
goal: compile ≤ 5× one forward pass over T steps. The parent kills a child whose RSS (with
its children) exceeds ``--cap-gb`` or that runs longer than ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.memory import status_kb, tree_rss

if TYPE_CHECKING:
    import torch
    from torch import nn

REPO = Path(__file__).resolve().parent.parent
STEPS = 4
FIRING_RATES = "0.15"
SPARSITY = 0.9
SEED = 0
MB = 1e6
GB = 1e9
QUICK = ("spikformer-4-384", "resnet18-ticket")


def spikformer_8_768() -> nn.Module:
    """Spikformer-8-768, ImageNet (1000 classes, 224 px)."""
    from tests.energy.spikformer import Spikformer

    return Spikformer(8, 768, 1000, imagenet=True)


def spikformer_4_384() -> nn.Module:
    """Spikformer-4-384, CIFAR-10 (32 px)."""
    from tests.energy.spikformer import Spikformer

    return Spikformer(4, 384, 10, imagenet=False)


def resnet18_cifar() -> nn.Module:
    """Spiking ResNet-18, kuangliu CIFAR layout (32 px, 10 classes)."""
    from tests.energy.zoo import SpikingResNet18

    return SpikingResNet18(imagenet=False)


@dataclass(frozen=True)
class Spec:
    factory: str
    input_shape: tuple[int, int, int]
    prune: bool = False

    @property
    def arch(self) -> str:
        return f"benchmarks.compile_scale:{self.factory}"


MODELS = {
    "spikformer-8-768": Spec("spikformer_8_768", (3, 224, 224)),
    "spikformer-4-384": Spec("spikformer_4_384", (3, 32, 32)),
    "resnet18-ticket": Spec("resnet18_cifar", (3, 32, 32), prune=True),
}


# ---- checkpoints (parent) -------------------------------------------------------------------

def _randomize_bn(model: nn.Module, g: torch.Generator) -> None:
    """Seeded non-trivial BatchNorm statistics and affine parameters, so folding changes weights."""
    import torch
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.4 + 0.8)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _prune(model: nn.Module, sparsity: float) -> float:
    """Zero the smallest-magnitude ``sparsity`` of each conv / linear weight; overall zero fraction."""
    from torch import nn

    zeros = total = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.data
            k = int(sparsity * w.numel())
            if k:
                w[w.abs() <= w.abs().flatten().kthvalue(k).values] = 0.0
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / max(total, 1)


@dataclass
class Checkpoint:
    path: Path
    params: int
    weight_bytes: int
    build_s: float


def build_checkpoint(name: str, outdir: Path) -> Checkpoint:
    """Build ``name`` with seeded random weights and save its state_dict under ``outdir``."""
    import torch

    t0 = time.perf_counter()
    spec = MODELS[name]
    torch.manual_seed(SEED)
    model = globals()[spec.factory]()
    with torch.no_grad():
        _randomize_bn(model, torch.Generator().manual_seed(SEED + 1))
        if spec.prune:
            zeros = _prune(model, SPARSITY)
            _log(f"{name}: {zeros:.1%} of conv/linear weights zeroed")
    model.eval()
    sd = model.state_dict()
    path = outdir / f"{name}.pt"
    torch.save({"state_dict": sd, "input_shape": list(spec.input_shape), "steps": STEPS, "name": name}, path)
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(t.numel() * t.element_size() for t in sd.values() if t.is_floating_point())
    return Checkpoint(path, params, weight_bytes, time.perf_counter() - t0)


# ---- child: one measurement -----------------------------------------------------------------

def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs); False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _run_compile(name: str, ckpt: str) -> dict:
    import snncompile

    spec = MODELS[name]
    report = snncompile.compile(ckpt, "lava", arch=spec.arch, input_shape=spec.input_shape, steps=STEPS,
                                firing_rates=FIRING_RATES)
    low = report.lowering or {}
    return {"synapses": low.get("synapses"), "neurons": low.get("neurons")}


def _is_multistep(model: nn.Module) -> bool:
    return any(getattr(m, "step_mode", "s") == "m" for m in model.modules())


def _run_forward(name: str, ckpt: str) -> dict:
    import torch
    from spikingjelly.activation_based import functional

    spec = MODELS[name]
    t0 = time.perf_counter()
    model = globals()[spec.factory]()
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    model.eval()
    functional.reset_net(model)
    x = torch.rand(STEPS, 1, *spec.input_shape, generator=torch.Generator().manual_seed(SEED))
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        if _is_multistep(model):
            model(x)
        else:
            for t in range(STEPS):
                model(x[t])
    return {"load_s": round(load_s, 3), "forward_s": time.perf_counter() - t0}


def _warm_compiler() -> None:
    """Import the compiler (a fixed import cost, kept out of the compile's peak): ``import
    snncompile`` alone is lazy, so the stages and the targets are imported here, as they were
    when the package imported them eagerly (~37 MB). torch's own modules loaded on first use
    (fx's symbolic shapes while tracing) stay in the compile's peak. The loader's unpickling
    allowlist is not built: a state_dict checkpoint does not need it."""
    import backends  # noqa: F401  (registers the targets)
    import snncompile  # noqa: F401
    import snncompile.stages  # noqa: F401


def child(argv: list[str]) -> int:
    """Entry point of a measuring child: ``KIND MODEL CKPT OUT_JSON``."""
    kind, name, ckpt, out = argv
    import torch  # noqa: F401  (imports are part of the baseline, not of the measurement)
    from spikingjelly.activation_based import functional, neuron  # noqa: F401

    import tests.energy.spikformer  # noqa: F401
    import tests.energy.zoo  # noqa: F401

    if kind == "compile":  # the forward child does not depend on the compiler importing
        _warm_compiler()

    baseline = status_kb("VmRSS") * 1024
    import_peak = status_kb("VmHWM") * 1024
    reset = _reset_peak()
    t0 = time.perf_counter()
    extra = _run_compile(name, ckpt) if kind == "compile" else _run_forward(name, ckpt)
    wall = extra.pop("forward_s", time.perf_counter() - t0)  # forward: the pass alone, not the load
    peak = status_kb("VmHWM") * 1024
    result = {"wall_s": round(wall, 3), "peak_delta": peak - baseline, "baseline_rss": baseline,
              "process_peak": max(peak, import_peak), "hwm_reset": reset, **extra}
    Path(out).write_text(json.dumps(result))
    return 0


# ---- parent: run a child under a memory cap -------------------------------------------------

@dataclass
class Outcome:
    status: str                      # "ok", "killed", "timeout", "failed"
    wall_s: float | None = None
    peak_delta: int | None = None    # VmHWM above the post-import RSS
    process_peak: int | None = None  # VmHWM of the whole process
    max_rss: int = 0                 # largest RSS the parent saw (poll every 0.2 s)
    message: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run_child(kind: str, name: str, ckpt: Path, cap: float, timeout: float, workdir: Path) -> Outcome:
    """Run one measurement in a child process; kill it past ``cap`` bytes RSS or ``timeout`` s."""
    out, err = workdir / f"{name}.{kind}.json", workdir / f"{name}.{kind}.err"
    code = "import sys; from benchmarks.compile_scale import child; raise SystemExit(child(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, kind, name, str(ckpt), str(out)]
    t0 = time.monotonic()
    max_rss, status, message = 0, "", ""
    with open(err, "w") as ferr:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=ferr, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                rss = tree_rss(proc.pid)
                max_rss = max(max_rss, rss)
                elapsed = time.monotonic() - t0
                if rss > cap or elapsed > timeout:
                    status = "killed" if rss > cap else "timeout"
                    message = (f"killed at {rss / GB:.1f} GB after {elapsed:.0f} s" if rss > cap
                               else f"timeout after {elapsed:.0f} s ({rss / GB:.1f} GB)")
                    break
                time.sleep(0.2)
        finally:  # also on Ctrl-C: never leave a child running
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    if status:
        return Outcome(status, max_rss=max_rss, message=message)
    if proc.returncode != 0 or not out.exists():
        return Outcome("failed", max_rss=max_rss, message=_last_line(err) or f"exit code {proc.returncode}")
    data = json.loads(out.read_text())
    wall, peak, total = data.pop("wall_s"), data.pop("peak_delta"), data.pop("process_peak")
    return Outcome("ok", wall, peak, total, max_rss, extra=data)


# ---- table ----------------------------------------------------------------------------------

def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


PROCESS_GOAL, ABOVE_IMPORTS_GOAL, WALL_GOAL = 3.0, 2.0, 5.0


def verdict(ckpt: Checkpoint, comp: Outcome, fwd: Outcome) -> str:
    """"yes"/"no": the compile's whole-process peak within 3× the weight bytes and its peak
    above the imports within 2×; a killed compile is "no"."""
    if comp.ok:
        ok = (comp.process_peak <= PROCESS_GOAL * ckpt.weight_bytes
              and comp.peak_delta <= ABOVE_IMPORTS_GOAL * ckpt.weight_bytes)
        return "yes" if ok else "no"
    return "no" if comp.status == "killed" else "n/a"


def make_row(name: str, ckpt: Checkpoint, comp: Outcome, fwd: Outcome) -> dict:
    """One result row (JSON-ready; the table formats it)."""
    return {
        "model": name, "params": ckpt.params, "weight_bytes": ckpt.weight_bytes,
        "compile": {"status": comp.status, "wall_s": comp.wall_s, "peak_delta": comp.peak_delta,
                    "process_peak": comp.process_peak, "max_rss_polled": comp.max_rss,
                    "message": comp.message, **comp.extra},
        "forward": {"status": fwd.status, "wall_s": fwd.wall_s, "peak_delta": fwd.peak_delta,
                    "process_peak": fwd.process_peak, "max_rss_polled": fwd.max_rss,
                    "message": fwd.message, **fwd.extra},
        "process_peak_over_weights": _ratio(comp.process_peak, ckpt.weight_bytes),
        "peak_over_weights": _ratio(comp.peak_delta, ckpt.weight_bytes),
        "compile_over_forward_s": _ratio(comp.wall_s, fwd.wall_s),
        "compile_over_forward_peak": _ratio(comp.peak_delta, fwd.peak_delta),
        "memory_goal": verdict(ckpt, comp, fwd),
    }


def _fmt(value: float | None, spec: str, fallback: str = "-") -> str:
    return fallback if value is None else format(value, spec)


HEADER = ("model", "params", "weight MB", "compile s", "process peak MB", "process / weights",
          "above imports MB", "above imports / weights", "compile s / forward s",
          "compile peak / forward peak", "≤3× and ≤2×")


def _short(o: dict) -> str:
    """Table cell for a compile that did not finish."""
    if o["status"] == "killed":
        return f"killed at {o['max_rss_polled'] / GB:.1f} GB"
    return o["status"]


def _cells(row: dict) -> tuple[str, ...]:
    comp = row["compile"]
    peak = None if comp["peak_delta"] is None else comp["peak_delta"] / MB
    total = None if comp["process_peak"] is None else comp["process_peak"] / MB
    return (row["model"], f"{row['params']:,}", f"{row['weight_bytes'] / MB:.1f}",
            _fmt(comp["wall_s"], ".1f", _short(comp)), _fmt(total, ".0f"),
            _fmt(row["process_peak_over_weights"], ".2f"), _fmt(peak, ".0f"),
            _fmt(row["peak_over_weights"], ".2f"), _fmt(row["compile_over_forward_s"], ".1f"),
            _fmt(row["compile_over_forward_peak"], ".1f"), row["memory_goal"])


def _notes(row: dict) -> list[str]:
    """Lines under the table: the forward pass, and why a child did not finish."""
    f, c = row["forward"], row["compile"]
    peak = None if f["peak_delta"] is None else f["peak_delta"] / MB
    lines = [f"{row['model']}: forward {_fmt(f['wall_s'], '.2f')} s (load {_fmt(f.get('load_s'), '.2f')} s), "
             f"peak {_fmt(peak, '.0f')} MB" + (f"; {f['status']}: {f['message']}" if f["status"] != "ok" else "")]
    if c["status"] != "ok":
        lines.append(f"{row['model']}: compile {c['status']}: {c['message']}")
    return lines


def format_table(rows: list[dict]) -> str:
    """Plain aligned table, then the forward passes and the failures."""
    table = [HEADER] + [_cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + [n for r in rows for n in _notes(r)])


# ---- main -----------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"[compile_scale] {msg}", file=sys.stderr, flush=True)


def _describe(kind: str, o: Outcome) -> str:
    if not o.ok:
        return f"{kind}: {o.status}: {o.message}"
    return f"{kind}: {o.wall_s:.2f} s, peak +{o.peak_delta / MB:.0f} MB"


def measure(name: str, workdir: Path, cap: float, timeout: float) -> dict:
    """Build ``name``'s checkpoint, then time its forward pass and its compile in children."""
    _log(f"building {name} ...")
    ckpt = build_checkpoint(name, workdir)
    _log(f"{name}: {ckpt.params:,} parameters, {ckpt.weight_bytes / MB:.1f} MB of float tensors "
         f"({ckpt.build_s:.1f} s)")
    fwd = run_child("forward", name, ckpt.path, cap, timeout, workdir)
    _log(f"{name}: {_describe('forward', fwd)}")
    _log(f"{name}: compiling (cap {cap / GB:.1f} GB, timeout {timeout:.0f} s) ...")
    comp = run_child("compile", name, ckpt.path, cap, timeout, workdir)
    _log(f"{name}: {_describe('compile', comp)}")
    return make_row(name, ckpt, comp, fwd)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated subset of {', '.join(MODELS)}")
    ap.add_argument("--quick", action="store_true", help=f"only {' and '.join(QUICK)}")
    ap.add_argument("--cap-gb", type=float, default=8.0, help="kill a child past this RSS (GB)")
    ap.add_argument("--timeout", type=float, default=900.0, help="kill a child after this many seconds")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = ap.parse_args(argv)
    args.models = list(QUICK) if args.quick else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    cap = args.cap_gb * GB
    rows = []
    with tempfile.TemporaryDirectory(prefix="compile_scale-") as tmp:
        for name in args.models:
            rows.append(measure(name, Path(tmp), cap, args.timeout))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"compile to lava, T={STEPS}, firing rates {FIRING_RATES}; process peak = VmHWM of the "
              f"whole process (goal ≤ {PROCESS_GOAL:g}× weights), above imports = VmHWM above the "
              f"post-import RSS (goal ≤ {ABOVE_IMPORTS_GOAL:g}×); wall goal ≤ {WALL_GOAL:g}× forward; "
              f"cap {args.cap_gb:g} GB, timeout {args.timeout:g} s")
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

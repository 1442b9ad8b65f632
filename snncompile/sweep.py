"""``snncompile sweep SPEC.toml``: a grid of tickets × pass sets × precisions × cost models.

Each cell (model, pass set, precision) is one Ray task: compile, simulate on Lava where
asked, and estimate the energy under every cost model (one row per cost model). A cell that
fails becomes a row with its error and never stops the others; a task whose worker dies is
retried once. The result: one table (JSON and CSV) and a PNG of accuracy against energy per
sample with the Pareto front marked. The spec (paths relative to the spec's folder)::

    models = ["models/digits_scnn*.pt"]           # files or globs
    input = "models/digits_test.npz"              # needed to simulate
    samples = 100                                 # optional: the first N samples
    steps = 8                                     # optional: T when the checkpoint lacks it
    passes = ["default", "none"]                  # pass sets: default, none, or "a,b,c"
    precision = ["float", "fixed"]
    cost_models = ["45nm", "loihi"]
    simulate = true
    timeout = 900                                 # seconds per cell's simulation
    cell_timeout = 3600                           # seconds per cell in all (default: timeout + 600, >= 3600)
    [arch]                                        # --arch per model file, where needed
    "models/digits_spikformer_convpep.pt" = "models.digits_arch:digits_spikformer"
"""

from __future__ import annotations

import csv
import glob
import io
import itertools
import json
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from snncompile import schema
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.limits import check_regular_file

COLUMNS = ("model", "passes", "precision", "cost_model", "status", "accuracy", "spike_agreement",
           "prediction_agreement", "snn_energy_nj", "ann_energy_nj", "energy_ratio", "synapses",
           "neurons", "samples", "wall_s", "error")


@dataclass
class Cell:
    model: str
    passes: str
    precision: str
    cost_models: list[str]
    input: str | None
    samples: int | None
    steps: int | None
    simulate: bool
    timeout: float
    arch: str | None = None
    cell_timeout: float = 3600.0   # the whole cell (load, compile, simulate, estimate): then cancelled


@dataclass
class Spec:
    cells: list[Cell]
    root: Path
    unmatched: list[str] = field(default_factory=list)


_SPEC = {
    "samples": schema.Field("int", 1), "steps": schema.Field("int", 1, schema.MAX_STEPS),
    "timeout": schema.Field("float", 0, 7 * 24 * 3600.0, lo_open=True), "simulate": schema.Field("bool"),
    "input": schema.Field("str"), "models": schema.Field("strings", required=True),
    "passes": schema.Field("strings"), "precision": schema.Field("strings"),
    "cost_models": schema.Field("strings"), "arch": None, "max_cells": schema.Field("int", 1),
    "cell_timeout": schema.Field("float", 0, 30 * 24 * 3600.0, lo_open=True),
}
# A grid beyond this many cells (models × passes × precisions × cost models) is refused:
# it is almost always a glob or list mistake, and would queue work for days. `max_cells` raises it.
MAX_CELLS = 2000


def load_spec(path: str | Path) -> Spec:
    """Read and check a sweep spec; expand model globs (relative to the spec's folder)."""
    path = check_regular_file(path, "sweep spec")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnnCompileError(f"sweep spec not found: {path}", "pass a TOML file (see docs/sweep.md)",
                              EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SnnCompileError(f"cannot read sweep spec {path}: {exc}", "fix the TOML (see docs/sweep.md)",
                              EXIT_USAGE) from None
    rules = {k: v for k, v in _SPEC.items() if v is not None}
    unknown = sorted(set(data) - set(_SPEC))
    if unknown:
        raise SnnCompileError(f"sweep spec {path}: unknown key(s) {', '.join(unknown)}",
                              f"known keys: {', '.join(_SPEC)}", EXIT_USAGE)
    data = schema.validate(f"sweep spec {path}", data, rules)
    arch = data.get("arch") or {}
    if not isinstance(arch, dict) or not all(isinstance(v, str) for v in arch.values()):
        raise SnnCompileError(f"sweep spec {path}: [arch] must map model files to package.module:factory",
                              '[arch]\n"models/net.pt" = "models.arch:make_net"', EXIT_USAGE)
    root = path.parent
    precisions = list(data.get("precision") or ["float"])
    bad = [p for p in precisions if p not in ("float", "fixed")]
    if bad:
        raise SnnCompileError(f"sweep spec {path}: precision {bad[0]!r}", 'use "float" and/or "fixed"',
                              EXIT_USAGE)
    simulate = bool(data.get("simulate", True))
    if not data.get("input"):   # without simulation the SNN energy still needs spikes: the reference's
        raise SnnCompileError(f"sweep spec {path}: no input file (simulate = {str(simulate).lower()}); every "
                              "cell needs one: the SNN energy is estimated from the spikes on it",
                              'add input = "inputs.npz" to the spec', EXIT_USAGE)
    models, unmatched = [], []
    for pattern in data["models"]:
        found = sorted(glob.glob(str(root / pattern)))
        models += found
        if not found:
            unmatched.append(pattern)
    _check_grid(path, data, len(dict.fromkeys(models)), len(precisions))
    arch_of = {str((root / k).resolve()): v for k, v in arch.items()}
    from snncompile.api import defaults  # the CLI's and the API's defaults, here too

    default = defaults()
    timeout = float(data.get("timeout", default["timeout"]))
    cell_timeout = float(data.get("cell_timeout", max(3600.0, timeout + 600.0)))
    cells = [Cell(m, ps, pr, list(data.get("cost_models") or [default["energy_model"]]),
                  str(root / data["input"]) if data.get("input") else None, data.get("samples"),
                  data.get("steps"), simulate, timeout, arch_of.get(str(Path(m).resolve())), cell_timeout)
             for m, ps, pr in itertools.product(dict.fromkeys(models), data.get("passes") or ["default"],
                                                precisions)]
    if not cells and not unmatched:
        raise SnnCompileError(f"sweep spec {path}: no models", 'list them: models = ["a.pt", "b*.pt"]',
                              EXIT_USAGE)
    return Spec(cells, root, unmatched)


def _check_grid(path: Path, data: dict[str, Any], models: int, precisions: int) -> None:
    """Refuse a grid above the cell limit before any cell is built or queued."""
    n = models * len(data.get("passes") or [1]) * precisions * len(data.get("cost_models") or [1])
    limit = int(data.get("max_cells", MAX_CELLS))
    if n > limit:
        raise SnnCompileError(f"sweep spec {path}: the grid has {n:,} cells, above the limit of {limit:,}",
                              f"check the model globs and lists, or raise the limit with max_cells = {n} "
                              "in the spec", EXIT_USAGE)


def _passes(spec: str) -> list[str] | None:
    from snncompile.passes import parse_passes

    if spec == "default":
        return None
    if spec == "none":
        return []
    return parse_passes(spec)


def run_cell(cell: Cell) -> list[dict[str, Any]]:
    """Compile, simulate and estimate one cell: one row per cost model (errors become rows)."""
    from snncompile.api import compile as compile_model

    rows = []
    base = {"model": cell.model, "passes": cell.passes, "precision": cell.precision}
    first = True
    for cost in cell.cost_models:
        t0 = time.perf_counter()
        try:
            rep = compile_model(cell.model, "lava", input=cell.input, samples=cell.samples, steps=cell.steps,
                                simulate_on_target=cell.simulate and first, passes=_passes(cell.passes),
                                fixed_point=cell.precision == "fixed", energy_model=cost, arch=cell.arch,
                                timeout=cell.timeout)
        except SnnCompileError as exc:
            error = f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
            rows.append({**base, "cost_model": cost, "status": "failed", "error": error})
            first = False
            continue
        except Exception as exc:  # noqa: BLE001 - a bug in one cell must not stop the sweep
            rows.append({**base, "cost_model": cost, "status": "failed",
                         "error": f"internal error: {type(exc).__name__}: {exc}"})
            first = False
            continue
        snn, ann = rep.energy.variants.energy("snn"), rep.energy.variants.energy("ann")
        row = {**base, "cost_model": cost, "status": "ok", "snn_energy_nj": snn / 1e3, "ann_energy_nj": ann / 1e3,
               "energy_ratio": ann / snn if snn else None, "synapses": rep.lowering["synapses"],
               "neurons": rep.lowering["neurons"], "wall_s": round(time.perf_counter() - t0, 2)}
        if rep.simulation:
            sim = rep.simulation
            row.update(accuracy=sim.get("accuracy"), spike_agreement=sim["spike_agreement"],
                       prediction_agreement=sim["prediction_agreement"], samples=sim["samples"])
        elif rows and rows[0].get("status") == "ok":  # the same network: its simulation is the cell's
            row.update({k: rows[0].get(k) for k in ("accuracy", "spike_agreement", "prediction_agreement",
                                                     "samples")})
        rows.append(row)
        first = False
    return rows


def run_sweep(spec: Spec, *, workers: int | None, address: str | None = None,
              progress: Callable[[int, int], None] | None = None, connect_timeout: float = 30.0) -> dict[str, Any]:
    """Every cell as a Ray task; rows in spec order, whatever order they finish in. A cell
    running longer than its ``cell_timeout`` is cancelled and becomes failed rows; the
    others go on. At most as many cells as the cluster has CPUs are queued at once, so a
    cell's clock starts when it can start."""
    from snncompile.parallel import start

    ray = start(workers, address, connect_timeout)
    task = ray.remote(max_retries=1, retry_exceptions=False, num_cpus=1)(run_cell)
    slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
    t0 = time.perf_counter()
    waiting = list(range(len(spec.cells)))[::-1]
    pending: dict[Any, tuple[int, float]] = {}   # task → (cell, deadline)
    results: dict[int, list[dict]] = {}
    total = len(spec.cells)
    if progress:
        progress(0, total)
    try:
        while pending or waiting:
            while waiting and len(pending) < slots:
                i = waiting.pop()
                pending[task.remote(spec.cells[i])] = (i, time.monotonic() + spec.cells[i].cell_timeout)
            first = min(d for _, d in pending.values())
            done, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.1, first - time.monotonic()))
            if done:
                i, _ = pending.pop(done[0])
                results[i] = _cell_result(ray, done[0], spec.cells[i])
            for ref, (i, deadline) in list(pending.items()):
                if time.monotonic() >= deadline:
                    ray.cancel(ref, force=True)   # the Lava worker's reaper stops its processes
                    del pending[ref]
                    results[i] = _failed_rows(spec.cells[i], f"the cell did not finish within "
                                              f"{spec.cells[i].cell_timeout:g} s (cell_timeout) and was cancelled")
            if progress:
                progress(len(results), total)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    rows = [dict.fromkeys(COLUMNS) | r for i in range(total) for r in results[i]]
    for r in rows:
        r["model"] = _relative(r["model"], spec.root)
    rows += [dict.fromkeys(COLUMNS) | {"model": p, "status": "failed", "error": "no file matches this pattern"}
             for p in spec.unmatched]
    failed = sum(r["status"] != "ok" for r in rows)
    return {"cells": total, "rows": rows, "failed_rows": failed, "complete": failed == 0,
            "wall_s": round(time.perf_counter() - t0, 2), "pareto": pareto(rows),
            "cells_spec": [asdict(c) for c in spec.cells]}


def _cell_result(ray: Any, ref: Any, cell: Cell) -> list[dict[str, Any]]:
    try:
        return ray.get(ref)
    except Exception as exc:  # noqa: BLE001 - the worker died twice
        text = (str(exc).strip().splitlines() or [""])[-1][:300]
        return _failed_rows(cell, f"worker failed twice ({type(exc).__name__}: {text})")


def _failed_rows(cell: Cell, error: str) -> list[dict[str, Any]]:
    return [{"model": cell.model, "passes": cell.passes, "precision": cell.precision, "cost_model": c,
             "status": "failed", "error": error} for c in cell.cost_models]


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def pareto(rows: list[dict]) -> list[int]:
    """Indices of rows no other row beats, within each cost model (energies under different
    cost models are not comparable): at most the energy and at least the accuracy, one strictly."""
    front = []
    for cost in sorted({r["cost_model"] for r in rows if r["status"] == "ok"}):
        pts = [(i, r["snn_energy_nj"], r["accuracy"]) for i, r in enumerate(rows)
               if r["status"] == "ok" and r["cost_model"] == cost and r.get("accuracy") is not None]
        front += [i for i, e, a in pts
                  if not any((e2 <= e and a2 >= a) and (e2 < e or a2 > a) for _, e2, a2 in pts)]
    return sorted(front)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def plot(result: dict, path: Path, write) -> Path:
    """Accuracy against SNN energy per sample (log x), one colour per cost model, Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 5))
    costs = sorted({r["cost_model"] for r in rows if r["status"] == "ok" and r.get("accuracy") is not None})
    for k, cost in enumerate(costs):
        pts = [r for r in rows if r["status"] == "ok" and r["cost_model"] == cost and r.get("accuracy") is not None]
        ax.scatter([r["snn_energy_nj"] for r in pts], [r["accuracy"] for r in pts], label=cost,
                   color=f"C{k}", zorder=3)
        for r in pts:
            ax.annotate(f"{Path(r['model']).stem} {r['passes']} {r['precision']}",
                        (r["snn_energy_nj"], r["accuracy"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for k, cost in enumerate(costs):
        front = sorted((rows[i] for i in result["pareto"] if rows[i]["cost_model"] == cost),
                       key=lambda r: r["snn_energy_nj"])
        ax.plot([r["snn_energy_nj"] for r in front], [r["accuracy"] for r in front], "--", color=f"C{k}", lw=1,
                label=f"Pareto front ({cost})", zorder=2)
        ax.scatter([r["snn_energy_nj"] for r in front], [r["accuracy"] for r in front], s=120,
                   facecolors="none", edgecolors="k", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("SNN energy per sample (nJ, log scale)")
    ax.set_ylabel("accuracy on Lava")
    failed = result["failed_rows"]
    ax.set_title(f"sweep: {result['cells']} cells" + (f", {failed} failed rows (see table)" if failed else ""))
    if costs:
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        return write(path, lambda fh: fig.savefig(fh, dpi=130, format="png"))
    finally:
        plt.close(fig)


def write_outputs(result: dict, outdir: str | Path) -> dict[str, str]:
    """sweep.json, sweep.csv and sweep.png in ``outdir``, all or none."""
    from snncompile.fsutil import check_folder, staged_outputs

    out = check_folder(outdir)
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "chart": out / "sweep.png"}
    with staged_outputs() as staged:
        staged.write(paths["json"], lambda fh: fh.write(json.dumps(result, indent=2, default=str).encode()))
        staged.write(paths["csv"], lambda fh: fh.write(to_csv(result["rows"]).encode()))
        plot(result, paths["chart"], staged.write)
    return {k: str(v) for k, v in paths.items()}

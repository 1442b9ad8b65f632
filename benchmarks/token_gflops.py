"""SparseSpikformer's "−20 % GFLOPs" from our report, at the official code's configurations
(tests/corpus/sparse_paper.py ``CONFIGS``), through the CLI as a user runs it:

- ``cifar10``: T = 4, 4 blocks, dim 384, 12 heads, 32 px, the SPS stem pooling twice;
- ``dvs128``: DVS128 Gesture, batch-first [B, 16, 2, 128, 128] frames, 4 blocks, dim 256, 16 heads,
  11 classes, the SPS stem pooling after each of its four stages;
- ``cifar10dvs``: the same model as ``dvs128`` with 10 classes (only its keep rates differ);

each with selectors before blocks 1, 2, 3 keeping [r, r², r³] of the 64 tokens, for the base
rates the official scripts use (training ``base_rate`` and the evaluation model's ``token_ratio``)::

    python -m snncompile energy paper.pt --trust-pickle --input-shape 2,128,128 --steps 16 --json
                                                     # → energy.token_selection
    python -m benchmarks.token_gflops [--config cifar10|dvs128|cifar10dvs] [--base-rate R] [--json]

Prints ANN GFLOPs (2·MACs per sample, one pass, as papers count) with every token and with the
selectors, the saving, the share of the SPS stem (before any selector), the saving of everything
after the stem, the compile + estimate time of each configuration and the process's peak RSS;
then which configuration's figure is within 2 points of the paper's −20 %. Compile and analytic
estimate only (no simulation). A figure, not a test: nothing asserts here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snncompile.cli import main as cli  # noqa: E402
from tests.corpus.sparse_paper import CONFIGS, SparseSpikformerPaper, powers  # noqa: E402

PAPER_SAVING = 0.20
TOLERANCE = 0.02     # "≈ −20 %": within 2 points


def _energy(config: str, rates: tuple[float, ...], folder: Path) -> dict:
    """The CLI's JSON energy report of ``config``'s model with keep ``rates``."""
    cfg = CONFIGS[config]
    torch.manual_seed(0)
    model = SparseSpikformerPaper(**dict(cfg["model"], keep_rates=rates))
    path = folder / f"{config}.pt"
    torch.save(model, path)
    out = io.StringIO()
    shape = ",".join(str(d) for d in cfg["input_shape"])
    with contextlib.redirect_stdout(out):
        code = cli(["energy", str(path), "--trust-pickle", "--input-shape", shape, "--steps", str(cfg["steps"]),
                    "--json"])
    if code:
        raise SystemExit(f"snncompile exited with {code}")
    return json.loads(out.getvalue())["energy"]


def figures(energy: dict) -> dict:
    """Whole-network and blocks-only ANN GFLOPs, with the selectors and keeping every token."""
    sel = energy["token_selection"]
    stem = sum(r["macs"] for r in energy["layers"] if r["name"].startswith("patch_embed") and r.get("op") != "neuron")
    all_macs, kept = sel["ann_macs_all_tokens"], sel["ann_macs"]
    return {"gflops_all_tokens": sel["ann_gflops_all_tokens"], "gflops": sel["ann_gflops"],
            "saving": sel["ann_mac_saving"], "stem_share": stem / all_macs,
            "blocks_saving": (all_macs - kept) / (all_macs - stem), "kept_fraction": sel["kept_fraction"]}


def measure(config: str, extra: tuple[float, ...] = ()) -> dict:
    """Every base rate of ``config`` (and the ``extra`` ones): its figures, the tokens kept and the
    seconds it took."""
    rows = {}
    rates = [*CONFIGS[config]["base_rates"], *((r, "asked for (--base-rate)") for r in extra)]
    with tempfile.TemporaryDirectory() as tmp:
        for base, use in rates:
            rates = powers(base)
            start = time.perf_counter()
            energy = _energy(config, rates, Path(tmp))
            rows[str(base)] = dict(figures(energy), tokens=[int(64 * r) for r in rates], use=use,
                                   seconds=time.perf_counter() - start)
    return rows


def _describe(config: str) -> str:
    m, shape = CONFIGS[config]["model"], CONFIGS[config]["input_shape"]
    return (f"{config}: T={CONFIGS[config]['steps']}, {m['depth']} blocks, dim {m['dim']}, {m['heads']} heads, "
            f"input {shape[0]}×{shape[1]}×{shape[2]}, 64 tokens")


def matches(results: dict[str, dict]) -> list[str]:
    """Configurations and base rates whose whole-network saving is within TOLERANCE of −20 %."""
    return [f"{c} at base rate {b} ({r['use']}): −{r['saving']:.1%}" for c, rows in results.items()
            for b, r in rows.items()
            if abs(r["saving"] - PAPER_SAVING) <= TOLERANCE]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(CONFIGS), action="append",
                    help="configuration(s) to price (repeatable; default: all)")
    ap.add_argument("--base-rate", type=float, action="append", default=[], metavar="R",
                    help="also price keep rates [R, R², R³] (repeatable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if any(not 0.0 < r <= 1.0 for r in args.base_rate):
        ap.error("--base-rate must be in (0, 1]")
    results = {c: measure(c, tuple(args.base_rate)) for c in args.config or CONFIGS}
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux
    if args.json:
        print(json.dumps({"configs": results, "reproduces_minus_20_percent": matches(results),
                          "peak_rss_mib": peak_mib}, indent=1))
        return
    print("SparseSpikformer: ANN GFLOPs = 2·MACs per sample, one pass (every Conv/Linear and attention product)")
    for config, rows in results.items():
        print(_describe(config))
        for base, r in rows.items():
            print(f"  base rate {base} ({r['use']}): tokens 64→{r['tokens']}: {r['gflops_all_tokens']:.3f} GFLOPs "
                  f"every token, {r['gflops']:.3f} with the selectors: −{r['saving']:.1%} (after the stem "
                  f"−{r['blocks_saving']:.1%}; SPS stem {r['stem_share']:.0%} of the MACs, before any selector; "
                  f"compile + estimate {r['seconds']:.1f} s)")
    found = matches(results)
    print(f"vs the paper's −20 % (within {TOLERANCE * 100:.0f} points): " + ("; ".join(found) if found else "none"))
    print(f"peak RSS of this process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()

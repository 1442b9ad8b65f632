"""SparseSpikformer's "−20 % GFLOPs" from our report, at the paper's CIFAR-10 configuration
(tests/corpus/sparse_paper.py: T = 4, 4 blocks, dim 384, 12 heads, 32 px, selectors before
blocks 1, 2, 3 keeping 0.9, 0.81, 0.729 of the 64 tokens), through the CLI as a user runs it:

    python -m snncompile energy paper.pt --arch tests.corpus.sparse_paper:SparseSpikformerPaper \\
        --input-shape 3,32,32 --json          # → energy.token_selection

    python -m benchmarks.token_gflops [--json]

Prints ANN GFLOPs (2·MACs per sample, as papers count) with every token and with the
selectors, the saving, the share of the SPS stem (before any selector) and the saving of
everything after the stem; then the same for lower keep rates (the training script's
``base_rate`` and its powers). A figure, not a test: nothing asserts here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snncompile.cli import main as cli  # noqa: E402
from tests.corpus.sparse_paper import PAPER  # noqa: E402

ARCH = "tests.corpus.sparse_paper:SparseSpikformerPaper"


def _energy(rates: tuple[float, ...], folder: Path) -> dict:
    """The CLI's JSON energy report of the paper model with keep ``rates``."""
    from tests.corpus.sparse_paper import SparseSpikformerPaper

    torch.manual_seed(0)
    model = SparseSpikformerPaper(**dict(PAPER, keep_rates=rates))
    path = folder / "paper.pt"
    torch.save(model, path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(["energy", str(path), "--trust-pickle", "--input-shape", "3,32,32", "--json"])
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for base in (0.9, 0.8, 0.7):
            rates = (base, base ** 2, base ** 3)
            rows[base] = dict(figures(_energy(rates, Path(tmp))), tokens=[int(64 * r) for r in rates])
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("SparseSpikformer, CIFAR-10 configuration (T=4, 4 blocks, dim 384, 12 heads, 32 px, 64 tokens);")
    print("ANN GFLOPs = 2·MACs per sample (every Conv/Linear and attention product, one pass)")
    for base, r in rows.items():
        tag = "shipped default" if base == 0.9 else "lower keep rate"
        print(f"  base_rate {base} ({tag}): tokens 64→{r['tokens']}: {r['gflops_all_tokens']:.3f} GFLOPs every "
              f"token, {r['gflops']:.3f} with the selectors: −{r['saving']:.1%} (after the stem −{r['blocks_saving']:.1%}; "
              f"SPS stem {r['stem_share']:.0%} of the MACs, before any selector)")
    near = min(rows, key=lambda b: abs(rows[b]["saving"] - 0.2))
    print(f"vs the paper's −20 %: the whole network at the shipped keep rates saves {rows[0.9]['saving']:.1%}: the "
          f"SPS stem ({rows[0.9]['stem_share']:.0%} of the MACs at 32 px) comes before every selector and block 0 "
          f"keeps every token; of the shipped rates' figures, −20 % is nearest at base_rate {near} "
          f"(−{rows[near]['saving']:.1%}).")


if __name__ == "__main__":
    main()

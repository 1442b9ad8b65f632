"""Every number printed in the terminal tables is in ``--json`` too (issue #26 item 4).

The rendered tables of ``snncompile energy`` on the 90 %-pruned digits ticket are parsed
cell by cell; each number (with its unit: pJ…mJ, %, ×, bits as B/KiB) must be the
rendering of some number of the JSON report, and each number inside a text cell (a
layer's detail, "30 removed") must occur in the JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from snncompile.cli import main
from snncompile.energy.render import fmt_bits, fmt_n, fmt_pj

MODELS = Path(__file__).resolve().parents[1] / "models"
TICKET = str(MODELS / "digits_scnn_ticket.pt")
TOKEN = re.compile(r"\d+(?:×\d+)+|-?\d[\d,]*(?:\.\d+)?(?:\s?(?:pJ|nJ|µJ|mJ|KiB|MiB|GiB|B)\b|%|×)?")


def _leaves(obj, nums: list[float], texts: list[str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            texts.append(str(k))
            _leaves(v, nums, texts)
    elif isinstance(obj, list):
        if obj and all(isinstance(v, int) for v in obj):   # a shape, shown as 16×8×8
            texts.append("×".join(map(str, obj)))
        for v in obj:
            _leaves(v, nums, texts)
    elif isinstance(obj, bool) or obj is None:
        return
    elif isinstance(obj, (int, float)):
        nums.append(float(obj))
    else:
        texts.append(str(obj))


def _renderings(v: float) -> set[str]:
    out = {fmt_n(v), fmt_pj(v), f"{v:.3f}", f"{v:.2f}×", f"{v:.1%}", f"{v:g}"}
    if v.is_integer():
        out.add(fmt_bits(int(v)))
        out.add(str(int(v)))
    return out


def _cells(text: str) -> list[tuple[str, bool]]:
    """(cell text, numeric column?) of every table row; text columns: layer, type/op, detail,
    variant, operations."""
    cells = []
    for line in text.splitlines():
        if "│" not in line:
            if line.startswith("storage:"):
                cells += [(part, True) for part in re.findall(r"\d[\d.,]* (?:B|KiB|MiB|GiB)", line)]
            continue
        parts = [c.strip() for c in line.strip().strip("│").split("│")]
        for i, c in enumerate(parts):
            if c:
                cells.append((c, i > 1 and not re.search(r"[A-Za-z]{3,}", c.replace("MAC", ""))))
    return cells


def _run(capsys, tmp_path, *args) -> tuple[str, dict]:
    """The printed tables and the report.json of one run (the object --json prints)."""
    assert main(["energy", TICKET, *args, "-o", str(tmp_path)]) == 0
    return capsys.readouterr().out, json.loads((tmp_path / "report.json").read_text())


@pytest.mark.parametrize("args", [(), ("--input", str(MODELS / "digits_test.npz"), "--samples", "16"),
                                  ("--firing-rates", "0.1")], ids=["static", "input", "rates"])
def test_every_table_number_is_in_the_json(capsys, tmp_path, args):
    table, doc = _run(capsys, tmp_path, *args)
    nums: list[float] = []
    texts: list[str] = []
    _leaves(doc, nums, texts)
    shown = set().union(*(_renderings(v) for v in nums))
    blob = "\n".join(texts)
    checked, missing = 0, []
    for cell, numeric in _cells(table):
        for tok in TOKEN.findall(cell):
            checked += 1
            if "×" in tok[:-1]:   # a shape
                ok = tok in texts
            else:
                ok = tok in shown or (not numeric and re.search(rf"(?<![\d.]){re.escape(tok)}(?![\d])", blob))
            if not ok:
                missing.append((cell, tok))
    assert checked > 150 and not missing, missing[:20]


def test_pruned_ticket_weight_and_synapse_sparsity(capsys, tmp_path):
    """A 90 %-pruned ticket shows ~90 % weight sparsity beside its synapse sparsity; SNN
    figures are omitted (no saving printed) without --input or rates."""
    table, doc = _run(capsys, tmp_path)
    totals = doc["energy"]["totals"]
    assert totals["weight_sparsity"] == pytest.approx(3472 / 3784)            # the ticket's own 91.8 %
    assert doc["graph"]["weight_sparsity"] == pytest.approx(3472 / 3784)
    assert totals["synapse_sparsity"] == pytest.approx(1 - 4453 / 69408)
    assert "91.8%" in table and "93.6%" in table
    assert doc["energy"]["variants"]["snn"] is None and doc["energy"]["savings"]["snn_vs_ann"] is None
    assert re.search(r"SNN \(this model\) +│ +- +│", table) and "needs spikes or firing rates" in table
    names = [r["name"] for r in doc["energy"]["layers"]]
    assert names[:3] == ["0", "2", "3"] and "conv2d_0" not in table    # the nn.Sequential's module paths
    assert {r["ir_name"] for r in doc["energy"]["layers"]} >= {"conv2d_0", "neuron_2"}

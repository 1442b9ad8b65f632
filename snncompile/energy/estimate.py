"""Energy of the SNN (SOPs on spikes, MACs on real-valued inputs) versus its ANN twin."""

from __future__ import annotations

from dataclasses import asdict

from snncompile.energy.costs import CostModel
from snncompile.energy.counts import LayerCount


def energy_summary(model_name: str, rows: list[LayerCount], cost: CostModel, steps: int) -> dict:
    """The ``energy`` object of the report (per sample, one inference of ``steps`` steps)."""
    e_mac, e_ac = cost.pj("mac"), cost.pj("ac")
    ann_macs = sum(r.macs for r in rows)
    have_spikes = all(r.sops is not None or r.snn_macs is not None for r in rows)
    out: dict = {"model": model_name, "cost_model": cost.name, "source": cost.source,
                 "first_layer": "mac", "steps": steps, "per": "sample",
                 "variants": {"ann": {"macs": ann_macs, "energy_pj": ann_macs * e_mac}},
                 "layers": []}
    for r in rows:
        d = asdict(r)
        d["in_shape"], d["out_shape"] = list(r.in_shape), list(r.out_shape)
        out["layers"].append(d)
    if have_spikes:
        sops = sum(r.sops or 0.0 for r in rows)
        macs = sum(r.snn_macs or 0.0 for r in rows)
        snn_pj = macs * e_mac + sops * e_ac
        out["variants"]["snn"] = {"sops": sops, "macs": macs, "energy_pj": snn_pj}
        out["savings"] = {"snn_vs_ann": (ann_macs * e_mac) / snn_pj if snn_pj else None}
    return out

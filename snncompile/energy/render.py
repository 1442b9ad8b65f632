"""Terminal rendering of the ``energy`` report (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

LABELS = {"ann": "ANN", "snn": "SNN", "snn_binary": "SNN binary-weight", "bnn": "BNN"}
UNVERIFIED = "[bold yellow]UNVERIFIED[/bold yellow]"


def fmt_pj(v: float | None) -> str:
    """Energy with a readable unit (input in pJ)."""
    if v is None:
        return "-"
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3f} {unit}"
    return f"{v:.1f} pJ"


def fmt_n(v: float | int | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"


def fmt_bits(bits: int) -> str:
    b = bits / 8
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.2f} {unit}"
    return f"{b:.0f} B"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}×"


def render_energy(energy: dict[str, Any], console: Console) -> None:
    """Per-layer table, totals per variant with savings, memory, and the cost model's figures."""
    steps, mode = energy["steps"], energy.get("mode", "")
    t = Table(title=f"energy per layer, per sample: {escape(str(energy['model']))}  "
                    f"(T={steps}, cost model {escape(energy['cost_model'])}, SOPs {mode})",
              title_justify="left")
    for col in ("layer", "type", "neurons", "synapses kept/dense", "rate in", "MACs (ANN)",
                "SOPs (SNN)", "ANN", "SNN", "SNN bin-w", "BNN"):
        t.add_column(col, justify="left" if col in ("layer", "type") else "right")
    for row in energy["layers"]:
        e = row["energy_pj"]
        if row["op"] == "neuron":
            kind = "OR (max-pool)" if row.get("role") == "or" else f"{row['model'].upper()} {row['reset']}"
            if row.get("removed"):
                kind += f", {fmt_n(row['removed'])} removed"
            syn = ""
            rate = "" if row.get("firing_rate_out") is None else f"→ {row['firing_rate_out']:.3f}"
            macs = sops = ""
            neurons = fmt_n(row["neurons"])
        else:
            if row.get("role") == "or":
                kind = f"{row['op']} OR"
            else:
                kind = row["op"] + (" ±α" if row.get("binary_weights") else "")
            syn = f"{fmt_n(row['synapses'])}/{fmt_n(row['synapses_dense'])}"
            if row["input"] == "real":
                rate = "real"
                sops = "" if row.get("snn_macs") is None else f"{fmt_n(row['snn_macs'])} MAC"
            else:
                rate = "-" if row["firing_rate_in"] is None else f"{row['firing_rate_in']:.3f}"
                sops = fmt_n(row["sops"])
            macs, neurons = fmt_n(row["macs"]), ""
        t.add_row(escape(row["name"]), kind, neurons, syn, rate, macs, sops,
                  *(fmt_pj(e[v]) for v in ("ann", "snn", "snn_binary", "bnn")))
    var = energy["variants"]
    t.add_section()
    syn_layers = [r for r in energy["layers"] if r["op"] != "neuron"]
    t.add_row("total", f"{len(syn_layers)} layers", fmt_n(sum(r["neurons"] for r in energy["layers"])),
              f"{fmt_n(sum(r['synapses'] for r in syn_layers))}/"
              f"{fmt_n(sum(r['synapses_dense'] for r in syn_layers))}", "",
              fmt_n(sum(r["macs"] for r in syn_layers)),
              fmt_n(var["snn"]["sops"]) if var.get("snn") else "",
              *(fmt_pj((var.get(v) or {}).get("energy_pj")) for v in ("ann", "snn", "snn_binary", "bnn")))
    console.print(t)
    _summary(energy, console)


def _summary(energy: dict[str, Any], console: Console) -> None:
    var, sav = energy["variants"], energy.get("savings", {})
    s = Table(title="totals per sample", title_justify="left")
    for col in ("variant", "energy", "MAC", "synaptic", "neuron", "memory", "operations", "vs ANN",
                "vs SNN"):
        s.add_column(col, justify="left" if col in ("variant", "operations") else "right")
    vs_ann = {"ann": 1.0, "snn": sav.get("snn_vs_ann"), "snn_binary": sav.get("snn_binary_vs_ann"),
              "bnn": sav.get("bnn_vs_ann")}
    mine = energy.get("model_variant")
    for v, label in LABELS.items():
        d = var.get(v)
        if v == mine:
            label += " (this model)"
        if not d:
            s.add_row(label, "-", "", "", "", "", "needs spikes or firing rates", "", "")
            continue
        b = d["breakdown_pj"]
        if v == "ann":
            ops = f"{fmt_n(d['macs'])} MACs"
        elif v == "bnn":
            ops = f"{fmt_n(d['bops'])} BOPs + {fmt_n(d['macs'])} MACs (OPs {fmt_n(d['ops'])})"
        else:
            ops = (f"{fmt_n(d['sops'])} SOPs + {fmt_n(d['macs'])} MACs + "
                   f"{fmt_n(d['neuron_updates'])} neuron updates")
        vs_snn = sav.get("snn_binary_vs_snn") if v == "snn_binary" else (1.0 if v == "snn" else None)
        s.add_row(label, fmt_pj(d["energy_pj"]), *(fmt_pj(b[k]) for k in ("mac", "synaptic", "neuron", "memory")),
                  ops, _ratio(vs_ann[v]), _ratio(vs_snn) if v in ("snn", "snn_binary") else "")
    console.print(s)
    console.print("  [dim]vs ANN / vs SNN: energy of the ANN (SNN) divided by this variant's; "
                  "> 1 means this variant needs less[/dim]")
    mem = energy.get("memory") or {}
    if mem:
        parts = [f"{LABELS[v]} {fmt_bits(m['total_bits'])} (weights {fmt_bits(m['weights_bits'])})"
                 for v, m in mem.items()]
        console.print("storage: " + ", ".join(parts))
    cost = energy.get("cost") or {}
    unverified = set(energy.get("unverified", []))
    console.print(f"cost model [bold]{escape(energy['cost_model'])}[/bold]: {escape(energy['source'])}",
                  highlight=False)
    figures = []
    for op, pj in (cost.get("ops") or {}).items():
        figures.append(f"{op} {pj:g} pJ" + (f" {UNVERIFIED}" if op in unverified else ""))
    for key, value in (cost.get("memory") or {}).items():
        name = f"memory.{key}"
        figures.append(f"{name} {value}" + (f" {UNVERIFIED}" if name in unverified else ""))
    if figures:
        console.print("  figures: " + ", ".join(figures), highlight=False)
    derived = cost.get("derived") or {}
    for op, rule in derived.items():
        console.print(f"  {op} derived as {escape(rule)} {UNVERIFIED}", highlight=False)
    console.print(f"  [dim]first layer: {energy.get('first_layer', 'mac')} (layers on real-valued input "
                  "are MACs every step); energies per sample over all steps[/dim]")
    for note in energy.get("notes", []):
        console.print(f"  [dim]note: {escape(note)}[/dim]", highlight=False)

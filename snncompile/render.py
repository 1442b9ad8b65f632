"""Terminal rendering of a Report with rich tables."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape as _e
from rich.table import Table

from snncompile.energy.render import fmt_n, fmt_pj, pct
from snncompile.report import Report

_n = fmt_n
_pj = fmt_pj


def render(report: Report, console: Console, verbose: bool = False) -> None:
    _layers(report, console, verbose)
    _passes(report, console, verbose)
    _lowering(report, console)
    _simulation(report, console)
    _fixed_point(report, console)
    _mapping(report, console)
    _energy(report, console, verbose)
    for k, v in report.outputs.items():
        console.print(f"wrote {k}: {_e(str(v))}")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {_e(note)}")


def _layers(report: Report, console: Console, verbose: bool) -> None:
    t = Table(title=f"{_e(str(report.model))} → {report.target}" + (f"  (T={report.steps})" if report.steps else ""),
              title_justify="left")
    for col, just in (("layer", "left"), ("op", "left"), ("shape", "left"), ("neurons", "right"),
                      ("synapses", "right"), ("dense", "right"), ("syn sparsity", "right"),
                      ("wt sparsity", "right"), ("detail", "left")):
        t.add_column(col, justify=just)
    for r in report.layers:
        if not verbose and r.op in ("reshape", "output", "input") and not r.neurons:
            continue
        t.add_row(_e(r.name), r.op, "×".join(map(str, r.shape)), _n(r.neurons) if r.neurons else "",
                  _n(r.synapses) if r.synapses_dense else "", _n(r.synapses_dense) if r.synapses_dense else "",
                  pct(r.sparsity), pct(r.weight_sparsity), _e(r.detail))
    g = report.graph
    t.add_section()
    t.add_row("total", f"{g['layers']} layers", "", _n(g["neurons"]), _n(g["synapses"]),
              _n(g["synapses_dense"]), pct(g["synapse_sparsity"]), pct(g["weight_sparsity"]), "")
    console.print(t)


def _passes(report: Report, console: Console, verbose: bool) -> None:
    if report.passes and verbose:
        pt = Table(title="passes", title_justify="left")
        for col in ("pass", "fused", "nodes removed", "synapses removed", "neurons removed", "bits saved",
                    "notes"):
            pt.add_column(col, justify="left" if col in ("pass", "notes") else "right")
        for st in report.passes:
            pt.add_row(st["name"], _n(st["nodes_fused"]), _n(st["nodes_removed"]), _n(st["synapses_removed"]),
                       _n(st["neurons_removed"]), _n(st["bits_saved"]), _e("\n".join(st["notes"])))
        console.print(pt)
    elif report.passes:
        done = [s["name"] for s in report.passes]
        removed = sum(s["synapses_removed"] for s in report.passes)
        console.print(f"passes: {', '.join(done)} (removed {_n(removed)} synapses, "
                      f"{_n(sum(s['neurons_removed'] for s in report.passes))} neurons; -v for the table)")


def _lowering(report: Report, console: Console) -> None:
    if not report.lowering:
        return
    lw = report.lowering
    impls: dict[str, int] = {}
    for p in lw["implementations"]:
        impls[p["impl"]] = impls.get(p["impl"], 0) + 1
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(impls.items()))
    delays = lw.get("delay_lines") or []
    loops = f", {len(delays)} delay line{'s' if len(delays) > 1 else ''}" if delays else ""
    console.print(f"lowered: {lw['populations']} neuron populations ({lw['or_populations']} OR-pool){loops}, "
                  f"{lw['projections']} projections ({kinds}), {_n(lw['synapses'])} synapses, "
                  f"latency {lw['latency_steps']} steps, output = {lw['output']}")


def _simulation(report: Report, console: Console) -> None:
    sim = report.simulation
    if not sim:
        return
    acc = "" if sim.get("accuracy") is None else f", accuracy {sim['accuracy']:.4f}"
    ref = sim.get("reference", {})
    tacc = "" if ref.get("torch_accuracy") is None else f" (PyTorch {ref['torch_accuracy']:.4f})"
    emission = f" {sim['emission']}" if sim.get("emission") else ""
    console.print(f"simulation ({sim['backend']}{emission}, {sim['samples']} samples, {sim['wall_s']:.1f} s, "
                  f"{sim['lava_steps']} steps): "
                  f"spike agreement {sim['spike_agreement']:.6f}, prediction agreement "
                  f"{sim['prediction_agreement']:.4f}{acc}{tacc}")


def _fixed_point(report: Report, console: Console) -> None:
    fx = report.fixed_point
    if not fx:
        return
    q = fx["quantization"]
    ft = Table(title=f"fixed point (8-bit weights; input scale {q['input_scale']:g})", title_justify="left")
    for col in ("projection", "weight exp", "weight error", "max err (LSB)", "saturated", "spike agreement"):
        ft.add_column(col, justify="left" if col == "projection" else "right")
    fid = fx.get("lava") or fx.get("integer_reference") or {}
    per_layer = fid.get("per_layer_spike_agreement", {})
    for e in q["layers"]:   # both keyed by module path
        layer = e.get("layer") or e["projection"]
        agree = per_layer.get(layer.split("→")[-1])
        style = "yellow" if e["warning"] else ""
        ft.add_row(_e(layer), str(e["weight_exp"]), f"{e['rel_weight_error']:.2%}",
                   f"{e['max_abs_error_lsb']:.2f}", str(e["saturated"]),
                   "" if agree is None else f"{agree:.4f}", style=style)
    console.print(ft)
    for label, key in (("integer reference", "integer_reference"), ("Lava fixed_pt", "lava")):
        f = fx.get(key)
        if f:
            acc = "" if f.get("accuracy") is None else f", accuracy {f['accuracy']:.4f}"
            console.print(f"{label} vs float PyTorch: spike agreement {f['spike_agreement']:.4f}, "
                          f"prediction agreement {f['prediction_agreement']:.4f}{acc}")
    if "integer_reference_bit_exact" in fx:
        ok = fx["integer_reference_bit_exact"]
        console.print(f"integer reference vs Lava fixed_pt: {'bit-exact' if ok else '[red]DIFFERS[/red]'}")
    _neuron_kinds(q, console)


def _neuron_kinds(q: dict, console: Console) -> None:
    """Which populations are Lava's stock LIF and which are extended (not a stock Loihi neuron)."""
    neurons = q.get("neurons", {})
    stock = [d.get("layer", n) for n, d in neurons.items() if d["stock_loihi"]]
    if stock:
        console.print(f"stock Loihi LIF (Lava's bit-accurate model): {', '.join(stock)}")
    for n, d in neurons.items():
        if not d["stock_loihi"]:
            console.print(f"[yellow]{d.get('layer', n)}: not a stock Loihi neuron[/yellow] "
                          f"({'; '.join(d['reasons'])})")


def _mapping(report: Report, console: Console) -> None:
    mp = report.mapping
    if not mp:
        return
    mt = Table(title=f"core mapping on {mp['chip']}: {mp['cores']} cores, {mp['chips']} chip(s)",
               title_justify="left")
    for col in ("layer", "cores", "neurons", "synapse bits", "neurons/core", "axons in", "syn mem",
                "axons out", "binding limit"):
        mt.add_column(col, justify="left" if col in ("layer", "binding limit") else "right")
    for row in mp["layers"]:
        u = row["utilisation"]
        mt.add_row(_e(row["layer"]), str(row["cores"]), _n(row["neurons"]), _n(row["synapse_bits"]),
                   f"{u['neurons']:.0%}", f"{u['input_axons']:.0%}", f"{u['synapse_bits']:.0%}",
                   f"{u['output_axons']:.0%}", row["binding_limit"])
    console.print(mt)
    if mp["unmapped"]:
        console.print(f"  not mappable to cores (custom processes): {_e(', '.join(mp['unmapped']))}")
    if mp["unverified"]:
        console.print(f"  [yellow]UNVERIFIED profile figures:[/yellow] {', '.join(mp['unverified'])}")


def _energy(report: Report, console: Console, verbose: bool) -> None:
    en = report.energy
    if en and (report.target == "energy" or verbose):
        from snncompile.energy.render import render_energy

        render_energy(en, console)
    elif en:
        ann = en.variants.ann
        line = f"energy/sample ({en.cost_model}): ANN {_pj(ann.energy_pj)} ({_n(ann.macs)} MACs)"
        snn = en.variants.snn
        if snn:
            line += (f" vs SNN {_pj(snn.energy_pj)} ({_n(snn.sops)} SOPs + {_n(snn.macs)} MACs on "
                     f"real-valued input) → {en.savings.snn_vs_ann:.2f}× less")
            binw = en.variants.snn_binary
            if binw:
                line += f"; binary-weight SNN {_pj(binw.energy_pj)}"
        else:
            line += "; SNN energy needs spikes: pass --input or --firing-rates"
        console.print(line)
        console.print(f"  [dim]cost model: {en.source} (--target energy for the per-layer table)[/dim]")


def render_sweep(result: dict, console: Console) -> None:
    """The sweep's table (one row per cell × cost model), Pareto rows starred, failures last."""
    t = Table(title=f"sweep: {result['cells']} cells, {len(result['rows'])} rows, {result['wall_s']:.1f} s"
              + ("" if result["complete"] else "  (INCOMPLETE: failed rows below)"), title_justify="left")
    for col in ("", "model", "passes", "precision", "cost model", "accuracy", "spike agr.", "SNN nJ",
                "ANN nJ", "ANN/SNN", "synapses", "error"):
        t.add_column(col, justify="left" if col in ("model", "passes", "precision", "cost model", "error")
                     else "right")
    front = set(result["pareto"])

    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    for i, r in enumerate(result["rows"]):
        t.add_row("*" if i in front else "", _e(r["model"]), _e(r["passes"] or ""), r["precision"] or "",
                  r["cost_model"] or "", num(r["accuracy"], ".4f"), num(r["spike_agreement"], ".6f"),
                  num(r["snn_energy_nj"], ".2f"), num(r["ann_energy_nj"], ".2f"), num(r["energy_ratio"], ".2f"),
                  "" if r["synapses"] is None else fmt_n(r["synapses"]), _e(r["error"] or ""))
    console.print(t)
    console.print("* on the accuracy–energy Pareto front")
    for name, path in (result.get("outputs") or {}).items():
        console.print(f"wrote {name}: {_e(str(path))}")

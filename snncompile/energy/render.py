"""Terminal rendering of the ``energy`` report (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from snncompile.energy.report import (
    CATEGORIES,
    VARIANTS,
    EnergyReport,
    HostRow,
    NeuronRow,
    Row,
    SynapticRow,
    num,
)

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


def pct(v: float | None) -> str:
    return "" if v is None else f"{v:.1%}"


def _layer_cells(row: Row) -> tuple[str, str, str, str, str, str]:
    """(type, neurons, synapses kept/dense, rate in, MACs, SOPs) of one row."""
    if isinstance(row, NeuronRow):
        kind = "OR (max-pool)" if row.role == "or" else f"{row.model.upper()} {row.reset}"
        if row.removed:
            kind += f", {fmt_n(row.removed)} removed"
        rate = "" if row.firing_rate_out is None else f"→ {row.firing_rate_out:.3f}"
        return kind, fmt_n(row.neurons), "", rate, "", ""
    if isinstance(row, SynapticRow):
        kind = f"{row.op} OR" if row.role == "or" else row.op + (" ±α" if row.binary_weights else "")
        if row.input_spiking:
            rate = "-" if row.firing_rate_in is None else f"{row.firing_rate_in:.3f}"
            sops = fmt_n(row.sops)
        else:
            rate, sops = "real", "" if row.snn_macs is None else f"{fmt_n(row.snn_macs)} MAC"
    elif isinstance(row, HostRow):   # off the cores: its MACs on the host, every step
        return f"{row.op} [off-core]", "", "", "real", fmt_n(row.macs), ""
    else:   # spike products and shortcuts: spikes in, no rate of their own
        kind, rate, sops = row.op, "-", fmt_n(num(row.sops))
    return kind, "", f"{fmt_n(row.synapses)}/{fmt_n(row.synapses_dense)}", rate, fmt_n(row.macs), sops


def render_energy(energy: EnergyReport, console: Console) -> None:
    """Per-layer table, totals per variant with savings, memory, and the cost model's figures."""
    t = Table(title=f"energy per layer, per sample: {escape(str(energy.model))}  "
                    f"(T={energy.steps}, cost model {escape(energy.cost_model)}, SOPs {energy.mode})",
              title_justify="left")
    for col in ("layer", "type", "neurons", "synapses\nkept/dense", "sparsity\nsyn/wt", "rate\nin",
                "MACs\n(ANN)", "SOPs\n(SNN)", "ANN", "SNN", "SNN\nbin-w", "BNN"):
        # numbers never wrap or shrink to an ellipsis: names and types wrap instead
        text = col in ("layer", "type")
        t.add_column(col, justify="left" if text else "right", no_wrap=not text,
                     min_width={"layer": 10, "type": 13}.get(col), overflow="fold")
    for row in energy.layers:
        kind, neurons, syn, rate, macs, sops = _layer_cells(row)
        sparsity = f"{pct(row.synapse_sparsity)}/{pct(row.weight_sparsity) or '-'}" \
            if isinstance(row, SynapticRow) else ""
        t.add_row(escape(row.name), kind, neurons, syn, sparsity, rate, macs, sops,
                  *(fmt_pj(row.priced.energy(v)) for v in VARIANTS))
    var, tot = energy.variants, energy.sparsity()
    t.add_section()
    t.add_row("total", f"{tot['layers']} layers", fmt_n(tot["neurons"]),
              f"{fmt_n(tot['synapses'])}/{fmt_n(tot['synapses_dense'])}",
              f"{pct(tot['synapse_sparsity'])}/{pct(tot['weight_sparsity']) or '-'}", "", fmt_n(tot["macs"]),
              fmt_n(var.snn.sops) if var.snn else "",
              *(fmt_pj(var.energy(v)) for v in VARIANTS))
    # a table wider than the console (pipes get 150 columns) is printed at its own width:
    # fitted, rich would squeeze its number columns or crop the last ones
    _print_whole(console, t)
    _summary(energy, console)


def _print_whole(console: Console, table: Table) -> None:
    """Print ``table`` at its natural width where the console is narrower (rich's print cannot
    go wider than the console, so the console is widened for it)."""
    need = console.measure(table, options=console.options.update_width(10_000)).maximum
    width = console.width
    if need <= width:
        console.print(table)
        return
    console.width = need
    try:
        console.print(table)
    finally:
        console.width = width


def _operations(v: str, d) -> str:
    if v == "ann":
        return f"{fmt_n(d.macs)} MACs"
    if v == "bnn":
        return f"{fmt_n(d.bops)} BOPs + {fmt_n(d.macs)} MACs (OPs {fmt_n(d.ops)})"
    return f"{fmt_n(d.sops)} SOPs + {fmt_n(d.macs)} MACs + {fmt_n(d.neuron_updates)} neuron updates"


def _summary(energy: EnergyReport, console: Console) -> None:
    var, sav = energy.variants, energy.savings
    s = Table(title="totals per sample", title_justify="left")
    for col in ("variant", "energy", "MAC", "synaptic", "neuron", "memory", "host (off-core)", "operations",
                "vs ANN", "vs SNN"):
        s.add_column(col, justify="left" if col in ("variant", "operations") else "right")
    vs_ann = {"ann": 1.0, "snn": sav.snn_vs_ann, "snn_binary": sav.snn_binary_vs_ann, "bnn": sav.bnn_vs_ann}
    vs_snn = {"snn": 1.0, "snn_binary": sav.snn_binary_vs_snn}
    for v, label in LABELS.items():
        d = var.get(v)
        if v == energy.model_variant:
            label += " (this model)"
        if not d:
            s.add_row(label, "-", "", "", "", "", "", "needs spikes or firing rates", "", "")
            continue
        s.add_row(label, fmt_pj(d.energy_pj), *(fmt_pj(d.breakdown.get(k)) for k in CATEGORIES),
                  _operations(v, d), _ratio(vs_ann[v]), _ratio(vs_snn[v]) if v in vs_snn else "")
    console.print(s)
    console.print("  [dim]vs ANN / vs SNN: energy of the ANN (SNN) divided by this variant's; "
                  "> 1 means this variant needs less[/dim]")
    if energy.memory:
        parts = [f"{LABELS[v]} {fmt_bits(m.total_bits)} (weights {fmt_bits(m.weights_bits)})"
                 for v, m in energy.memory.items()]
        console.print("storage: " + ", ".join(parts))
    _tokens(energy, console)
    _cost_model(energy, console)


def _tokens(energy: EnergyReport, console: Console) -> None:
    """What the token selectors save against the same network keeping every token."""
    sel = energy.token_selection
    if sel is None:
        return
    kinds = ", ".join(sorted(set(sel.kinds.values())))
    line = (f"token selection ({sel.mode}; {kinds}): {sel.kept_fraction:.1%} of tokens kept; ANN "
            f"{sel.ann_gflops:.4g} GFLOPs (2·MACs) vs {sel.ann_gflops_all_tokens:.4g} keeping every token "
            f"(−{sel.ann_mac_saving:.1%})")
    if sel.snn_saving is not None:
        line += f"; SNN {fmt_pj(sel.snn_pj)} vs {fmt_pj(sel.snn_pj_all_tokens)} (−{sel.snn_saving:.1%})"
    console.print(escape(line))
    for note in sel.notes:
        console.print(escape(f"  {note}"))


def _cost_model(energy: EnergyReport, console: Console) -> None:
    """The cost model's figures, each unverified one marked, and the report's notes."""
    cost, unverified = energy.cost, set(energy.unverified)
    console.print(f"cost model [bold]{escape(energy.cost_model)}[/bold]: {escape(energy.source)}",
                  highlight=False)
    figures = [f"{op} {pj:g} pJ" + (f" {UNVERIFIED}" if op in unverified else "") for op, pj in cost.ops.items()]
    for key, value in (cost.memory or {}).items():
        name = f"memory.{key}"
        figures.append(f"{name} {value}" + (f" {UNVERIFIED}" if name in unverified else ""))
    if figures:
        console.print("  figures: " + ", ".join(figures), highlight=False)
    for op, rule in cost.derived.items():
        console.print(f"  {op} derived as {escape(rule)} {UNVERIFIED}", highlight=False)
    console.print("  [dim]first layer: mac (layers on real-valued input "
                  "are MACs every step); energies per sample over all steps[/dim]")
    for note in energy.notes:
        console.print(f"  [dim]note: {escape(note)}[/dim]", highlight=False)

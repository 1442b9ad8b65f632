"""One declaration per target: what it builds, writes, can do and which options it takes.

The CLI's choices and help, the API's validation, the README's tables and the backends'
``emissions`` all read :data:`TARGETS`. Pure data: importing this module imports no
backend, torch or Lava (a target's code loads through ``snncompile.netlist.target``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetOption:
    """A compile option only some targets take: the ``api.Options`` field, its CLI flag."""

    field: str
    flag: str
    help: str


@dataclass(frozen=True)
class TargetSpec:
    """A compile target, declared.

    ``emissions``: ways the target builds the network, the first is the default;
    ``artifacts``: files it writes to the output folder; capabilities: ``lowers`` (builds a
    netlist), ``simulate`` (runs it), ``fixed_point`` (integer hardware models),
    ``ray_shards`` (a simulation can be split into shards on Ray workers, `--workers`).
    """

    name: str
    title: str                      # how messages name it, e.g. "Lava"
    summary: str                    # one phrase for --help and the README
    emissions: tuple[str, ...] = ()
    emission_help: str = ""
    artifacts: tuple[str, ...] = ()
    lowers: bool = False
    simulate: bool = False
    fixed_point: bool = False
    ray_shards: bool = False
    options: tuple[str, ...] = ()   # fields of OPTIONS this target takes
    docs: str = ""                  # the page that describes it
    integer_rules: str = "loihi"    # the quantizer of its fixed point (stages.QUANTIZERS)
    fixed_point_only: bool = False  # always fixed point (--fixed-point implied)


# Options that only some targets take; every other option applies to all of them.
OPTIONS: dict[str, TargetOption] = {o.field: o for o in (
    TargetOption("emit", "--emit", "how the target builds its network (its emissions; the first is the default)"),
    TargetOption("fixed_point", "--fixed-point", "quantize for Loihi-class integer hardware"),
    TargetOption("chip", "--chip", "map onto the cores of a chip profile"),
)}

TARGETS: dict[str, TargetSpec] = {t.name: t for t in (
    TargetSpec("lava", "Lava", "lower to Lava", emissions=("fused", "stock", "loihi"),
           emission_help="fused = one process per population, batches of samples (default); "
                         "stock = Lava's own Dense/Sparse/Conv processes, one sample at a time; "
                         "loihi = only Lava's standard processes (Sparse/Dense + LIF, fixed point), "
                         "what a Loihi 2 chip can run (docs/loihi.md)",
           lowers=True, simulate=True, fixed_point=True, ray_shards=True,
           options=("emit", "fixed_point", "chip")),
    TargetSpec("ir", "IR", "stop after the passes"),
    TargetSpec("energy", "energy", "the energy report only"),
    TargetSpec("onnx", "ONNX", "write `model.onnx` (one time step) and `model_ann.onnx` to `-o`",
           emissions=("float64", "float32"), artifacts=("model.onnx", "model_ann.onnx"),
           lowers=True, simulate=True, ray_shards=True, docs="docs/onnx.md"),
    TargetSpec("nir", "NIR", "write `model.nir` to `-o`", emissions=("graph",), artifacts=("model.nir",),
           lowers=True, docs="docs/nir.md"),
    TargetSpec("netx", "netx", "write `model.net` (lava-dl netx HDF5, fixed point implied) to `-o`; "
               "`--simulate` runs it with lava-dl on Lava", emissions=("hdf5",), artifacts=("model.net",),
               lowers=True, simulate=True, fixed_point=True, options=("fixed_point",), docs="docs/netx.md",
               integer_rules="netx", fixed_point_only=True),
)}
DEFAULT_TARGET = "lava"


def taking(option: str) -> list[str]:
    """Names of the targets that take ``option`` (a field of :data:`OPTIONS`)."""
    return [t.name for t in TARGETS.values() if option in t.options]


def cli_emissions() -> tuple[str, ...]:
    """Every emission of a target that takes ``--emit``, in declaration order."""
    return tuple(e for name in taking("emit") for e in TARGETS[name].emissions)


def _plain(text: str) -> str:
    return text.replace("`", "")


def target_help(markdown: bool = False) -> str:
    """The ``--target`` help: every target with its summary and docs page."""
    quote = (lambda s: f"`{s}`") if markdown else (lambda s: s)
    parts = []
    for t in TARGETS.values():
        summary = t.summary if markdown else _plain(t.summary)
        default = " (default)" if t.name == DEFAULT_TARGET else ""
        docs = f" ({quote(t.docs)})" if t.docs else ""
        parts.append(f"{quote(t.name)}{default}: {summary}{docs}")
    tail = "the file targets need " + quote("-o")
    return "; ".join(parts) + "; " + tail


def artifacts_help() -> str:
    """Which target writes which files, e.g. ``model.nir for nir``."""
    return "; ".join(f"{', '.join(t.artifacts)} for {t.name}" for t in TARGETS.values() if t.artifacts)


def emit_help() -> str:
    return "; ".join(f"{name}: {TARGETS[name].emission_help}" for name in taking("emit"))


def usage_choices() -> str:
    """``lava|ir|energy|onnx|nir``, for usage lines."""
    return "|".join(TARGETS)


def table_markdown() -> str:
    """The README's table of targets, one row per declaration."""
    yes = {True: "yes", False: "–"}
    rows = ["| target | emissions (first = default) | writes to `-o` | simulates | fixed point | "
            "shards (`--workers`) | own options |", "|---|---|---|---|---|---|---|"]
    for t in TARGETS.values():
        flags = ", ".join(f"`{OPTIONS[o].flag}`" for o in t.options) or "–"
        rows.append(f"| `{t.name}` | {', '.join(t.emissions) or '–'} | "
                    f"{', '.join(f'`{a}`' for a in t.artifacts) or '–'} | {yes[t.simulate]} | "
                    f"{yes[t.fixed_point]} | {yes[t.ray_shards]} | {flags} |")
    return "\n".join(rows)

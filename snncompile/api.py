"""Public Python API; the CLI is a thin layer over these functions.

``compile`` composes the stages of :mod:`snncompile.stages` (load, trace, optimize,
lower, simulate, verify, estimate) and assembles the report from their results.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snncompile import apicheck, schema, targets
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.events import Binning, is_events
from snncompile.fsutil import check_destination, check_folder, staged_outputs
from snncompile.inputs import InputData, event_inputs, from_arrays, load_inputs
from snncompile.limits import check_memory
from snncompile.targets import TargetSpec

# The pipeline (torch, the backends) loads on the first call, not on import: the CLI reads
# ``defaults()`` for --help without paying for it.
if TYPE_CHECKING:
    from snncompile import stages
    from snncompile.ir import IRGraph
    from snncompile.netlist import Netlist
    from snncompile.report import LayerRow, Report

Progress = Callable[[str, int, int], None]


@dataclass
class Options:
    """Everything ``compile`` can be asked to do (the CLI's flags, typed)."""

    target: str = targets.DEFAULT_TARGET
    steps: int | None = None
    input: str | Path | np.ndarray | tuple | None = None   # a file, an array/tensor, or (x, y)
    samples: int | None = None
    simulate_on_target: bool = False
    outdir: str | Path | None = None
    arch: str | Callable[[], Any] | None = None             # "package.module:factory" or the factory
    trust_pickle: bool = False
    input_shape: tuple[int, ...] | None = None
    energy_model: str = "45nm"
    timeout: float = 900.0           # seconds before a simulation is killed
    emit: str | None = None          # target emission variant (lava: "fused" default, "stock", "loihi")
    workers: int | None = None       # simulate in this many shards on Ray (None: one process)
    ray_address: str | None = None   # join this Ray cluster instead of starting one locally
    ray_connect_timeout: float = 30.0   # seconds to reach ray_address before giving up
    progress: Progress | None = None
    passes: list[str] | None = None
    masks: str | Path | None = None
    patch_mask: str | Path | np.ndarray | None = None
    fixed_point: bool = False
    chip: str | None = None
    ann_sparse: bool = False
    firing_rates: str | None = None
    plot: str | Path | None = None
    nir_dt: float | None = None      # time step of a NIR graph's leaky neurons (see docs/nir.md)
    verify_ir: bool = False          # verify the IR after every pass (the CLI's --check)
    time_axis: int = 0               # where time is in an --input sequence: 0 [T, N, ...], 1 [N, T, ...]
    event_frames: int | None = None  # event input: T frames per recording (tonic ToFrame n_time_bins)
    event_window: float | None = None  # event input: frames of this many µs (tonic time_window)
    event_count: int | None = None   # event input: frames of this many events (tonic event_count)
    plot_layers: list[str] | None = None  # layers of the --plot spike raster (module paths; default a few)
    output_file: str | Path | None = None   # the target's one file here instead of into outdir (netx)
    no_host: bool = False            # refuse host operations (a pure neuromorphic network), see ir/host.py
    keep_ratio: float | None = None  # tokens a selector keeps, for its saving without --input (energy/tokens.py)

    def check(self) -> None:
        """Every value and destination, before any work (the CLI schema, ``schema.CLI``;
        what each target takes, ``snncompile.targets``)."""
        spec = _target_spec(self.target)
        values = {"--steps": self.steps, "--samples": self.samples, "--timeout": self.timeout,
                  "--workers": self.workers, "--ray-connect-timeout": self.ray_connect_timeout}
        checked = schema.validate("command line", values, schema.CLI)
        self.steps, self.samples, self.timeout = checked["--steps"], checked["--samples"], checked["--timeout"]
        self.workers, self.ray_connect_timeout = checked["--workers"], checked["--ray-connect-timeout"]
        self._check_sharding()
        self.fixed_point = self.fixed_point or spec.fixed_point_only
        self._check_output_file(spec)
        self._check_destinations(() if self.output_file is not None else spec.artifacts)
        if self.simulate_on_target and self.input is None:
            raise SnnCompileError("--simulate needs inputs", "pass --input FILE.npy|.npz", EXIT_USAGE)
        if self.time_axis not in (0, 1):
            raise SnnCompileError(f"--time-axis {self.time_axis}: time is axis 0 ([T, N, ...]) or 1 ([N, T, ...])",
                                  "pass --time-axis 0 or 1", EXIT_USAGE)
        self._check_target_options(spec)
        self.binning.check()
        if self.binning.given and self.input is None:
            raise SnnCompileError("--event-frames/--event-window/--event-count bin event input, but there is no "
                                  "--input", "pass --input EVENTS.npy|.npz|.aedat4, or drop them", EXIT_USAGE)

    @property
    def binning(self) -> Binning:
        """How event input becomes frames (docs/events.md)."""
        return Binning(self.event_frames, self.event_window, self.event_count)

    def _check_sharding(self) -> None:
        if (self.workers or self.ray_address) and not self.simulate_on_target:
            raise SnnCompileError("--workers and --ray-address shard a simulation, but nothing is simulated",
                                  "add --simulate --input FILE, or drop them", EXIT_USAGE)
        if self.ray_address and not self.workers:
            raise SnnCompileError("--ray-address needs --workers N (how many shards)",
                                  "e.g. --workers 8 --ray-address head:6379", EXIT_USAGE)
        if self.ray_address:   # before minutes of compiling, not after
            from snncompile.parallel import probe

            probe(self.ray_address, self.ray_connect_timeout)

    def _check_output_file(self, spec: TargetSpec) -> None:
        if self.output_file is None:
            return
        if len(spec.artifacts) != 1:
            raise SnnCompileError(f"--output-file names the one file a target writes, but --target {self.target} "
                                  f"writes {len(spec.artifacts) or 'no'} files",
                                  "use -o DIR, or a target with one file (netx)", EXIT_USAGE)
        check_destination(self.output_file, "--output-file")

    def _check_destinations(self, artifacts: tuple[str, ...]) -> None:
        if self.outdir is None and artifacts:
            raise SnnCompileError(f"--target {self.target} writes {' and '.join(artifacts)}, but no output folder "
                                  "was given", f"add -o OUTDIR (e.g. -o out/{self.target})", EXIT_USAGE)
        if self.outdir is not None:
            out = check_folder(self.outdir)
            for name in ("model.ir.npz", "report.json") + artifacts:
                check_destination(out / name)
        if self.plot is not None:
            if Path(self.plot).suffix.lower() != ".png":
                raise SnnCompileError(f"--plot {self.plot}: the chart is a PNG image",
                                      "give the file a .png name", EXIT_USAGE)
            check_destination(self.plot, "--plot")
            if self.input is not None:
                from snncompile.spikeplot import spike_paths

                for p in spike_paths(self.plot).values():
                    check_destination(p, "--plot")
        if self.plot_layers is not None and (self.plot is None or self.input is None):
            raise SnnCompileError("--plot-layers chooses the layers of the spike raster, which --plot draws when "
                                  "inputs are simulated", "add --plot FILE.png --input FILE, or drop --plot-layers",
                                  EXIT_USAGE)

    def _check_target_options(self, spec: TargetSpec) -> None:
        """Options only some targets take (``snncompile.targets.OPTIONS``)."""
        emitters = targets.taking("emit")
        if self.emit is not None and "emit" not in spec.options:
            raise SnnCompileError(f"--emit chooses how the {' or '.join(emitters)} target builds its network",
                                  f"use it with --target {emitters[0]}, or drop it", EXIT_USAGE)
        if self.emit is not None and self.emit not in spec.emissions:
            raise SnnCompileError(f"unknown {spec.title} emission {self.emit!r}",
                                  f"choose {' or '.join(spec.emissions)}", EXIT_USAGE)
        if self.emit == "loihi" and not self.fixed_point:
            raise SnnCompileError("--emit loihi runs Lava's bit-accurate fixed_pt models of a quantized network",
                                  "add --fixed-point", EXIT_USAGE)
        if (self.fixed_point or self.chip) and not spec.fixed_point:
            quantizing = [t for t in targets.taking("fixed_point") if targets.TARGETS[t].fixed_point]
            raise SnnCompileError(f"--fixed-point and --chip need the {' or '.join(quantizing)} target",
                                  f"use --target {quantizing[0]}", EXIT_USAGE)


def defaults() -> dict[str, object]:
    """Every option's default (``Options``' field defaults): the CLI's defaults too."""
    return {f.name: f.default for f in fields(Options) if f.default is not MISSING}


def _target_spec(name: str) -> TargetSpec:
    if name not in targets.TARGETS:
        raise SnnCompileError(f"unknown target {name!r}", f"choose one of {', '.join(targets.TARGETS)}",
                              EXIT_USAGE)
    return targets.TARGETS[name]


def layer_rows(graph: IRGraph) -> list[LayerRow]:
    """One row per IR node, named by the user's module path; synaptic rows count live
    synapses (closed form) and the nonzero weights of their tensor."""
    from snncompile.ir import Conv2d, IRGraph, Linear, Neuron
    from snncompile.ir.counting import layer_synapses, nonzero_weights_of
    from snncompile.ir.labels import labels
    from snncompile.report import LayerRow, row_detail

    if not isinstance(graph, IRGraph):
        raise apicheck.bad("layer_rows", "graph", graph, "an IRGraph", "trace('model.pt').graph")
    counts, names = layer_synapses(graph), labels(graph)
    or_synapses = {graph.inputs(n)[0] for n in graph.of_type(Neuron) if graph.node(n).role == "or"}
    weighted = [name for name, node in graph.items()   # OR synapses: no user weights
                if isinstance(node, (Conv2d, Linear)) and name not in or_synapses]
    nonzero = dict(zip(weighted, nonzero_weights_of([graph.node(n) for n in weighted])))
    rows = []
    for name, node in graph.items():
        row = LayerRow(names[name], node.op, tuple(node.shape), detail=row_detail(node), ir_name=name)
        if isinstance(node, Neuron):
            row.neurons = node.kept
        if name in nonzero:
            row.weights, row.weights_nonzero = int(node.weight.size), nonzero[name]
        if name in counts:
            row.synapses, row.synapses_dense = counts[name].synapses, counts[name].synapses_dense
        rows.append(row)
    return rows


_TRACE_OPTIONS = ("arch", "trust_pickle", "input_shape", "masks", "nir_dt", "no_host")


def trace(model: Any, *, arch: str | Callable[[], Any] | None = None, trust_pickle: bool = False,
          input_shape: tuple[int, ...] | None = None, data: InputData | None = None,
          masks: str | Path | None = None, keep_module: bool = True, nir_dt: float | None = None,
          no_host: bool = False) -> stages.Traced:
    """Load and trace ``model``: a checkpoint path, a NIR graph (``.nir``), an ``nn.Module``,
    or a state_dict with ``arch`` (a factory callable or ``package.module:factory``)."""
    model = apicheck.check_model("trace", model)
    opts = apicheck.check_options("trace", {"arch": arch, "trust_pickle": trust_pickle, "input_shape": input_shape,
                                            "masks": masks, "nir_dt": nir_dt, "no_host": no_host}, _TRACE_OPTIONS)
    if data is not None and not isinstance(data, InputData):
        raise apicheck.bad("trace", "data", data, "an InputData (from snncompile.inputs)", "None")
    return _trace(model, data=data, keep_module=keep_module, **opts)


def _trace(model: Any, *, arch, trust_pickle: bool, input_shape, data: InputData | None, masks,
           keep_module: bool, nir_dt: float | None, no_host: bool = False) -> stages.Traced:
    from snncompile import stages
    from snncompile.frontend.load import load_object
    from snncompile.frontend.netx_import import is_netx
    from snncompile.frontend.nir_import import is_nir

    in_memory = not isinstance(model, (str, Path))
    if not in_memory and is_nir(model):
        return stages.import_nir(model, dt=nir_dt, input_shape=input_shape, masks=masks)
    if not in_memory and is_netx(model):
        return stages.import_netx(model, input_shape=input_shape, masks=masks)
    if in_memory:
        if masks is not None and apicheck.is_module(model):  # masks zero weights in place: not the caller's
            import copy

            model = copy.deepcopy(model)
        loaded = load_object(model, arch)
    else:
        loaded = stages.load(model, arch=arch, trust_pickle=trust_pickle)
    shape = stages.input_shape_of(input_shape, loaded.meta, data, loaded.module)
    traced = stages.trace(loaded, shape, masks=masks, keep_module=keep_module, no_host=bool(no_host))
    del loaded
    if not keep_module:  # torch.fx leaves reference cycles that would hold the weights twice
        gc.collect()
    return traced


def _label(model: Any) -> str:
    """How the report names the model: its path, or the class of an in-memory one."""
    if isinstance(model, (str, Path)):
        return str(model)
    return f"<{type(model).__name__}>" if apicheck.is_module(model) else "<state_dict>"


@contextmanager
def _modes_kept(model: Any) -> Iterator[None]:
    """Tracing puts the model in eval mode; the caller's module gets its own modes back."""
    if not apicheck.is_module(model):
        yield
        return
    modes = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def _read_input(value: Path | tuple[Any, np.ndarray | None], input_shape, time_axis: int = 0,
                binning: Binning | None = None) -> InputData:
    """``input=`` as checked by ``apicheck.check_input``: a file, arrays ``(x, y)``, or event
    recordings (a structured array or a list of them) binned by ``binning``;
    ``time_axis`` 1: a sequence stored batch-first."""
    binning = binning or Binning()
    if isinstance(value, Path):
        data = load_inputs(value, input_shape, time_axis, binning)
        if data.events:
            _events_time_major(time_axis)
        return data
    x, y = value
    if isinstance(x, list) or is_events(x):
        _events_time_major(time_axis)
        return event_inputs(x if isinstance(x, list) else [x], y, input_shape, binning, Path("<input events>"))
    if binning.given:
        raise SnnCompileError("event_frames/event_window/event_count bin event streams, but input= holds frames",
                              "pass events (a structured array with fields t, x, y, p), or drop them", EXIT_USAGE)
    return from_arrays(x, y, input_shape, time_axis=time_axis)


def _events_time_major(time_axis: int) -> None:
    if time_axis != 0:
        raise SnnCompileError("--time-axis 1 reads frame arrays stored [N, T, ...], but the input holds events "
                              "(binned time-major)", "drop --time-axis", EXIT_USAGE)


def inspect(model: Any, passes: list[str] | None = None, *, arch: str | Callable[[], Any] | None = None,
            trust_pickle: bool = False, input_shape: tuple[int, ...] | None = None,
            masks: str | Path | None = None, nir_dt: float | None = None, input: Any = None) -> Report:
    """Trace ``model``, run ``passes`` (default: all) and return its layer table.

    ``model`` as for :func:`trace`; ``input`` (a path, an array or tensor) only tells the input
    shape when neither the checkpoint nor ``input_shape`` does.
    """
    from snncompile import stages
    from snncompile.report import Report

    model = apicheck.check_model("inspect", model)
    opts = apicheck.check_options("inspect", {
        "passes": passes, "arch": arch, "trust_pickle": trust_pickle, "input_shape": input_shape, "masks": masks,
        "nir_dt": nir_dt, "input": input}, ("passes", "input") + _TRACE_OPTIONS)
    passes, given = opts.pop("passes"), opts.pop("input")
    # only the input's shape is read: events are binned into a single frame
    data = _read_input(given, opts["input_shape"], binning=Binning(shape_only=True)) if given is not None else None
    with _modes_kept(model):
        tr = _trace(model, data=data, keep_module=False, **opts)
    opt = stages.optimize(tr.graph, passes, copy=False)
    return Report(model=_label(model), target="ir", steps=tr.meta.get("steps"), layers=layer_rows(opt.graph),
                  passes=[s.to_dict() for s in opt.stats])


def compile(model: Any, target: str = "lava", **kwargs: Any) -> Report:
    """Compile ``model`` for ``target``; with ``simulate_on_target`` also run it there.

    ``model``: a checkpoint or ``.nir`` path, an ``nn.Module``, or a state_dict with
    ``arch=`` a factory. ``input=``: a ``.npy``/``.npz`` path, an array or tensor, or ``(x, y)``.
    Mirrors ``snncompile MODEL --target lava [--steps T] [--input F] [--samples N]
    [--simulate] [-o OUTDIR]``; keyword arguments are the fields of :class:`Options`.
    """
    model = apicheck.check_model("compile", model)
    known = tuple(f.name for f in fields(Options))
    opt = Options(**apicheck.check_options("compile", {"target": target, **kwargs}, known))
    opt.check()
    with _modes_kept(model):
        return _compile(model, opt)


def _compile(model: Any, opt: Options) -> Report:
    import backends  # noqa: F401  (registers the targets)
    from snncompile import stages
    from snncompile.energy import plot_energy
    from snncompile.ir import save_ir
    from snncompile.mapping import load_chip, map_to_cores
    from snncompile.memory import return_large_frees
    from snncompile.report import Report

    return_large_frees()
    data = _read_input(opt.input, None, opt.time_axis, opt.binning) if opt.input is not None else None
    needs_source = opt.simulate_on_target or (opt.fixed_point and data is not None)
    tr = _trace(model, arch=opt.arch, trust_pickle=opt.trust_pickle, input_shape=opt.input_shape, data=data,
                masks=opt.masks, keep_module=needs_source, nir_dt=opt.nir_dt, no_host=opt.no_host)
    if opt.patch_mask is not None:
        tr.graph.patch_mask = _read_patch_mask(opt.patch_mask)
    optimized = stages.optimize(tr.graph, opt.passes, copy=needs_source, verify=True if opt.verify_ir else None)
    graph = optimized.graph
    in_shape = tuple(graph.input_shape)
    if data is not None:
        data = _read_input(opt.input, in_shape, opt.time_axis, opt.binning).take(opt.samples)
    T = _steps(opt.steps, tr.meta, data, graph.model_steps)
    report = Report(model=_label(model), target=opt.target, steps=T, layers=layer_rows(graph),
                    passes=[s.to_dict() for s in optimized.stats])
    report.notes.extend(tr.graph.meta.get("notes", []))   # the frontend's (e.g. outputs not emitted)
    report.notes.extend(w for s in optimized.stats for w in s.warnings)

    net = stages.lower(graph) if targets.TARGETS[opt.target].lowers else None
    lowered = net   # the estimate reads the lowering's projections (it lowers itself without one)
    if net is not None:
        report.lowering = lowering_summary(net)
        _exact_rows(report, net)
    x = data.as_sequence(T) if data is not None else None
    qnet = None
    if opt.fixed_point:
        if x is None:
            report.notes.append("no --input: inputs assumed to lie in [0, 1] for the 8-bit input scale")
        qnet, qinfo = stages.quantize(net, x, in_shape, targets.TARGETS[opt.target].integer_rules)
        report.fixed_point = {"quantization": qinfo.to_dict()}
        report.notes.extend(qinfo.to_dict()["warnings"])
    if opt.chip or opt.fixed_point:
        report.mapping = map_to_cores(qnet or net, load_chip(opt.chip or "loihi2")).to_dict()
        report.mapping["chip_fit"] = _chip_fit_claim(opt, qnet)

    artifacts = _target_files(opt, net, qnet, report, T)
    values = None
    pictures = None
    if x is None:  # nothing runs: the estimate needs only the IR, so the netlist can go
        net = qnet = None
    else:   # the reference keeps every neuron's values per step: refuse a run that cannot fit first
        check_memory(f"simulating {T} steps × {x.shape[1]} samples of {report.graph['neurons']:,} neurons",
                     (x.size + T * x.shape[1] * report.graph["neurons"]) * 8 * 2, "pass fewer --steps or --samples")
        ref = stages.reference(graph, x)
        values = ref.values
        pictures = _picture_layers(graph, ref.spikes, opt)
        torch64 = stages.run_source(tr, graph, x) if needs_source else None
        if qnet is not None:
            ints = stages.integer_reference(qnet, x)
            report.fixed_point["integer_reference"] = stages.verify(tr, graph, qnet, ints, torch64, data.y).to_dict()
        if opt.simulate_on_target and net is not None:
            report.simulation = _simulation(tr, graph, qnet or net, x, data, ref, torch64, opt)
            if qnet is not None:
                report.fixed_point["lava"] = {k: report.simulation[k] for k in (
                    "spike_agreement", "prediction_agreement", "accuracy", "per_layer_spike_agreement",
                    "per_layer_ir_names")}
                report.fixed_point["integer_reference_bit_exact"] = report.simulation.pop("_bit_exact")
    report.energy = stages.estimate(graph, steps=T, values=values, firing_rates=opt.firing_rates,
                                    cost_model=opt.energy_model, ann_sparse=opt.ann_sparse, net=lowered)
    report.energy.token_selection = stages.token_selection(graph, steps=T, x=x, values=values,
                                                           keep_ratio=opt.keep_ratio, report=report.energy,
                                                           cost_model=opt.energy_model)
    with staged_outputs() as outputs:  # all of them appear, or none
        if opt.plot is not None:
            report.outputs["plot"] = str(plot_energy(report.energy, opt.plot, outputs.write))
            report.outputs.update(_spike_pictures(report, pictures, opt.plot, outputs.write))
        if opt.outdir is not None:
            out = Path(opt.outdir)
            report.outputs["ir"] = str(save_ir(graph, out / "model.ir.npz", outputs.write))
            report.outputs["report"] = str(out / "report.json")
            for name, data in artifacts.items() if opt.output_file is None else ():
                report.outputs[name] = str(outputs.write(out / name, lambda fh, data=data: fh.write(data)))
            report.write_json(out / "report.json", outputs.write)
        if opt.output_file is not None:
            (data,) = artifacts.values()
            report.outputs["file"] = str(outputs.write(Path(opt.output_file), lambda fh: fh.write(data)))
    return report


def _chip_fit_claim(opt: Options, qnet: Netlist | None) -> dict:
    """Whether the mapping describes what would run on the chip: only the loihi emission (Lava's
    standard processes) claims it; it refuses here, before any simulation, what it cannot build."""
    if opt.target == "lava" and opt.emit == "loihi" and qnet is not None:
        from backends.lava.standard import rewrites

        return {"claimed": True, "emission": "loihi", "exact_rewrites": rewrites(qnet),
                "why": "every population is a standard Lava process (Sparse/Dense, LIF) with a Loihi 2 NeuroCore model"}
    return {"claimed": False, "emission": opt.emit,
            "why": "only --target lava --emit loihi --fixed-point builds the network from standard processes; "
                   "other emissions run custom CPU processes, so this mapping is an estimate of core use"}


def _picture_layers(graph: IRGraph, spikes: dict[str, np.ndarray], opt: Options) -> tuple | None:
    """With --plot: every neuron layer's reference spikes and those of the raster (checked
    before anything is written)."""
    if opt.plot is None:
        return None
    from snncompile.spikeplot import choose, layers_of

    spiking = layers_of(graph, spikes)
    return spiking, choose(spiking, opt.plot_layers)


def _spike_pictures(report: Report, pictures: tuple | None, plot: str | Path, write) -> dict[str, str]:
    """The raster of the chosen layers and every layer's firing rate, next to the energy chart."""
    from snncompile.spikeplot import plot_raster, plot_rates, spike_paths

    if pictures is None or not pictures[0]:
        return {}
    spiking, chosen = pictures
    paths = spike_paths(plot)
    sim = report.simulation or {}
    agreed = ""
    if "spike_agreement" in sim:
        agreed = (f"; {sim['backend']} agreed spike for spike" if sim["spike_agreement"] == 1.0
                  else f"; {sim['backend']} spike agreement {sim['spike_agreement']:.4f}")
    T, N = spiking[0].spikes.shape[:2]
    title = f"{report.model}: reference simulator, {N} sample(s), T = {T}{agreed}"
    return {"raster": str(plot_raster(chosen, paths["raster"], f"Spike raster — {title}", write)),
            "rates": str(plot_rates(spiking, paths["rates"], f"Firing rate per layer — {title}", write))}


def _target_files(opt: Options, net: Netlist | None, qnet: Netlist | None, report: Report,
                  steps: int) -> dict[str, bytes]:
    """The target's files (when a destination was given); a target that can say how to feed
    and read its file (netx) adds that to the fixed-point report."""
    from snncompile.netlist.target import get as get_target

    if net is None:
        return {}
    target = get_target(opt.target)
    describe = getattr(target, "describe", None)
    if describe is not None and qnet is not None:
        report.fixed_point[opt.target] = describe(qnet, steps)
    wants_files = opt.outdir is not None or opt.output_file is not None
    return target.emit(qnet or net) if wants_files else {}


def _exact_rows(report: Report, net: Netlist) -> None:
    """Synapse counts of the compiled network per last folded layer (composed chains)."""
    per_layer: dict[str, int] = {}
    for proj in net.projections:
        if proj.layers:
            per_layer[proj.layers[-1]] = per_layer.get(proj.layers[-1], 0) + proj.nnz
    for row in report.layers:
        if row.name in per_layer:
            row.synapses = per_layer[row.name]


def _simulation(tr: stages.Traced, graph: IRGraph, net: Netlist, x: np.ndarray, data: InputData,
                ref, torch64, opt: Options) -> dict:
    """Run ``net`` on the target and compare it with PyTorch; for a fixed-point netlist
    also whether the integer reference predicted the run bit for bit (``_bit_exact``)."""
    from snncompile import stages
    from snncompile.netlist import FixedNetlist

    res = stages.timed_run(opt.target, net, x, timeout=opt.timeout, progress=opt.progress, emit=opt.emit,
                           workers=opt.workers, ray_address=opt.ray_address,
                           ray_connect_timeout=opt.ray_connect_timeout)
    out = stages.target_outputs(res.run)
    bit_exact = None
    if isinstance(net, FixedNetlist):  # the integer reference must predict the chip run exactly
        ints = stages.integer_reference(net, x)
        bit_exact = all(np.array_equal(out[n], ints[n]) for n in out)
    fid = stages.verify(tr, graph, net, out, torch64, data.y)
    ref_fid = stages.verify(tr, graph, None, ref.spikes, torch64, data.y)
    from snncompile.compare import predictions

    pred_torch = predictions(torch64.output, graph.output_time_reduced)
    return {
        "backend": res.run.backend,
        "emission": res.run.emission,
        "workers": opt.workers or 1,
        "samples": int(x.shape[1]),
        "spike_agreement": fid.spike_agreement,
        "prediction_agreement": fid.prediction_agreement,
        "accuracy": fid.accuracy,
        "wall_s": round(res.wall_s, 3),
        "reference": {"torch_dtype": "float64",
                      "reference_simulator_spike_agreement": ref_fid.spike_agreement,
                      "torch_accuracy": None if data.y is None else float((pred_torch == data.y).mean())},
        "per_layer_spike_agreement": fid.per_layer_spike_agreement,   # keyed by module path
        "per_layer_ir_names": fid.per_layer_ir_names,
        "compared_neurons": "kept neurons only (removed ones do not exist in the compiled network)",
        "lava_steps": res.run.steps,
        "lava_run_s": round(res.run.wall_s, 3),
        "_bit_exact": bit_exact,
    }


def _steps(steps: int | None, meta: dict, data: InputData | None, model_steps: int | None = None) -> int:
    if model_steps is not None:   # forward() repeats a static input over its own T
        if data is not None and data.sequence:
            raise SnnCompileError(f"the model runs its own {model_steps} time steps on a static input, but the "
                                  "input file holds sequences [T, N, ...]",
                                  "pass static samples [N, ...] (the model repeats them over time)", EXIT_USAGE)
        if steps is not None and steps != model_steps:
            raise SnnCompileError(f"--steps {steps} but the model runs {model_steps} time steps inside forward()",
                                  f"drop --steps (or pass --steps {model_steps}); to change T, build the model "
                                  "with another T", EXIT_USAGE)
        return int(model_steps)
    if data is not None and data.sequence:
        T = data.x.shape[0]
        if steps is not None and steps != T:
            raise SnnCompileError(f"--steps {steps} but the input sequence has {T} steps",
                                  "drop --steps or pass inputs with that many steps", EXIT_USAGE)
        return T
    T = steps if steps is not None else meta.get("steps")
    if T is None:
        raise SnnCompileError("the number of time steps is unknown", "pass --steps T", EXIT_USAGE)
    if int(T) < 1:
        raise SnnCompileError(f"--steps must be at least 1 (got {T})", "e.g. --steps 8", EXIT_USAGE)
    return int(T)


def lowering_summary(net: Netlist) -> dict:
    """The report's lowering section (:mod:`snncompile.netlist.summary`, per population kind)."""
    from snncompile.netlist.summary import lowering_summary as summary

    return summary(net)


def _read_patch_mask(path: Path | np.ndarray) -> np.ndarray:
    if isinstance(path, np.ndarray):  # given as an array to the Python API
        keep, path = path, "(the patch_mask array)"
    else:
        with schema.reading_arrays(path, "patch mask", fix="save a numeric .npy array of 0/1 per patch (H, W) "
                                   "or token (N,) with np.save"):
            keep = np.load(path, allow_pickle=False)
    if not isinstance(keep, np.ndarray) or not np.isin(keep, (0, 1)).all():
        raise SnnCompileError(f"patch mask {path} is not a 0/1 array",
                              "store 1 for patches to keep, 0 for masked ones", EXIT_USAGE)
    return keep.astype(bool)
